"""The release manifest (`release.json`): a slot described file by file, by content hash.

Canonical JSON (sorted keys, no spaces, UTF-8) so the same tree always gives the same bytes and hash.
`__pycache__` is left out: bytecode is regenerated in the slot, and source mtimes change on install anyway,
which would make shipped `.pyc` files stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ota.errors import TargetError

FORMAT = 1
NAME = "village-hub"
MANIFEST_NAME = "release.json"
SKIP_DIRS = frozenset({"__pycache__"})
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([a-z0-9.+-]*)$")
ARCHES = frozenset({"aarch64", "x86_64"})


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int
    mode: int
    link: str | None = None


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not Path(dirpath, d).is_symlink())
        base = Path(dirpath)
        for name in sorted(filenames):
            yield base / name
        # A symlink to a directory is listed by os.walk as a directory: record it as a link, do not descend.
        for entry in base.iterdir():
            if entry.is_symlink() and entry.is_dir():
                yield entry


def scan_tree(root: Path) -> dict[str, dict[str, Any]]:
    """File entries of a slot tree (everything but release.json and bytecode caches)."""
    files: dict[str, dict[str, Any]] = {}
    for path in _walk(root):
        rel = path.relative_to(root).as_posix()
        if rel == MANIFEST_NAME or path.suffix == ".pyc":
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = str(path.readlink())
            files[rel] = {
                "sha256": hashlib.sha256(target.encode()).hexdigest(),
                "size": 0,
                "mode": 0o777,
                "link": target,
            }
        elif stat.S_ISREG(st.st_mode):
            mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
            files[rel] = {"sha256": sha256_file(path), "size": st.st_size, "mode": mode}
    return files


def build_manifest(
    slot_dir: Path,
    version: str,
    arch: str,
    python: str,
    min_config_version: int = 1,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    manifest = {
        "format": FORMAT,
        "name": NAME,
        "version": version,
        "arch": arch,
        "python": python,
        "min_config_version": min_config_version,
        "created_at": (created_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": scan_tree(slot_dir),
    }
    parse_manifest(canonical_json(manifest))  # what we publish must pass the client's own checks
    return manifest


def _safe_relpath(rel: str) -> bool:
    if not rel or "\\" in rel or "\x00" in rel or rel.startswith("/"):
        return False
    parts = PurePosixPath(rel).parts
    return all(p not in ("", ".", "..") for p in parts) and PurePosixPath(rel).as_posix() == rel


def parse_manifest(data: bytes) -> dict[str, Any]:
    """Parse and validate manifest bytes; raises TargetError naming what is wrong."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TargetError(f"release manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise TargetError("release manifest is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise TargetError(f"release manifest format {manifest.get('format')!r} is not supported (expected {FORMAT})")
    for key, kind in (("name", str), ("version", str), ("arch", str), ("python", str), ("created_at", str)):
        if not isinstance(manifest.get(key), kind):
            raise TargetError(f"release manifest: '{key}' missing or not a {kind.__name__}")
    if not isinstance(manifest.get("min_config_version"), int):
        raise TargetError("release manifest: 'min_config_version' missing or not an integer")
    if not _VERSION.match(manifest["version"]):
        raise TargetError(f"release manifest: version {manifest['version']!r} is not a release version")
    parse_time(manifest["created_at"])
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise TargetError("release manifest: 'files' missing or empty")
    links: set[str] = set()
    for rel, entry in files.items():
        if not _safe_relpath(rel) or rel == MANIFEST_NAME:
            raise TargetError(f"release manifest: unsafe path {rel!r}")
        if not isinstance(entry, dict):
            raise TargetError(f"release manifest: entry of {rel!r} is not an object")
        if not isinstance(entry.get("sha256"), str) or not _HEX64.match(entry["sha256"]):
            raise TargetError(f"release manifest: {rel!r} has no valid sha256")
        size, mode = entry.get("size"), entry.get("mode")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TargetError(f"release manifest: {rel!r} has no valid size")
        if "link" in entry:
            if not isinstance(entry["link"], str) or not entry["link"] or "\x00" in entry["link"]:
                raise TargetError(f"release manifest: {rel!r} has an invalid link target")
            links.add(rel)
        elif mode not in (0o644, 0o755):
            raise TargetError(f"release manifest: {rel!r} has mode {mode!r} (only 0644 and 0755 are allowed)")
    # A file below a symlinked directory would be written through the link, outside the slot.
    for rel in files:
        for parent in PurePosixPath(rel).parents:
            if str(parent) in links:
                raise TargetError(f"release manifest: {rel!r} lies below the symlink {str(parent)!r}")
    return manifest


def entries(manifest: dict[str, Any]) -> list[FileEntry]:
    return [
        FileEntry(rel, e["sha256"], e["size"], e["mode"], e.get("link")) for rel, e in sorted(manifest["files"].items())
    ]


def blobs(manifest: dict[str, Any]) -> dict[str, int]:
    """Content hash → size of every regular file's bytes (links carry no blob)."""
    return {e["sha256"]: e["size"] for e in manifest["files"].values() if "link" not in e}


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise TargetError(f"release manifest: created_at {text!r} is not YYYY-MM-DDTHH:MM:SSZ") from exc


def version_key(version: str) -> Any:
    """Sort key of a release version: PEP 440 via `packaging`, else a strict numeric tuple."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging ships with pip/setuptools everywhere we run
        try:
            return tuple(int(p) for p in version.split("."))
        except ValueError as exc:
            raise TargetError(f"version {version!r} is not numeric") from exc
    try:
        return Version(version)
    except InvalidVersion as exc:
        raise TargetError(f"version {version!r} is not a valid release version") from exc


def is_newer(candidate: str, installed: str) -> bool:
    return bool(version_key(candidate) > version_key(installed))
