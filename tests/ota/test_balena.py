"""balenaOS mode: the supervisor's lockfile semantics, and the hub holding the lock while it broadcasts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.bus import CommandError
from hub.updates.service import UpdateService
from hub.updates.settings import OtaSettings
from ota import balena
from ota.balena_fleet import parse_assignments
from tests.broadcast.rig import VN, Rig


def test_detects_the_supervisors_environment(tmp_path: Path) -> None:
    assert balena.detect({}) is None
    assert balena.detect({"PATH": "/usr/bin"}) is None
    env = balena.detect(
        {
            "BALENA_SUPERVISOR_ADDRESS": "http://127.0.0.1:48484",
            "BALENA_SUPERVISOR_API_KEY": "k",
            "BALENA_DEVICE_UUID": "abc",
            "BALENA_APP_LOCK_PATH": str(tmp_path / "updates.lock"),
        }
    )
    assert env is not None
    assert env.lock_path == tmp_path / "updates.lock"
    assert balena.detect({"BALENA": "1"}) is not None
    assert balena.detect({"BALENA": "1"}).lock_path == balena.DEFAULT_LOCK_PATH  # type: ignore[union-attr]


def test_lockfile_is_exclusive_and_released_by_unlinking(tmp_path: Path) -> None:
    path = tmp_path / "balena" / "updates.lock"
    lock = balena.UpdateLock(path)
    assert lock.acquire()
    assert path.exists()
    # The supervisor takes the lock the same way (O_CREAT|O_EXCL) before killing the app: it must fail now.
    with pytest.raises(FileExistsError):
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    lock.release()
    assert not path.exists()


def test_a_lock_the_supervisor_holds_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "updates.lock"
    path.write_text("")  # the supervisor's (empty) lockfile: it is applying an update
    lock = balena.UpdateLock(path)
    assert not lock.acquire()
    assert lock.last_refusal is not None
    assert "supervisor" in lock.last_refusal
    assert path.exists()


def test_a_lock_left_by_a_dead_hub_process_is_taken_back(tmp_path: Path) -> None:
    path = tmp_path / "updates.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(f"{balena.OWNER_TAG} {dead.stdout.strip()}\n")
    lock = balena.UpdateLock(path)
    assert lock.acquire()
    assert path.read_text().split()[1] == str(os.getpid())
    lock.release()


async def test_the_hub_holds_the_update_lock_while_it_broadcasts(tmp_path: Path) -> None:
    lock_path = tmp_path / "tmp-balena" / "updates.lock"
    env = {"BALENA_SUPERVISOR_ADDRESS": "http://127.0.0.1:1", "BALENA_APP_LOCK_PATH": str(lock_path)}
    async with Rig(tmp_path / "rig", dt.datetime(2025, 9, 1, 12, 0, tzinfo=VN)) as rig:
        assert rig.store is not None
        service = UpdateService(
            OtaSettings.model_validate({"root": str(tmp_path / "root")}, strict=False),
            rig.store,
            rig.bus,
            health=dict,
            request_restart=lambda why: None,
            data_dir=tmp_path,
            config_path=tmp_path / "hub.toml",
            env=env,
            wall=rig.clock.now,
        )
        assert service.mode == "balena"
        task = asyncio.create_task(service.run())
        try:
            await asyncio.sleep(0.2)
            assert not lock_path.exists()
            await rig.svc.play_now(items=[{"kind": "text", "text": "[1.5s] thông báo"}], zones=["khu 1"])
            await rig.wait_for(lock_path.exists, 5, "the update lock during the broadcast")
            assert service.health()["lock_held"] is True
            assert "holding the balena update lock" in (service.waiting or "")
            with pytest.raises(CommandError, match="balenaOS"):
                await rig.bus.call("ota.install_now")
            await rig.wait_logged("played", timeout=10)
            await rig.wait_for(lambda: not lock_path.exists(), 5, "the lock released after the broadcast")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        kinds = [kind for kind, _ in rig.outbox()]
        assert kinds.index("ota.lock_taken") < kinds.index("ota.lock_released")


def test_fleet_helper_parses_assignments_and_needs_the_optional_extra() -> None:
    assert parse_assignments(["HUB_ID=thon-3", "EMPTY="]) == {"HUB_ID": "thon-3", "EMPTY": ""}
    with pytest.raises(ValueError, match="NAME=value"):
        parse_assignments(["no-equals"])
    out = subprocess.run(
        [sys.executable, "-m", "ota.balena_fleet", "set-vars", "--device", "abc", "A=1"],
        capture_output=True,
        text=True,
        env={**os.environ, "BALENA_API_KEY": ""},
        check=False,
    )
    assert out.returncode == 2
    assert "BALENA_API_KEY" in out.stderr
