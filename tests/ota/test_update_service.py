"""The update service with the real broadcast service on the simulated loudspeaker, a real TUF repository over
HTTP and real slot directories: an update waits for the maintenance window and for broadcasts, says why, and
installs when they end."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hub import __version__
from hub.updates.service import UpdateService, in_window
from hub.updates.settings import OtaSettings
from ota import slots
from ota.client import UpdateClient
from ota.repository import Repository
from tests.broadcast.rig import VN, Rig
from tests.ota.slotkit import small_tree
from tests.ota.tuf_fixtures import OtaServer

START = dt.datetime(2025, 9, 1, 4, 59, 56, tzinfo=VN)
NEWER = "99.0.0"  # newer than whatever the tree's __version__ is


def test_window_crossing_midnight() -> None:
    assert in_window(dt.time(2, 0), dt.time(1, 0), dt.time(4, 0))
    assert not in_window(dt.time(4, 0), dt.time(1, 0), dt.time(4, 0))
    assert in_window(dt.time(23, 30), dt.time(23, 0), dt.time(2, 0))
    assert in_window(dt.time(1, 59), dt.time(23, 0), dt.time(2, 0))
    assert not in_window(dt.time(12, 0), dt.time(23, 0), dt.time(2, 0))
    assert in_window(dt.time(12, 0), dt.time(0, 0), dt.time(0, 0))


def test_settings_name_a_bad_window_time() -> None:
    with pytest.raises(ValueError, match="window_start"):
        OtaSettings.model_validate({"window_start": "25:00"})


class Box:
    """Slot a installed (a small tree), a repository with a newer release, and the service's collaborators."""

    def __init__(self, tmp: Path) -> None:
        self.layout = slots.Layout(tmp / "root")
        manifest = small_tree(self.layout.slot("a"), __version__)
        (self.layout.slot("a") / slots.RELEASE_NAME).write_bytes(manifest)
        slots.switch(self.layout, "a")
        self.repo = Repository.init(tmp / "repo", tmp / "keys")
        build = tmp / "build"
        small_tree(build, NEWER, extra={"lib/feature.py": b"FEATURE = True\n"})
        self.repo.add_release(build, NEWER, "x86_64", "3.11")
        self.server = OtaServer(tmp / "cloud.sqlite3", self.repo.root).start()
        self.tmp = tmp
        self.restarts: list[tuple[float, str]] = []

    def client(self) -> UpdateClient:
        return UpdateClient(self.tmp / "metadata", self.server.url, self.repo.root_bytes(), "x86_64")

    def service(self, rig: Rig, **settings: Any) -> UpdateService:
        assert rig.store is not None
        values = {"root": str(self.layout.root), "window_start": "00:00", "window_end": "00:00", **settings}
        return UpdateService(
            OtaSettings.model_validate(values, strict=False),
            rig.store,
            rig.bus,
            health=lambda: {"status": "ok", "services": {}},
            request_restart=lambda why: self.restarts.append((asyncio.get_running_loop().time(), why)),
            data_dir=self.tmp / "data",
            config_path=self.tmp / "hub.toml",
            tz="Asia/Ho_Chi_Minh",
            client_factory=self.client,
            prefix=str(self.layout.slot("a")),
            wall=rig.clock.now,
        )


@pytest.fixture
def box(tmp_path: Path) -> Any:
    made = Box(tmp_path)
    try:
        yield made
    finally:
        made.server.stop()


async def _run(service: UpdateService) -> asyncio.Task[None]:
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0.1)
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_an_update_due_during_a_broadcast_waits_until_it_ends(tmp_path: Path, box: Box) -> None:
    async with Rig(tmp_path / "rig", START) as rig:
        service = box.service(rig)
        task = await _run(service)
        try:
            await rig.svc.play_now(items=[{"kind": "text", "text": "[2.5s] họp thôn"}], zones=["khu 1"])
            await rig.wait_for(lambda: rig.svc.arbiter.current is not None, 5, "the broadcast to start")
            await rig.bus.call("ota.install_now", who="test")
            await rig.wait_for(lambda: service.waiting, 30, "the update to wait")
            assert service.waiting is not None
            assert service.waiting == "a broadcast is playing ([2.5s] họp thôn)"  # its title, as the page shows it
            assert service.health()["waiting"] == service.waiting
            assert service.layout.release("b") is not None  # staged in the inactive slot meanwhile
            assert service.layout.active() == "a"
            assert not box.restarts
            await rig.wait_logged("played", timeout=15)
            ended_at = asyncio.get_running_loop().time()
            await rig.wait_for(lambda: box.restarts, 40, "the install after the broadcast")
        finally:
            await _stop(task)
        assert box.restarts[0][0] >= ended_at - 0.5
        assert NEWER in box.restarts[0][1]
        assert service.layout.active() == "b"
        trial = slots.load_state(service.layout)["trial"]
        assert (trial["version"], trial["from_slot"]) == (NEWER, "a")
        kinds = [kind for kind, _ in rig.outbox()]
        for kind in ("ota.install_requested", "ota.checked", "ota.downloaded", "ota.slot_built", "ota.switched"):
            assert kind in kinds, kinds
        waits = [payload for kind, payload in rig.outbox() if kind == "ota.install_waiting"]
        assert any("broadcast is playing" in json.dumps(p, ensure_ascii=False) for p in waits)


async def test_a_broadcast_due_within_the_margin_holds_the_install(tmp_path: Path, box: Box) -> None:
    async with Rig(tmp_path / "rig", dt.datetime(2025, 9, 1, 4, 52, tzinfo=VN)) as rig:
        await rig.svc.upsert_programme(
            {"id": "sang", "name": "Sáng", "zones": ["khu 1"], "items": [{"kind": "text", "text": "x"}]}
        )
        await rig.svc.upsert_schedule({"id": "s", "programme_id": "sang", "kind": "daily", "times": ["05:00"]})
        service = box.service(rig)
        reason = await service.why_wait()
        assert reason is not None
        assert "due at 05:00" in reason
        assert "(in 8 min)" in reason
        narrow = box.service(rig, broadcast_margin_s=300)
        assert await narrow.why_wait() is None


async def test_outside_the_window_it_waits_unless_told_now(tmp_path: Path, box: Box) -> None:
    async with Rig(tmp_path / "rig", dt.datetime(2025, 9, 1, 12, 0, tzinfo=VN)) as rig:
        service = box.service(rig, window_start="01:00", window_end="04:00")
        assert await service.why_wait() == "outside the maintenance window 01:00-04:00"
        task = await _run(service)
        try:
            await rig.bus.call("ota.install_now", who="test")
            await rig.wait_for(lambda: box.restarts, 40, "the install on command")
        finally:
            await _stop(task)
        assert service.layout.active() == "b"


async def test_a_fix_published_while_a_release_waits_for_the_window_replaces_it(tmp_path: Path, box: Box) -> None:
    async with Rig(tmp_path / "rig", dt.datetime(2025, 9, 1, 12, 0, tzinfo=VN)) as rig:
        service = box.service(rig, window_start="01:00", window_end="04:00")
        task = await _run(service)
        try:
            await rig.bus.call("ota.check_now", who="test")
            await rig.wait_for(lambda: service.staged and service.waiting, 30, "the release to wait for the window")
            assert service.staged == {"slot": "b", "version": NEWER}
            fix = "99.0.1"
            build = tmp_path / "build-fix"
            small_tree(build, fix, extra={"lib/feature.py": b"FEATURE = 'fixed'\n"})
            box.repo.add_release(build, fix, "x86_64", "3.11")
            await rig.bus.call("ota.check_now", who="test")
            await rig.wait_for(lambda: (service.staged or {}).get("version") == fix, 30, "the fix to be staged")
            assert service.waiting == "outside the maintenance window 01:00-04:00"
            assert not box.restarts
            assert service.layout.version("b") == fix
            await rig.bus.call("ota.check_now", who="test")  # nothing newer again: the staged fix stays
            await rig.wait_for(lambda: service.phase == "waiting", 10, "the check")
            await rig.bus.call("ota.install_now", who="test")
            await rig.wait_for(lambda: box.restarts, 40, "the install on command")
        finally:
            await _stop(task)
        assert fix in box.restarts[0][1]
        trial = slots.load_state(service.layout)["trial"]
        assert trial["version"] == fix
        built = [payload["version"] for kind, payload in rig.outbox() if kind == "ota.slot_built"]
        assert built == [NEWER, fix]  # each staged once


def _immutable(path: Path, on: bool) -> bool:
    """chattr ±i: even root cannot create files in an immutable directory (what a failing card looks like)."""
    flag = "+i" if on else "-i"
    return subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False).returncode == 0


async def test_a_fix_that_fails_to_build_never_leaves_a_half_slot_to_switch_to(tmp_path: Path, box: Box) -> None:
    async with Rig(tmp_path / "rig", dt.datetime(2025, 9, 1, 12, 0, tzinfo=VN)) as rig:
        service = box.service(rig, window_start="01:00", window_end="04:00")
        task = await _run(service)
        lib = box.layout.slot("b") / "lib"
        try:
            await rig.bus.call("ota.check_now", who="test")
            await rig.wait_for(lambda: service.staged and service.waiting, 30, "the release to wait for the window")
            build = tmp_path / "build-fix"
            small_tree(build, "99.0.1", extra={"lib/feature.py": b"FEATURE = 'fixed'\n"})
            box.repo.add_release(build, "99.0.1", "x86_64", "3.11")
            # The card refuses writes in the staged slot's lib/ (as a full or failing card would): the fix's build
            # stops half-way, after the staged release's release.json is gone.
            if not await asyncio.to_thread(_immutable, lib, True):
                pytest.skip("chattr +i is not available on this filesystem")
            await rig.bus.call("ota.check_now", who="test")
            await rig.wait_for(lambda: service.staged is None, 30, "the service to give up the broken stage")
            assert service.layout.release("b") is None  # incomplete: its release.json is written last
            assert any("update check failed" in p for p in service.problems()), service.problems()
            await rig.bus.call("ota.install_now", who="test")
            await rig.wait_for(lambda: service.phase == "idle", 30, "the check the command asked for")
            await asyncio.sleep(0.5)
            assert not box.restarts  # never switched to the half-built slot
            assert await asyncio.to_thread(_immutable, lib, False)
            await rig.bus.call("ota.check_now", who="test")  # the card works again: the next check stages the fix
            await rig.wait_for(lambda: service.layout.version("b") == "99.0.1", 30, "the fix staged")
        finally:
            await asyncio.to_thread(_immutable, lib, False)
            await _stop(task)
        assert service.layout.active() == "a"


async def test_off_when_not_running_from_a_slot(tmp_path: Path, box: Box) -> None:
    async with Rig(tmp_path / "rig", START) as rig:
        assert rig.store is not None
        service = UpdateService(
            OtaSettings.model_validate({"root": str(box.layout.root)}, strict=False),
            rig.store,
            rig.bus,
            health=dict,
            request_restart=lambda why: None,
            data_dir=tmp_path,
            config_path=tmp_path / "hub.toml",
            prefix=str(tmp_path / "venv"),
        )
        task = await _run(service)
        try:
            assert service.health()["mode"] == "off"
            with pytest.raises(Exception, match="does not run from an update slot"):
                await rig.bus.call("ota.install_now")
        finally:
            await _stop(task)
