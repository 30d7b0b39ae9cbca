"""The shutdown plan on its own: when it arms, what cancels it, the hub's preparation, a failing command."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from drivers.power import PowerEvent, ShutdownPlan
from drivers.power.interface import EventKind
from tests.drivers.power.conftest import MARKER_SCRIPT, exists, state


def event(kind: EventKind, volts: float = 6.2) -> PowerEvent:
    return PowerEvent(kind, time.monotonic(), time.time(), volts, kind != "mains_lost")


def poweroff(marker: Path) -> list[str]:
    return [sys.executable, "-c", MARKER_SCRIPT, str(marker)]


async def test_prepare_runs_before_the_command(tmp_path: Path, marker: Path) -> None:
    order: list[str] = []

    async def prepare() -> None:
        order.append(f"prepare (marker exists: {await exists(marker)})")

    plan = ShutdownPlan(poweroff(marker), 0.05, prepare=prepare)
    plan.handle(event("mains_lost"))
    assert state(plan) == "idle"  # on battery, but not low yet
    plan.handle(event("battery_low"))
    assert state(plan) == "armed"
    left = plan.seconds_left()
    assert left is not None
    assert 0 < left <= 0.05
    result = await asyncio.wait_for(plan.wait(), 5.0)
    assert result is not None
    assert result.ok
    assert order == ["prepare (marker exists: False)"]
    assert await exists(marker)
    assert state(plan) == "done"
    plan.handle(event("battery_low"))
    assert state(plan) == "done"  # fires once


async def test_a_failing_prepare_does_not_keep_the_box_on(marker: Path) -> None:
    async def prepare() -> None:
        raise RuntimeError("store flush failed")

    plan = ShutdownPlan(poweroff(marker), 0.0, prepare=prepare)
    plan.arm("test")
    await asyncio.wait_for(plan.wait(), 5.0)
    assert await exists(marker)
    assert any("prepare failed" in what for _, what in plan.history)


async def test_mains_back_during_prepare_still_cancels(marker: Path) -> None:
    started = asyncio.Event()

    async def prepare() -> None:
        started.set()
        await asyncio.sleep(10)

    plan = ShutdownPlan(poweroff(marker), 0.0, prepare=prepare)
    plan.handle(event("mains_lost"))
    plan.handle(event("battery_low"))
    await asyncio.wait_for(started.wait(), 1.0)
    assert state(plan) == "preparing"
    plan.handle(event("mains_restored"))
    assert state(plan) == "idle"
    assert await plan.wait() is None
    await asyncio.sleep(0.1)
    assert not await exists(marker)


async def test_battery_recovering_without_mains_does_not_cancel(marker: Path) -> None:
    plan = ShutdownPlan(poweroff(marker), 0.1)
    plan.handle(event("mains_lost"))
    plan.handle(event("battery_low"))
    plan.handle(event("battery_ok", 7.1))  # a pack recovering once the load drops: still on battery
    assert state(plan) == "armed"
    await asyncio.wait_for(plan.wait(), 5.0)
    assert await exists(marker)


@pytest.mark.parametrize(
    ("command", "returncode"),
    [([sys.executable, "-c", "import sys; print('Access denied'); sys.exit(1)"], 1), (["/nonexistent/poweroff"], None)],
)
async def test_a_failing_command_is_reported(command: list[str], returncode: int | None) -> None:
    plan = ShutdownPlan(command, 0.0)
    plan.arm("test")
    result = await asyncio.wait_for(plan.wait(), 5.0)
    assert result is not None
    assert not result.ok
    assert result.returncode == returncode
    assert state(plan) == "failed"
    assert plan.as_dict()["result"]["returncode"] == returncode


async def test_close_calls_the_countdown_off(marker: Path) -> None:
    plan = ShutdownPlan(poweroff(marker), 0.1)
    plan.arm("test")
    await plan.close()
    assert state(plan) == "idle"
    await asyncio.sleep(0.2)
    assert not await exists(marker)


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        ShutdownPlan([], 1.0)
