"""The whole update path with real processes: a TUF repository served over HTTP, the real hub running from
real slot directories under a temp root, the boot guard run before every start as the systemd unit does, and
kill -9 at each step. Releases are real hub trees (their own copy of the source with another __version__);
bad releases are real too: one whose web listener never starts (a critical service down), one whose hub
package fails to import."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ota import slots
from ota.repository import Repository
from tests.ota.slotkit import REPO, Runner, hub_slot, install_initial
from tests.ota.tuf_fixtures import OtaServer
from tests.support.processes import HubProcess, http_get, write_hub_config

pytestmark = pytest.mark.timeout(240)

OLD, NEW = "0.9.0", "0.9.1"


@dataclass
class Box:
    tmp: Path
    root: Path
    layout: slots.Layout
    repo: Repository
    server: OtaServer
    config: Path
    runner: Runner

    def state(self) -> dict[str, Any]:
        return slots.load_state(self.layout)

    def publish(self, version: str, payload: bytes | None = None, **kw: Any) -> None:
        build = self.tmp / f"build-{version}"
        hub_slot(build, version, **kw)
        if payload is not None:
            (build / "lib" / "payload.bin").write_bytes(payload)
        self.repo.add_release(build, version, "x86_64", "3.11")

    def health(self) -> dict[str, Any] | None:
        hub = HubProcess(self.config)
        try:
            status, body = http_get(hub.url + "/api/health", token=hub.local_token, timeout=2.0)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    def outbox_kinds(self) -> list[str]:
        data = HubProcess(self.config).data_dir / "hub.sqlite3"
        with sqlite3.connect(f"{data.as_uri()}?mode=ro", uri=True) as conn:
            return [r[0] for r in conn.execute("SELECT kind FROM outbox WHERE kind LIKE 'ota.%' ORDER BY seq")]

    def last(self) -> dict[str, Any]:
        return self.state().get("last_result") or {}


@contextlib.contextmanager
def _box(tmp: Path, *, health_window_s: float = 60.0, max_boots: int = 3, rate_kbps: int = 0) -> Iterator[Box]:
    root = tmp / "root"
    layout = install_initial(root, OLD)
    repo = Repository.init(tmp / "repo", tmp / "keys")
    server = OtaServer(tmp / "cloud.sqlite3", repo.root).start()
    trusted = tmp / "ota-root.json"
    trusted.write_bytes(repo.root_bytes())
    extra = f"""
[ota]
root = "{root}"
repo_url = "{server.url}"
trusted_root = "{trusted}"
window_start = "00:00"
window_end = "00:00"
check_interval_s = 2.0
health_window_s = {health_window_s}
max_boots = {max_boots}
trust_system_clock = true
download_rate_kbps = {rate_kbps}
"""
    config = write_hub_config(tmp / "etc", "ota-test-hub", cloud_url=None, token=None, extra=extra)
    runner = Runner(root, config, tmp / "hub.log")
    box = Box(tmp, root, layout, repo, server, config, runner)
    try:
        yield box
    finally:
        runner.stop()
        server.stop()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    with _box(tmp_path) as made:
        yield made


def _running_version(box: Box, version: str) -> bool:
    health = box.health()
    return health is not None and health["version"] == version


def test_a_release_is_installed_committed_and_reported(box: Box) -> None:
    box.publish(NEW)
    box.runner.start()
    box.runner.wait_until(lambda: box.last().get("result") == "committed", 150, "the new release to commit")
    assert box.layout.active() == "b"
    box.runner.wait_until(lambda: _running_version(box, NEW), 30, "the new version to answer")
    box.runner.wait_until(lambda: "ota.committed" in box.outbox_kinds(), 20, "the commit in the outbox")
    health = box.health()
    assert health is not None
    ota = health["services"]["ota"]["details"]
    assert (ota["mode"], ota["slot"], ota["previous_slot"], ota["previous_version"]) == ("slots", "b", "a", OLD)
    assert ota["last_result"]["version"] == NEW, ota
    box.runner.wait_until(lambda: "ota.committed" in box.outbox_kinds(), 20, "the commit in the outbox")
    kinds = box.outbox_kinds()
    for kind in ("ota.checked", "ota.download_started", "ota.downloaded", "ota.slot_built", "ota.switched"):
        assert kind in kinds, kinds
    # Incremental: only the files that differ were downloaded, the rest linked from slot a.
    staged = list((box.root / "staging" / "blobs").iterdir())
    assert 0 < len(staged) < 5, staged
    # The guard that judges the next release is the committed one's.
    assert (box.root / "guard" / "guard.py").exists()


def test_outside_systemd_the_hub_restarts_into_the_new_slot(tmp_path: Path) -> None:
    """No systemd (a container, the demo): the hub re-executes itself, through the guard, into `current`."""
    with _box(tmp_path) as box:
        box.runner.systemd = False
        box.publish(NEW)
        box.runner.start()
        pid = box.runner.proc.pid if box.runner.proc else None
        box.runner.wait_until(lambda: box.last().get("result") == "committed", 150, "the new release to commit")
        box.runner.wait_until(lambda: _running_version(box, NEW), 30, "the new version to answer")
        assert box.runner.starts == 1  # never exited: it re-executed itself
        assert box.runner.proc is not None
        assert box.runner.proc.pid == pid
        assert box.state()["history"][-1]["kind"] == "ota.committed"


def test_a_slot_interpreter_running_other_code_neither_commits_nor_installs(box: Box) -> None:
    """Started from the source tree without -P, slot a's interpreter imports the tree's hub (another version):
    the hub says so and does not install the published release again and again (it would never see itself
    as up to date)."""
    box.publish(NEW)
    box.runner.isolated = False
    box.runner.cwd = REPO
    box.runner.start()
    box.runner.wait_until(lambda: _ota_problems(box), 60, "the hub to notice it is not slot a's code")
    [problem] = _ota_problems(box)
    assert f"not slot a's release {OLD}" in problem, problem
    assert str(REPO / "hub") in problem
    box.runner.wait_until(lambda: "ota.check_failed" in box.outbox_kinds() or _checked(box), 30, "a check")
    time.sleep(5)  # two more check intervals: nothing gets installed
    assert box.layout.active() == "a"
    assert box.layout.release("b") is None
    assert not [k for k in box.outbox_kinds() if k in ("ota.download_started", "ota.switched")]


def _ota_problems(box: Box) -> list[str]:
    health = box.health()
    problems = (health or {}).get("services", {}).get("ota", {}).get("problems", [])
    return [p for p in problems if "not slot" in p]


def _checked(box: Box) -> bool:
    health = box.health()
    last = (health or {}).get("services", {}).get("ota", {}).get("details", {}).get("last_check") or {}
    return last.get("result") == "failed"


def test_a_release_that_never_becomes_healthy_is_rolled_back(tmp_path: Path) -> None:
    with _box(tmp_path, health_window_s=8.0) as box:
        box.publish(NEW, break_web=True)
        box.runner.start()
        box.runner.wait_until(lambda: box.last().get("result") == "rolled-back", 150, "the rollback")
        last = box.last()
        assert last["failed_version"] == NEW
        assert "not healthy within 8 s" in last["reason"]
        assert "web" in last["reason"]
        assert box.layout.active() == "a"
        box.runner.wait_until(lambda: _running_version(box, OLD), 40, "the old version to run again")
        box.runner.wait_until(lambda: "ota.rolled_back" in box.outbox_kinds(), 20, "the rollback in the outbox")
        health = box.health()
        assert health is not None
        assert any(NEW in p for p in health["services"]["ota"]["problems"])


def test_a_release_that_crashes_at_start_is_rolled_back_by_the_guard(tmp_path: Path) -> None:
    with _box(tmp_path, max_boots=2) as box:
        box.publish(NEW, break_import=True)
        box.runner.start()
        box.runner.wait_until(lambda: box.last().get("result") == "rolled-back", 150, "the guard's rollback")
        last = box.last()
        assert last["failed_version"] == NEW
        assert "started 2 times" in last["reason"]
        assert box.layout.active() == "a"
        box.runner.wait_until(lambda: _running_version(box, OLD), 40, "the old version to run again")
        assert "ModuleNotFoundError" in box.runner.log.read_text(errors="replace")


def _kill_when(box: Box, predicate: Any, what: str, timeout: float = 120) -> None:
    box.runner.wait_until(predicate, timeout, what, interval=0.01)  # building a slot takes well under a second
    box.runner.kill9()


def _recovers(box: Box) -> None:
    """After a kill -9: the guard and the service bring up a working slot, and the update completes."""
    box.runner.wait_until(lambda: box.last().get("result") == "committed", 150, "the update to complete")
    assert box.layout.active() == "b"
    box.runner.wait_until(lambda: _running_version(box, NEW), 30, "the new version to answer")


@pytest.mark.slow
def test_kill_mid_download_resumes(tmp_path: Path) -> None:
    with _box(tmp_path, rate_kbps=2048) as box:
        # One large new file in the release: its download takes ~3 s at the capped rate.
        box.publish(NEW, payload=os.urandom(6 * 1024 * 1024))
        parts = box.root / "staging" / "blobs"

        def downloading() -> bool:
            return any(p.name.endswith(".part") and p.stat().st_size > 100_000 for p in parts.glob("*.part"))

        box.runner.start()
        _kill_when(box, downloading, "a partial download")
        sizes = {p.name: p.stat().st_size for p in parts.glob("*.part")}
        assert sizes
        assert box.layout.active() == "a"
        box.runner.wait_until(lambda: box.last().get("result") == "committed", 150, "the update to complete")
        assert box.last()["version"] == NEW
        assert not list(parts.glob("*.part"))


@pytest.mark.slow
def test_kill_mid_unpack_starts_clean(box: Box) -> None:
    box.publish(NEW)

    def unpacking() -> bool:
        slot_b = box.layout.slot("b")
        return slot_b.exists() and not (slot_b / slots.RELEASE_NAME).exists()

    box.runner.start()
    _kill_when(box, unpacking, "the inactive slot being built")
    assert box.layout.active() == "a"  # an incomplete slot is never switched to
    _recovers(box)


@pytest.mark.slow
def test_kill_after_switch_before_commit(box: Box) -> None:
    box.publish(NEW)
    box.runner.start()

    def on_trial() -> bool:
        trial = box.state().get("trial") or {}
        return trial.get("boots") == 1 and _running_version(box, NEW)

    _kill_when(box, on_trial, "the new release running on trial")
    assert box.state()["trial"] is not None
    _recovers(box)
    assert box.last()["boots"] == 2  # the guard counted the start after the kill


def test_hub_ota_status_prints_the_slots(box: Box) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "hub", "--config", str(box.config), "ota", "status"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert f"version   {OLD} (slot a)" in out.stdout
    assert "trial     none" in out.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "hub", "--config", str(box.config), "ota", "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(as_json.stdout)["slot"] == "a"
