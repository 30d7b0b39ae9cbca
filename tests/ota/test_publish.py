"""The publisher CLI (`python -m ota.publish`), slot trees, and the manifest's own checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ota.client import UpdateClient
from ota.errors import TargetError
from ota.manifest import build_manifest, canonical_json, is_newer, parse_manifest, scan_tree
from tests.ota.tuf_fixtures import OtaServer, make_slot, slot_files

ROOT = Path(__file__).resolve().parents[2]


def publish(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ota.publish", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_cli_init_release_timestamp_and_a_client_update(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert publish("init", repo, "--keys", keys).returncode == 0
    assert sorted(p.name for p in (keys / "offline").iterdir()) == ["root.pem", "targets.pem"]
    assert sorted(p.name for p in (keys / "online").iterdir()) == ["snapshot.pem", "timestamp.pem"]
    assert oct((keys / "offline" / "root.pem").stat().st_mode & 0o777) == "0o600"
    again = publish("init", repo, "--keys", keys)
    assert again.returncode == 1
    assert "already initialised" in again.stderr
    slot = make_slot(tmp_path / "slot", slot_files("0.2.0"))
    out = publish("release", repo, "--keys", keys, "--slot-dir", slot, "--version", "0.2.0", "--arch", "x86_64")
    assert out.returncode == 0, out.stderr
    assert "published 0.2.0 for x86_64" in out.stdout
    dup = publish("release", repo, "--keys", keys, "--slot-dir", slot, "--version", "0.2.0", "--arch", "x86_64")
    assert dup.returncode == 1
    assert "already published" in dup.stderr
    ts_before = json.loads((repo / "metadata" / "timestamp.json").read_bytes())["signed"]["version"]
    assert publish("timestamp", repo, "--keys", keys).returncode == 0
    assert json.loads((repo / "metadata" / "timestamp.json").read_bytes())["signed"]["version"] == ts_before + 1
    assert publish("list", repo, "--keys", keys).stdout.split() == ["x86_64", "0.2.0"]
    targets_before = json.loads((repo / "metadata" / "2.targets.json").read_bytes())["signed"]["version"]
    assert publish("resign", repo, "--keys", keys).returncode == 0
    assert (repo / "metadata" / f"{targets_before + 1}.targets.json").exists()

    server = OtaServer(tmp_path / "cloud.sqlite3", repo).start()
    try:
        client = UpdateClient(tmp_path / "md", server.url, (repo / "metadata" / "root.json").read_bytes(), "x86_64")
        release = client.check("0.1.0")
        assert release is not None
        assert release.version == "0.2.0"
        assert release.manifest["files"]["bin/python3"]["link"] == "/usr/bin/python3"
        assert (
            UpdateClient(tmp_path / "md3", server.url, (repo / "metadata/root.json").read_bytes(), "aarch64").check(
                "0.1.0"
            )
            is None
        )  # nothing published for that arch
    finally:
        server.stop()


def test_release_without_the_offline_key_names_it(tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert publish("init", repo, "--keys", keys).returncode == 0
    (keys / "offline" / "targets.pem").unlink()
    slot = make_slot(tmp_path / "slot", {"a.py": b"x"})
    out = publish("release", repo, "--keys", keys, "--slot-dir", slot, "--version", "0.2.0", "--arch", "x86_64")
    assert out.returncode == 1
    assert "targets key" in out.stderr
    assert "targets.pem" in out.stderr


def test_built_slot_is_relocatable_and_runs_the_hub(tmp_path: Path) -> None:
    slot = tmp_path / "slots" / "a"
    out = publish("build-slot", slot, "--source", ROOT, "--deps", "pth")
    assert out.returncode == 0, out.stderr
    moved = tmp_path / "slots" / "b"
    shutil.move(slot, moved)  # slots/a and slots/b swap contents: nothing may hold an absolute path to the slot
    run = subprocess.run(
        [str(moved / "bin" / "python3"), "-c", "import hub, aiohttp, ota; print(hub.__file__, hub.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # `-c` puts the working directory first on sys.path: not the source tree
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(str(moved / "lib"))
    manifest = build_manifest(moved, "0.1.0", "x86_64", "3.11")
    assert "lib/python3.11/site-packages/hub/app.py" in manifest["files"]
    assert not any("__pycache__" in p for p in manifest["files"])


def test_manifest_is_canonical_and_deterministic(tmp_path: Path) -> None:
    slot = make_slot(tmp_path / "s", {"x/é.py": "xin chào\n".encode(), "run.sh": b"#!/bin/sh\n"})
    (slot / "run.sh").chmod(0o755)
    files = scan_tree(slot)
    assert files["run.sh"]["mode"] == 0o755
    assert files["x/é.py"]["mode"] == 0o644
    a = canonical_json(build_manifest(slot, "1.0.0", "aarch64", "3.11"))
    assert b" " not in a.replace(b"xin ch", b"")  # no separators with spaces
    assert parse_manifest(a)["files"]["x/é.py"]["size"] == len("xin chào\n".encode())


@pytest.mark.parametrize(
    ("path", "entry", "reason"),
    [
        ("../etc/passwd", {"sha256": "0" * 64, "size": 1, "mode": 0o644}, "unsafe path"),
        ("/abs", {"sha256": "0" * 64, "size": 1, "mode": 0o644}, "unsafe path"),
        ("a/./b", {"sha256": "0" * 64, "size": 1, "mode": 0o644}, "unsafe path"),
        ("ok.py", {"sha256": "xyz", "size": 1, "mode": 0o644}, "no valid sha256"),
        ("ok.py", {"sha256": "0" * 64, "size": -1, "mode": 0o644}, "no valid size"),
        ("ok.py", {"sha256": "0" * 64, "size": 1, "mode": 0o4755}, "mode"),
        ("lib/x.py", {"sha256": "0" * 64, "size": 1, "mode": 0o644}, "below the symlink"),
    ],
)
def test_manifest_rejects_what_an_installer_must_never_write(path: str, entry: dict[str, int], reason: str) -> None:
    manifest = {
        "format": 1,
        "name": "village-hub",
        "version": "1.0.0",
        "arch": "x86_64",
        "python": "3.11",
        "min_config_version": 1,
        "created_at": "2026-11-24T00:00:00Z",
        "files": {"lib": {"sha256": "1" * 64, "size": 0, "mode": 0o777, "link": "/etc"}, path: entry},
    }
    with pytest.raises(TargetError, match=reason):
        parse_manifest(json.dumps(manifest).encode())


def test_versions_compare_as_releases() -> None:
    assert is_newer("0.10.0", "0.9.9")
    assert is_newer("1.0.0", "1.0.0rc1")
    assert not is_newer("0.2.0", "0.2.0")
    with pytest.raises(TargetError, match="not a valid release version"):
        is_newer("latest", "0.1.0")
