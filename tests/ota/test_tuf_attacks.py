"""The client against a real TUF repository served by the reference cloud over HTTP: updates and attacks.

Every refusal is a specific OtaError with a reason a technician can read, and leaves the installed slot
(its release.json) and the staging area as they were.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from securesystemslib.signer._crypto_signer import CryptoSigner
from tuf.api._payload import MetaFile, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.metadata import Metadata

from ota.client import UpdateClient
from ota.errors import ClockUntrustedError, DiskSpaceError, MetadataError, RollbackError, TargetError
from ota.manifest import MANIFEST_NAME, canonical_json, parse_manifest
from ota.repository import key_path, load_signer
from ota.timetrust import ClockInputs, reference_time
from tests.ota.tuf_fixtures import World, running_world, slot_files


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_world(tmp_path) as w:
        yield w


def _assert_untouched(w: World, before: bytes, staging: Path | None = None) -> None:
    assert w.installed_manifest() == before
    assert json.loads(before)["version"] == "0.1.0"
    if staging is not None and (staging / "blobs").exists():
        assert [p.name for p in (staging / "blobs").iterdir() if not p.name.endswith(".part")] == []


def _blob_of(w: World, version: str, rel: str) -> Path:
    manifest = json.loads(next((w.repo.targets_dir / "releases/x86_64" / version).glob("*.release.json")).read_bytes())
    return w.repo.blobs_dir / str(manifest["files"][rel]["sha256"])


def test_one_module_change_fetches_a_small_fraction(world: World) -> None:
    files = slot_files("0.1.0")
    files["lib/python3.11/site-packages/dep/mod007.py"] = b"# changed module\n" * 300
    world.publish("0.2.0", files)
    client = world.client()
    release = client.check("0.1.0")
    assert release is not None
    assert release.version == "0.2.0"
    assert parse_manifest(release.manifest_bytes)["version"] == "0.2.0"
    plan = client.plan(release, world.have)
    assert set(plan.missing) == {_blob_of(world, "0.2.0", "lib/python3.11/site-packages/dep/mod007.py").name}
    staging = world.tmp / "staging"
    client.fetch(plan, staging)
    assert client.stats.bytes_transferred == plan.fetch_bytes < plan.total_bytes * 0.10
    digest = next(iter(plan.missing))
    assert (staging / "blobs" / digest).read_bytes() == b"# changed module\n" * 300
    assert world.client().check("0.2.0") is None  # up to date: nothing offered


def test_tampered_blob_is_rejected(world: World) -> None:
    world.publish("0.2.0")
    blob = _blob_of(world, "0.2.0", "lib/python3.11/site-packages/hub/__init__.py")
    data = bytearray(blob.read_bytes())
    data[3] ^= 0x01  # one byte changed, same length
    blob.write_bytes(bytes(data))
    before = world.installed_manifest()
    client = world.client()
    release = client.check("0.1.0")
    assert release is not None
    staging = world.tmp / "staging"
    with pytest.raises(TargetError, match="does not match the sha256 in the signed manifest"):
        client.fetch(client.plan(release, world.have), staging)
    assert not (staging / "blobs" / f"{blob.name}.part").exists()
    _assert_untouched(world, before, staging)


def test_tampered_manifest_is_rejected(world: World) -> None:
    world.publish("0.2.0")
    path = next((world.repo.targets_dir / "releases/x86_64/0.2.0").glob("*.release.json"))
    path.write_bytes(path.read_bytes().replace(b'"0.2.0"', b'"0.2.1"'))
    before = world.installed_manifest()
    with pytest.raises(TargetError, match="does not match the signed targets"):
        world.client().check("0.1.0")
    _assert_untouched(world, before)


def test_target_not_listed_is_rejected(world: World) -> None:
    world.publish("0.2.0")
    # An attacker drops a manifest on the server that the targets role never signed.
    forged = dict(json.loads(next((world.repo.targets_dir / "releases/x86_64/0.2.0").glob("*.json")).read_bytes()))
    forged["version"] = "9.9.9"
    rogue = world.repo.targets_dir / "releases/x86_64/9.9.9"
    rogue.mkdir(parents=True)
    (rogue / MANIFEST_NAME).write_bytes(canonical_json(forged))
    before = world.installed_manifest()
    client = world.client()
    with pytest.raises(TargetError, match="not listed in the signed targets"):
        client.release("9.9.9")
    release = world.client().check("0.1.0")
    assert release is not None
    assert release.version == "0.2.0"
    _assert_untouched(world, before)


def test_older_release_is_a_rollback(world: World) -> None:
    before = world.installed_manifest()
    with pytest.raises(RollbackError, match=r"newest release 0\.1\.0 is older than the installed 0\.3\.0"):
        world.client().check("0.3.0")
    with pytest.raises(RollbackError, match="not newer than the installed"):
        world.client().release("0.1.0", installed_version="0.1.0")
    _assert_untouched(world, before)


def test_metadata_rollback_is_rejected(world: World) -> None:
    old_timestamp = (world.repo.metadata_dir / "timestamp.json").read_bytes()
    world.publish("0.2.0")
    client = world.client()
    assert client.check("0.1.0") is not None  # the client has now seen the newer timestamp
    (world.repo.metadata_dir / "timestamp.json").write_bytes(old_timestamp)
    before = world.installed_manifest()
    with pytest.raises(MetadataError, match="rollback"):
        world.client().check("0.1.0")
    _assert_untouched(world, before)


def test_expired_timestamp_is_a_freeze(world: World) -> None:
    world.publish("0.2.0")
    world.repo.bump_timestamp(expires=datetime.now(UTC) - timedelta(minutes=5))
    before = world.installed_manifest()
    with pytest.raises(MetadataError, match="expired") as err:
        world.client().check("0.1.0")
    assert "freeze" in err.value.reason
    _assert_untouched(world, before)


def test_metadata_signed_by_a_wrong_key_is_rejected(world: World) -> None:
    world.publish("0.2.0")
    md: Metadata[Timestamp] = Metadata.from_file(str(world.repo.metadata_dir / "timestamp.json"))
    md.signed.version += 1
    world.repo.write_signed(md, Timestamp.type, [CryptoSigner.generate_ed25519()])
    before = world.installed_manifest()
    with pytest.raises(MetadataError, match="not signed by the trusted keys"):
        world.client().check("0.1.0")
    _assert_untouched(world, before)


def test_mix_and_match_is_rejected(world: World) -> None:
    world.publish("0.2.0")
    # The server answers for the current targets version with an older (validly signed) targets file.
    versions = sorted(int(p.name.split(".")[0]) for p in world.repo.metadata_dir.glob("*.targets.json"))
    latest, older = versions[-1], versions[-2]
    shutil.copyfile(
        world.repo.metadata_dir / f"{older}.targets.json", world.repo.metadata_dir / f"{latest}.targets.json"
    )
    before = world.installed_manifest()
    with pytest.raises(MetadataError, match="mix-and-match"):
        world.client().check("0.1.0")
    _assert_untouched(world, before)


def test_endless_metadata_is_cut_off(world: World) -> None:
    path = world.repo.metadata_dir / "timestamp.json"
    path.write_bytes(path.read_bytes() + b" " * 100_000)
    with pytest.raises(MetadataError, match="endless data"):
        world.client().check("0.0.1")


def test_endless_blob_is_cut_off_at_the_declared_size(world: World) -> None:
    world.publish("0.2.0")
    blob = _blob_of(world, "0.2.0", "lib/python3.11/site-packages/hub/__init__.py")
    with blob.open("ab") as f:
        f.write(b"\0" * 5_000_000)
    before = world.installed_manifest()
    client = world.client()
    release = client.check("0.1.0")
    assert release is not None
    staging = world.tmp / "staging"
    with pytest.raises(TargetError, match="endless data"):
        client.fetch(client.plan(release, world.have), staging)
    assert client.stats.bytes_transferred < 100_000
    _assert_untouched(world, before, staging)


def test_timestamp_key_alone_cannot_install_arbitrary_software(world: World) -> None:
    """The online timestamp key leaks; the attacker forges targets and snapshot with keys of their own."""
    evil = world.tmp / "evil.py"
    evil.write_bytes(b"import os; os.system('rm -rf /')\n")
    forged_manifest = json.loads(world.installed_manifest())
    forged_manifest["version"] = "6.6.6"
    forged_manifest["files"]["lib/python3.11/site-packages/hub/__init__.py"] = {
        "sha256": __import__("hashlib").sha256(evil.read_bytes()).hexdigest(),
        "size": evil.stat().st_size,
        "mode": 0o644,
    }
    data = canonical_json(forged_manifest)
    name = f"releases/x86_64/6.6.6/{MANIFEST_NAME}"
    target = TargetFile.from_data(name, data, ["sha256"])
    (world.repo.targets_dir / "releases/x86_64/6.6.6").mkdir(parents=True)
    (world.repo.targets_dir / "releases/x86_64/6.6.6" / f"{target.hashes['sha256']}.{MANIFEST_NAME}").write_bytes(data)
    shutil.copyfile(
        evil, world.repo.blobs_dir / forged_manifest["files"]["lib/python3.11/site-packages/hub/__init__.py"]["sha256"]
    )
    attacker = CryptoSigner.generate_ed25519()
    targets = world.repo.load(Targets.type)
    targets.signed.version += 1
    targets.signed.targets[name] = target
    targets_bytes = world.repo.write_signed(targets, Targets.type, [attacker])
    snapshot = world.repo.load(Snapshot.type)
    snapshot.signed.version += 1
    snapshot.signed.meta["targets.json"] = MetaFile.from_data(targets.signed.version, targets_bytes, ["sha256"])
    snapshot_bytes = world.repo.write_signed(snapshot, Snapshot.type, [attacker])
    timestamp = world.repo.load(Timestamp.type)
    timestamp.signed.version += 1
    timestamp.signed.snapshot_meta = MetaFile.from_data(snapshot.signed.version, snapshot_bytes, ["sha256"])
    world.repo.write_signed(timestamp, Timestamp.type, [load_signer(key_path(world.repo.keys, "timestamp"))])
    before = world.installed_manifest()
    with pytest.raises(MetadataError, match="not signed by the trusted keys"):
        world.client().check("0.1.0")
    _assert_untouched(world, before)


def test_disk_space_is_checked_before_downloading(world: World) -> None:
    world.publish("0.2.0", slot_files("0.2.0", size=7000))
    client = world.client(reserve_bytes=10**15)
    release = client.check("0.1.0")
    assert release is not None
    staging = world.tmp / "staging"
    with pytest.raises(DiskSpaceError, match="free") as err:
        client.fetch(client.plan(release, world.have), staging)
    assert "not started" in err.value.reason
    assert client.stats.bytes_transferred == 0
    assert list((staging / "blobs").iterdir()) == []


# -- the clock ----------------------------------------------------------------------------------------


def _policy_clock(system_now: datetime, cloud: datetime | None = None, floor: datetime | None = None):
    def now() -> datetime:
        return reference_time(ClockInputs(system_now=system_now, cloud_date=cloud, floor=floor)).now

    return now


def test_a_clock_in_1970_waits_instead_of_checking(world: World) -> None:
    world.publish("0.2.0")
    client = world.client(now=_policy_clock(datetime(1970, 1, 1, tzinfo=UTC)))
    with pytest.raises(ClockUntrustedError, match="not synchronised"):
        client.check("0.1.0")


def test_a_clock_behind_does_not_accept_stale_metadata(world: World) -> None:
    """The timestamp expired an hour ago; a box two hours behind would take it as fresh. It must not."""
    world.publish("0.2.0")
    real_now = datetime.now(UTC)
    world.repo.bump_timestamp(expires=real_now - timedelta(hours=1))
    behind = real_now - timedelta(hours=2)
    with pytest.raises(ClockUntrustedError):
        world.client(now=_policy_clock(behind)).check("0.1.0")
    # Once the cloud's authenticated time is known, the freeze is seen for what it is.
    with pytest.raises(MetadataError, match="expired"):
        world.client(now=_policy_clock(behind, cloud=real_now)).check("0.1.0")


def test_a_wrong_clock_does_not_lock_the_box_out(world: World) -> None:
    world.publish("0.2.0")
    boot_1970 = datetime(1970, 1, 1, tzinfo=UTC)
    floor = datetime.now(UTC) - timedelta(days=30)
    client = world.client(now=_policy_clock(boot_1970, cloud=datetime.now(UTC), floor=floor))
    release = client.check("0.1.0")
    assert release is not None
    assert release.version == "0.2.0"


def test_reference_time_is_what_tuf_compares_with(world: World) -> None:
    """A trusted clock a week ahead sees the one-day timestamp as expired: the hook reaches ngclient."""
    ahead = datetime.now(UTC) + timedelta(days=8)
    with pytest.raises(MetadataError, match="expired"):
        UpdateClient(world.tmp / "md2", world.server.url, world.repo.root_bytes(), "x86_64", now=lambda: ahead).check(
            "0.0.1"
        )


def test_a_release_with_a_blob_over_the_limit_is_refused(world: World) -> None:
    world.publish("0.2.0")
    before = world.installed_manifest()
    with pytest.raises(TargetError, match="exceeds the blob limit"):
        world.client(max_blob_bytes=50_000).check("0.1.0")  # big.bin is 102,400 bytes
    _assert_untouched(world, before)


def test_garbage_metadata_is_a_metadata_error(world: World) -> None:
    (world.repo.metadata_dir / "timestamp.json").write_bytes(b"<html>captive portal login</html>")
    with pytest.raises(MetadataError, match="metadata refused"):
        world.client().check("0.1.0")
    with pytest.raises(MetadataError, match="bootstrap root is not valid"):
        UpdateClient(world.tmp / "md-bad", world.server.url, b"not json", "x86_64").check("0.1.0")
