"""Power events and the shutdown plan, end to end on the register-level simulation: the production drivers
read an INA219 model through the simulated bus; only the UPS's physics is scripted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.power import PowerDrivers, PowerEvent, PowerSample, PowerStateMachine, build
from drivers.power.sim_i2c import UpsModel
from tests.drivers.power.conftest import SettingsFactory, exists, state


async def next_event(events: AsyncIterator[PowerEvent], timeout: float = 1.0) -> PowerEvent:
    return await asyncio.wait_for(anext(events), timeout)


def ups_of(drivers: PowerDrivers) -> UpsModel:
    assert drivers.simulation is not None
    assert drivers.simulation.ups is not None
    return drivers.simulation.ups


@pytest.fixture
async def running(make_settings: SettingsFactory) -> AsyncIterator[PowerDrivers]:
    drivers = build(make_settings(), simulated=True)
    await drivers.monitor.start()
    yield drivers
    await drivers.monitor.stop()


async def test_mains_loss_is_reported_promptly(running: PowerDrivers) -> None:
    events = running.monitor.events()
    ups = ups_of(running)
    await asyncio.sleep(0.1)
    assert running.monitor.health().state == "on_mains"
    assert running.monitor.recent_events == []  # a box starting on mains has nothing to say

    t_cut = time.monotonic()
    ups.lose_mains()
    lost = await next_event(events)
    assert lost.kind == "mains_lost"
    assert lost.mains is False
    assert lost.at_mono - t_cut < 0.1  # within one 20 ms sample interval, plus the thread hop
    health = running.monitor.health()
    assert health.ok
    assert health.state == "on_battery"
    assert health.detail["current_a"] == pytest.approx(-0.8, abs=0.01)

    ups.restore_mains()
    restored = await next_event(events)
    assert restored.kind == "mains_restored"
    assert running.monitor.health().state == "on_mains"


async def test_low_battery_on_battery_fires_the_shutdown_after_the_delay(running: PowerDrivers, marker: Path) -> None:
    events = running.monitor.events()
    ups = ups_of(running)
    ups.lose_mains()
    assert (await next_event(events)).kind == "mains_lost"
    ups.set_battery_voltage(6.2)
    low = await next_event(events)
    assert low.kind == "battery_low"
    assert low.battery_v == pytest.approx(6.2, abs=0.005)
    plan = running.plan
    assert state(plan) == "armed"
    armed_at = time.monotonic()
    assert not await exists(marker)
    await asyncio.sleep(0.2)
    assert not await exists(marker)  # not before the delay
    result = await asyncio.wait_for(plan.wait(), 5.0)
    assert result is not None
    assert result.ok
    assert time.monotonic() - armed_at >= 0.3
    assert await asyncio.to_thread(marker.read_text) == "poweroff"
    assert state(plan) == "done"
    assert running.monitor.health().state == "battery_low"


async def test_mains_back_before_the_delay_cancels(running: PowerDrivers, marker: Path) -> None:
    events = running.monitor.events()
    ups = ups_of(running)
    ups.lose_mains()
    ups.set_battery_voltage(6.1)
    kinds = [(await next_event(events)).kind for _ in range(2)]
    assert kinds == ["mains_lost", "battery_low"]
    assert state(running.plan) == "armed"
    ups.restore_mains()
    assert (await next_event(events)).kind == "mains_restored"
    assert state(running.plan) == "idle"
    await asyncio.sleep(0.5)  # past the 0.3 s delay
    assert not await exists(marker)
    assert any("cancelled: mains restored" in what for _, what in running.plan.history)


async def test_low_while_charging_arms_only_when_mains_goes(running: PowerDrivers, marker: Path) -> None:
    events = running.monitor.events()
    ups = ups_of(running)
    ups.set_battery_voltage(6.0)  # a deep-discharged pack charging after a long outage
    assert (await next_event(events)).kind == "battery_low"
    await asyncio.sleep(0.1)
    assert state(running.plan) == "idle"
    ups.lose_mains()
    assert (await next_event(events)).kind == "mains_lost"
    assert state(running.plan) == "armed"
    await asyncio.wait_for(running.plan.wait(), 5.0)
    assert await exists(marker)


async def test_battery_draining_over_time(make_settings: SettingsFactory) -> None:
    drivers = build(make_settings(), simulated=True)
    ups = ups_of(drivers)
    ups.discharge_v_per_s = 2.0  # a very fast pack: 6.8 V to the 6.4 V threshold in 0.2 s
    ups.set_battery_voltage(6.8)
    events = drivers.monitor.events()
    await drivers.monitor.start()
    try:
        ups.lose_mains()
        t_cut = time.monotonic()
        assert (await next_event(events)).kind == "mains_lost"
        low = await next_event(events)
        assert low.kind == "battery_low"
        assert 0.2 <= low.at_mono - t_cut < 0.4
    finally:
        await drivers.monitor.stop()
    assert state(drivers.plan) == "idle"  # stopping the monitor called the countdown off


def sample(volts: float | None, mains: bool | None = False) -> PowerSample:
    now = time.monotonic()
    return PowerSample(now, time.time(), volts, -0.8 if mains is False else 0.5, mains)


def test_hysteresis_does_not_flap() -> None:
    machine = PowerStateMachine(low_v=6.4, ok_v=7.0, confirm=1)
    kinds = [event.kind for volts in [6.45, 6.35, 6.45, 6.35, 6.41, 6.39] for event in machine.update(sample(volts))]
    assert kinds == ["mains_lost", "battery_low"]  # once, however often it crosses 6.4
    kinds = [event.kind for volts in [6.6, 6.99, 6.7, 7.0, 6.9] for event in machine.update(sample(volts))]
    assert kinds == []  # between the thresholds, and at 7.0 exactly, it stays low
    assert [event.kind for event in machine.update(sample(7.05))] == ["battery_ok"]
    assert [event.kind for event in machine.update(sample(6.5))] == []


def test_confirmation_ignores_a_dip() -> None:
    machine = PowerStateMachine(low_v=6.4, ok_v=7.0, confirm=3)
    machine.update(sample(7.5, mains=True))
    kinds = [e.kind for v in [6.2, 6.2, 7.5, 6.2, 6.2, None, 7.5] for e in machine.update(sample(v, mains=True))]
    assert kinds == []  # an amplifier's surge pulls the pack down for a sample or two
    kinds = [e.kind for v in [6.2, 6.2, 6.2] for e in machine.update(sample(v, mains=True))]
    assert kinds == ["battery_low"]


def test_an_unreadable_sample_is_no_evidence_either_way() -> None:
    machine = PowerStateMachine(low_v=6.4, ok_v=7.0, confirm=3)
    kinds = [e.kind for v in [6.2, None, 6.2, None, 6.2] for e in machine.update(sample(v, mains=True))]
    assert kinds == ["battery_low"]


def test_first_sample_on_battery_and_unknown_mains() -> None:
    machine = PowerStateMachine(low_v=6.4, ok_v=7.0)
    assert [e.kind for e in machine.update(sample(7.5, mains=None))] == []
    assert [e.kind for e in machine.update(sample(7.5, mains=False))] == ["mains_lost"]  # booted on battery
    assert [e.kind for e in machine.update(sample(None, mains=None))] == []  # UPS unreadable: no news


async def test_ups_unplugged_is_unhealthy_without_events(make_settings: SettingsFactory) -> None:
    drivers = build(make_settings(), simulated=True)
    monitor = drivers.monitor
    assert await monitor.poll() == []
    assert monitor.health().ok
    assert drivers.simulation is not None
    drivers.simulation.bus.fail(0x42)
    assert await monitor.poll() == []
    health = monitor.health()
    assert not health.ok
    assert health.state == "absent"
    assert health.last_error is not None
    assert "0x42" in health.last_error
    drivers.simulation.bus.fail(0x42, None)
    assert await monitor.poll() == []
    assert monitor.health().ok


@pytest.mark.parametrize("active_high", [True, False])
async def test_mains_from_a_gpio_line(make_settings: SettingsFactory, active_high: bool) -> None:
    drivers = build(
        make_settings(mains_detect="gpio", mains_gpio=17, mains_gpio_active_high=active_high), simulated=True
    )
    assert drivers.simulation is not None
    pin = drivers.simulation.pin_factory.pin(17)
    assert bool(pin.state) is active_high  # the line the HAT drives while mains is present
    monitor = drivers.monitor
    await monitor.poll()
    ups = ups_of(drivers)
    ups.lose_mains()
    assert bool(pin.state) is not active_high
    assert [e.kind for e in await monitor.poll()] == ["mains_lost"]
    ups.restore_mains()
    assert [e.kind for e in await monitor.poll()] == ["mains_restored"]


async def test_subscribers(make_settings: SettingsFactory) -> None:
    drivers = build(make_settings(), simulated=True)
    monitor = drivers.monitor
    seen: list[str] = []
    async_seen: list[str] = []

    def broken(event: PowerEvent) -> None:
        raise RuntimeError("a buggy subscriber")

    async def slow(event: PowerEvent) -> None:
        await asyncio.sleep(0.05)
        async_seen.append(event.kind)

    monitor.subscribe(broken)
    unsubscribe = monitor.subscribe(lambda event: seen.append(event.kind))
    monitor.subscribe(slow)
    ups_of(drivers).lose_mains()
    t0 = time.monotonic()
    await monitor.poll()
    assert time.monotonic() - t0 < 0.05  # the slow subscriber does not hold up sampling
    assert seen == ["mains_lost"]
    await asyncio.sleep(0.1)
    assert async_seen == ["mains_lost"]
    unsubscribe()
    ups_of(drivers).restore_mains()
    await monitor.poll()
    assert seen == ["mains_lost"]


async def test_no_ups_fitted(make_settings: SettingsFactory) -> None:
    drivers = build(make_settings(ina219_address=None), simulated=True)
    assert await drivers.monitor.poll() == []
    health = drivers.monitor.health()
    assert health.ok
    assert health.state == "on_mains"
    assert health.detail["ups_fitted"] is False


async def test_prepare_may_stop_the_monitor_and_the_box_still_powers_off(
    make_settings: SettingsFactory, marker: Path
) -> None:
    """The hub's preparation stops every service, the power monitor included: that must not call it off."""
    drivers: PowerDrivers | None = None

    async def prepare() -> None:
        assert drivers is not None
        await drivers.monitor.stop()

    drivers = build(make_settings(shutdown_delay_s=0.05), simulated=True, prepare_shutdown=prepare)
    events = drivers.monitor.events()
    await drivers.monitor.start()
    try:
        ups_of(drivers).lose_mains()
        ups_of(drivers).set_battery_voltage(6.0)
        assert [(await next_event(events)).kind for _ in range(2)] == ["mains_lost", "battery_low"]
        result = await asyncio.wait_for(drivers.plan.wait(), 5.0)
        assert result is not None
        assert result.ok
        assert await exists(marker)
    finally:
        await drivers.monitor.stop()
