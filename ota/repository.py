"""A TUF repository of hub releases on disk: keys, the four top-level roles, signing, expiry policy.

Layout (served as is by `hub-cloud serve --ota-repo DIR`):
  metadata/root.json, metadata/<N>.root.json   root (the client bootstraps from a copy shipped in the image)
  metadata/<N>.targets.json, metadata/<N>.snapshot.json, metadata/timestamp.json   (consistent snapshots)
  targets/releases/<arch>/<version>/<sha256>.release.json   the manifest: the only TUF target of a release
  targets/blobs/<sha256>   file contents, content-addressed; verified by the client against the manifest

Blobs are not TUF targets themselves: a full slot holds ~10k files and listing each one in targets.json
would make every metadata refresh megabytes long. The manifest is a TUF target (length, hash, signed by the
targets role, fresh snapshot and timestamp) and names each blob's sha256 and size, so every blob is as
trusted as the manifest and the client checks it before use.

Keys: `<keys>/offline/{root,targets}.pem` are meant to live on an offline machine (a release is signed there),
`<keys>/online/{snapshot,timestamp}.pem` on the server that refreshes the short-lived timestamp.

Key rotation (`rotate_key`): a new root version lists the role's new key instead of the old one (a new root key
signs together with the old, so boxes that trust the old root follow the chain); the role's metadata is then
re-signed with the new key, and the old key file moves to `<keys>/retired/`. Boxes pick the new root up at
their next check: whatever the old key signs from then on is refused. Root itself expires (a year by default):
`resign` renews it in time, since a box whose newest root has expired refuses every update.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key

# Imported from their defining modules: the public packages re-export them implicitly, which strict mypy rejects.
from securesystemslib.signer._crypto_signer import CryptoSigner
from securesystemslib.signer._key import Key
from securesystemslib.signer._signer import Signer
from tuf.api._payload import MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

from ota.manifest import MANIFEST_NAME, blobs, build_manifest, canonical_json, sha256_file

OFFLINE_ROLES = (Root.type, Targets.type)
ONLINE_ROLES = (Snapshot.type, Timestamp.type)
ROLES = OFFLINE_ROLES + ONLINE_ROLES


@dataclass(frozen=True)
class ExpiryPolicy:
    """How long each role's metadata stays valid after signing (root and targets are re-signed offline)."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def for_role(self, role: str) -> timedelta:
        return getattr(self, role)  # type: ignore[no-any-return]


def key_path(keys: Path, role: str) -> Path:
    return keys / ("offline" if role in OFFLINE_ROLES else "online") / f"{role}.pem"


def generate_keys(keys: Path) -> None:
    """Create an ed25519 key per role (never overwrites an existing key)."""
    for role in ROLES:
        path = key_path(keys, role)
        if not path.exists():
            _write_key(path, CryptoSigner.generate_ed25519())


def _write_key(path: Path, signer: CryptoSigner) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signer.private_bytes)
        f.flush()
        os.fsync(f.fileno())


def load_signer(path: Path) -> CryptoSigner:
    private = load_pem_private_key(path.read_bytes(), password=None)
    return CryptoSigner(private)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Repository:
    def __init__(self, root: Path, keys: Path, policy: ExpiryPolicy | None = None) -> None:
        self.root = root
        self.keys = keys
        self.policy = policy or ExpiryPolicy()
        self.metadata_dir = root / "metadata"
        self.targets_dir = root / "targets"
        self.blobs_dir = self.targets_dir / "blobs"

    # -- creation -------------------------------------------------------------------------------------

    @classmethod
    def init(cls, root: Path, keys: Path, policy: ExpiryPolicy | None = None) -> Repository:
        repo = cls(root, keys, policy)
        if (repo.metadata_dir / "root.json").exists():
            raise FileExistsError(f"{repo.metadata_dir / 'root.json'} exists: the repository is already initialised")
        generate_keys(keys)
        now = datetime.now(UTC)
        signed_root = Root(expires=now + repo.policy.root, consistent_snapshot=True)
        for role in ROLES:
            signed_root.add_key(repo.public_key(role), role)
        repo._write(Metadata(signed_root), Root.type)
        repo._write(Metadata(Targets(expires=now + repo.policy.targets)), Targets.type)
        repo.bump_snapshot()
        repo.bump_timestamp()
        return repo

    def public_key(self, role: str) -> Key:
        return load_signer(key_path(self.keys, role)).public_key

    def signer(self, role: str) -> Signer:
        path = key_path(self.keys, role)
        if not path.exists():
            raise FileNotFoundError(f"the {role} key {path} is missing (offline keys: root, targets)")
        return load_signer(path)

    # -- reading --------------------------------------------------------------------------------------

    def _latest_path(self, role: str) -> Path:
        if role == Timestamp.type:
            return self.metadata_dir / "timestamp.json"
        versions = [int(p.name.split(".", 1)[0]) for p in self.metadata_dir.glob(f"*.{role}.json")]
        if not versions:
            raise FileNotFoundError(f"no {role} metadata in {self.metadata_dir}: run `python -m ota.publish init`")
        return self.metadata_dir / f"{max(versions)}.{role}.json"

    def load(self, role: str) -> Metadata[Any]:
        return Metadata.from_file(str(self._latest_path(role)))

    def root_bytes(self) -> bytes:
        return (self.metadata_dir / "root.json").read_bytes()

    def releases(self, arch: str | None = None) -> list[tuple[str, str]]:
        """(arch, version) of every listed release."""
        out = []
        for name in self.load(Targets.type).signed.targets:
            parts = name.split("/")
            wanted = arch is None or (len(parts) > 1 and parts[1] == arch)
            if len(parts) == 4 and parts[0] == "releases" and parts[3] == MANIFEST_NAME and wanted:
                out.append((parts[1], parts[2]))
        return out

    # -- writing --------------------------------------------------------------------------------------

    def _serialize(self, md: Metadata[Any]) -> bytes:
        return md.to_bytes(JSONSerializer(compact=False))

    def _write(self, md: Metadata[Any], role: str, signers: Iterable[Signer] | None = None) -> bytes:
        """Sign (with the role's own key unless `signers` is given) and write; returns the bytes written."""
        md.signatures.clear()
        for signer in signers if signers is not None else [self.signer(role)]:
            md.sign(signer, append=True)
        data = self._serialize(md)
        if role == Timestamp.type:
            _atomic_write(self.metadata_dir / "timestamp.json", data)
        else:
            _atomic_write(self.metadata_dir / f"{md.signed.version}.{role}.json", data)
            if role == Root.type:
                _atomic_write(self.metadata_dir / "root.json", data)
        return data

    def write_signed(self, md: Metadata[Any], role: str, signers: Iterable[Signer] | None = None) -> bytes:
        """Write already-edited metadata as is (version and expiry untouched); for tests and key rotation."""
        return self._write(md, role, signers)

    def bump_root(self, edit: Any = None, signers: Iterable[Signer] | None = None) -> None:
        """A new root version, valid for the policy's time from now (signed by the current root key unless
        `signers` is given: a root key rotation needs the old and the new key)."""
        md = self.load(Root.type)
        if edit is not None:
            edit(md.signed)
        md.signed.version += 1
        md.signed.expires = datetime.now(UTC) + self.policy.root
        self._write(md, Root.type, signers)

    def rotate_key(self, role: str) -> str:
        """Replace `role`'s key by a new one (see the module doc); returns the new key id.

        Crash-safe: the new key is written (as `<role>.pem.new`) before the root that names it, and a rotation
        found half done is finished rather than started again.
        """
        if role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)}, not {role!r}")
        path = key_path(self.keys, role)
        pending = path.with_name(path.name + ".new")
        root = self.load(Root.type).signed
        if pending.exists():
            new = load_signer(pending)
            if new.public_key.keyid not in root.roles[role].keyids:
                pending.unlink()  # the earlier attempt stopped before the root named the key: start again
        if not pending.exists():
            old_root = self.signer(Root.type)
            new = CryptoSigner.generate_ed25519()
            _write_key(pending, new)

            def swap(signed: Root) -> None:
                for keyid in list(signed.roles[role].keyids):
                    signed.revoke_key(keyid, role)
                signed.add_key(new.public_key, role)

            self.bump_root(swap, [old_root, new] if role == Root.type else [old_root])
        retired = self.keys / "retired"
        retired.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists():
            old_id = load_signer(path).public_key.keyid
            path.replace(retired / f"{role}-{old_id[:16]}.pem")
        pending.replace(path)
        if role == Targets.type:
            self.bump_targets()
        if role in (Targets.type, Snapshot.type):
            self.bump_snapshot()
        self.bump_timestamp()
        return str(new.public_key.keyid)

    def bump_targets(self, edit: Any = None) -> None:
        md = self.load(Targets.type)
        if edit is not None:
            edit(md.signed)
        md.signed.version += 1
        md.signed.expires = datetime.now(UTC) + self.policy.targets
        self._write(md, Targets.type)

    def bump_snapshot(self) -> None:
        targets_path = self._latest_path(Targets.type)
        data = targets_path.read_bytes()
        version = Metadata[Targets].from_bytes(data).signed.version
        try:
            md = self.load(Snapshot.type)
            md.signed.version += 1
        except FileNotFoundError:
            md = Metadata(Snapshot())
        md.signed.meta["targets.json"] = MetaFile.from_data(version, data, ["sha256"])
        md.signed.expires = datetime.now(UTC) + self.policy.snapshot
        self._write(md, Snapshot.type)

    def bump_timestamp(self, expires: datetime | None = None) -> None:
        """Re-sign the timestamp (the periodic online job); `expires` overrides the policy (tests: freeze)."""
        snapshot_path = self._latest_path(Snapshot.type)
        data = snapshot_path.read_bytes()
        version = Metadata[Snapshot].from_bytes(data).signed.version
        path = self.metadata_dir / "timestamp.json"
        if path.exists():
            md: Metadata[Timestamp] = Metadata.from_file(str(path))
            md.signed.version += 1
        else:
            md = Metadata(Timestamp())
        md.signed.snapshot_meta = MetaFile.from_data(version, data, ["sha256"])
        md.signed.expires = expires or datetime.now(UTC) + self.policy.timestamp
        self._write(md, Timestamp.type)

    def add_release(
        self,
        slot_dir: Path,
        version: str,
        arch: str,
        python: str,
        min_config_version: int = 1,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Publish a slot: new blobs, the manifest target, then targets → snapshot → timestamp (in that order
        so a client never sees a timestamp naming metadata that is not on disk yet)."""
        manifest = build_manifest(slot_dir, version, arch, python, min_config_version, created_at)
        target_name = f"releases/{arch}/{version}/{MANIFEST_NAME}"
        if target_name in self.load(Targets.type).signed.targets:
            raise FileExistsError(f"release {version} for {arch} is already published (versions are immutable)")
        by_hash = {e["sha256"]: rel for rel, e in manifest["files"].items() if "link" not in e}
        for digest in blobs(manifest):
            dest = self.blobs_dir / digest
            if dest.exists() and dest.stat().st_size == manifest["files"][by_hash[digest]]["size"]:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{digest}.tmp")
            shutil.copyfile(slot_dir / by_hash[digest], tmp)
            if sha256_file(tmp) != digest:
                tmp.unlink()
                raise RuntimeError(f"{slot_dir / by_hash[digest]} changed while publishing")
            tmp.chmod(0o644)
            tmp.replace(dest)
        data = canonical_json(manifest)
        target = TargetFile.from_data(target_name, data, ["sha256"])
        target.unrecognized_fields["custom"] = {"version": version, "arch": arch}
        digest = target.hashes["sha256"]
        _atomic_write(self.targets_dir / "releases" / arch / version / f"{digest}.{MANIFEST_NAME}", data)

        def add(signed: Targets) -> None:
            signed.targets[target_name] = target

        self.bump_targets(add)
        self.bump_snapshot()
        self.bump_timestamp()
        return manifest


__all__ = ["ExpiryPolicy", "Repository", "generate_keys", "load_signer"]
