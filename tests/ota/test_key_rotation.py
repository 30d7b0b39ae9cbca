"""Key rotation and root renewal in the publisher (`hub-release rotate-key`, `hub-release resign`), checked by the
real client against the repository served over HTTP: a box that trusts only the root it shipped with follows
every rotation, and what the retired key signs afterwards is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api._payload import Root, Timestamp
from tuf.api.metadata import Metadata

from ota.client import UpdateClient
from ota.errors import MetadataError
from ota.publish import main as hub_release
from ota.repository import ExpiryPolicy, Repository, key_path, load_signer
from tests.ota.tuf_fixtures import OtaServer, World, make_slot, running_world, slot_files


def box(world: World, shipped_root: bytes, name: str) -> UpdateClient:
    """A box whose image holds `shipped_root` (and its own metadata cache `name`)."""
    return UpdateClient(world.tmp / name, world.server.url, shipped_root, "x86_64")


def test_every_rotation_is_followed_and_the_retired_timestamp_key_is_refused(tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        shipped = world.repo.root_bytes()
        keys = world.tmp / "keys"
        regular = box(world, shipped, "checks-every-day")
        assert regular.check("0.1.0") is None
        old_timestamp = load_signer(key_path(keys, "timestamp"))
        versions = ["0.2.0", "0.3.0", "0.4.0", "0.5.0"]
        for role, version in zip(("timestamp", "snapshot", "targets", "root"), versions, strict=True):
            old_id = load_signer(key_path(keys, role)).public_key.keyid
            assert hub_release(["rotate-key", str(world.repo.root), "--keys", str(keys), "--role", role]) == 0
            new_id = load_signer(key_path(keys, role)).public_key.keyid
            assert new_id != old_id
            assert (keys / "retired" / f"{role}-{old_id[:16]}.pem").exists()
            root = world.repo.load(Root.type).signed
            assert root.roles[role].keyids == [new_id]
            world.publish(version)
            release = regular.check("0.1.0")
            assert release is not None
            assert release.version == version, role
        # A box that was offline through all four rotations follows the chain from the root it shipped with.
        offline = box(world, shipped, "offline-all-along")
        release = offline.check("0.1.0")
        assert release is not None
        assert release.version == "0.5.0"
        # Whoever stole the old timestamp key can no longer sign a timestamp the boxes accept.
        forged: Metadata[Timestamp] = Metadata.from_file(str(world.repo.metadata_dir / "timestamp.json"))
        forged.signed.version += 1
        world.repo.write_signed(forged, Timestamp.type, [old_timestamp])
        with pytest.raises(MetadataError, match="not signed by the trusted keys"):
            box(world, shipped, "after-the-breach").check("0.1.0")


def test_resign_renews_a_root_close_to_expiry_and_boxes_accept_it(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo", tmp_path / "keys", ExpiryPolicy(root=timedelta(days=30)))
    shipped = repo.root_bytes()
    server = OtaServer(tmp_path / "cloud.sqlite3", repo.root).start()
    try:
        repo.add_release(make_slot(tmp_path / "build", slot_files("0.2.0")), "0.2.0", "x86_64", "3.11")
        assert hub_release(["resign", str(repo.root), "--keys", str(tmp_path / "keys")]) == 0
        root = repo.load(Root.type).signed
        assert root.version == 2
        assert root.expires > datetime.now(UTC) + timedelta(days=300)  # the default policy's year
        assert hub_release(["resign", str(repo.root), "--keys", str(tmp_path / "keys")]) == 0
        assert repo.load(Root.type).signed.version == 2  # valid for long enough: left alone
        release = UpdateClient(tmp_path / "box", server.url, shipped, "x86_64").check("0.1.0")
        assert release is not None
        assert release.version == "0.2.0"
    finally:
        server.stop()


def test_an_interrupted_rotation_is_finished_with_the_key_the_new_root_names(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo", tmp_path / "keys")
    keys = tmp_path / "keys"
    first = repo.rotate_key("snapshot")
    # The publisher stopped after the new root, before the key files moved: a `.new` key the root names.
    path = key_path(keys, "snapshot")
    pending = path.with_name(path.name + ".new")
    path.replace(pending)
    path.write_bytes(load_signer(keys / "retired" / next(p.name for p in (keys / "retired").iterdir())).private_bytes)
    finished = repo.rotate_key("snapshot")
    assert finished == first  # the key the root already names, not a third one
    assert repo.load(Root.type).signed.roles["snapshot"].keyids == [first]
    assert load_signer(path).public_key.keyid == first
    assert not pending.exists()
    with pytest.raises(ValueError, match="role: expected one of"):
        repo.rotate_key("mirror")
