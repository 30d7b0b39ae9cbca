"""The reference cloud keeps the short-lived timestamp fresh when given the online key (`--ota-keys`)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.ota_repo import refresh_online_metadata
from ota.repository import Repository
from tests.support.processes import HUB_CLOUD, free_port, wait_until


def _timestamp_version(repo: Repository) -> int:
    return int(json.loads((repo.metadata_dir / "timestamp.json").read_bytes())["signed"]["version"])


def test_online_roles_are_re_signed_when_half_their_lifetime_is_gone(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo", tmp_path / "keys")
    version = _timestamp_version(repo)
    assert refresh_online_metadata(repo.root, repo.keys) == []
    assert _timestamp_version(repo) == version
    assert refresh_online_metadata(repo.root, repo.keys, now=datetime.now(UTC) + timedelta(hours=13)) == ["timestamp"]
    assert _timestamp_version(repo) == version + 1
    snapshot = repo.load("snapshot").signed.version
    # Four days on, the one-week snapshot is past half its life: re-signed, and the timestamp naming it too.
    four_days = datetime.now(UTC) + timedelta(days=4)
    assert refresh_online_metadata(repo.root, repo.keys, now=four_days) == ["snapshot", "timestamp"]
    assert repo.load("snapshot").signed.version == snapshot + 1
    assert repo.load("timestamp").signed.snapshot_meta.version == snapshot + 1


def test_hub_cloud_serve_re_signs_a_timestamp_about_to_expire(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo", tmp_path / "keys")
    repo.bump_timestamp(expires=datetime.now(UTC) + timedelta(hours=1))
    version = _timestamp_version(repo)
    online_only = tmp_path / "server-keys"  # the server holds only the online keys
    (online_only / "online").mkdir(parents=True)
    for name in ("snapshot.pem", "timestamp.pem"):
        (online_only / "online" / name).write_bytes((repo.keys / "online" / name).read_bytes())
    with (tmp_path / "cloud.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                HUB_CLOUD,
                "--db",
                str(tmp_path / "c.sqlite3"),
                "serve",
                "--port",
                str(free_port()),
                "--admin-token",
                "t",
                "--ota-repo",
                str(repo.root),
                "--ota-keys",
                str(online_only),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _timestamp_version(repo) == version + 1, 30, what="the timestamp to be re-signed")
    finally:
        proc.terminate()
        proc.wait(10)
    expires = repo.load("timestamp").signed.expires
    assert expires - datetime.now(UTC) > timedelta(hours=23)
