"""Irrigation: the pure controller driven by a manual clock, then the sensors service on the simulated node (the
node's own firmware logic on a pty), whose valve is what the assertions look at."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers import serial_link
from drivers.serial_link import NodeSimulator, SensorNodeSettings
from hub.bus import EventBus
from hub.sensors.irrigation import (
    NODE_GRACE_S,
    IrrigationController,
    IrrigationRefused,
    ManualClock,
    ValveDecision,
    in_windows,
)
from hub.sensors.service import SensorsService
from hub.sensors.settings import IrrigationSettings, SensorsSettings, SoilProbeSettings, SoilSettings
from hub.store import Store

BASE = {
    "enabled": True,
    "probes": ["vuon"],
    "start_below_pct": 30.0,
    "target_pct": 60.0,
    "confirm_s": 600.0,
    "max_run_s": 1200.0,
    "min_rest_s": 3600.0,
    "allowed_hours": ["05:00-08:00"],
}


def controller(**overrides: Any) -> tuple[IrrigationController, ManualClock]:
    clock = ManualClock(start=1000.0, local=datetime.time(6, 0))
    return IrrigationController(IrrigationSettings.model_validate({**BASE, **overrides}), clock), clock


def run_for(
    ctl: IrrigationController, clock: ManualClock, seconds: float, moisture: float | None, **kw: Any
) -> list[ValveDecision]:
    """Observe every 5 s for `seconds`; the decisions taken on the way."""
    decisions = []
    for _ in range(int(seconds / 5)):
        clock.advance(5.0)
        decision = ctl.observe(moisture, kw.get("fault"), kw.get("valve_open", ctl.valve_open))
        if decision is not None:
            decisions.append(decision)
    return decisions


# -- the controller alone ---------------------------------------------------------------------------------------------
def test_dry_for_the_confirm_period_opens_with_the_node_bound() -> None:
    ctl, clock = controller()
    assert run_for(ctl, clock, 600, 20.0) == []  # dry since the first of these readings: 595 s
    (decision,) = run_for(ctl, clock, 5, 20.0)  # 600 s
    assert (decision.open, decision.reason, decision.mode) == (True, "dry", "auto")
    assert decision.max_seconds == 1200.0 + NODE_GRACE_S
    assert ctl.state()["phase"] == "watering"


def test_a_wet_reading_or_a_gap_restarts_the_confirm_period() -> None:
    ctl, clock = controller()
    run_for(ctl, clock, 500, 20.0)
    run_for(ctl, clock, 5, 35.0)  # one reading above the threshold
    assert run_for(ctl, clock, 595, 20.0) == []
    run_for(ctl, clock, 5, None)  # no reading: dryness was not seen without a break
    assert run_for(ctl, clock, 595, 20.0) == []
    assert len(run_for(ctl, clock, 10, 20.0)) == 1


def test_no_automatic_start_outside_allowed_hours() -> None:
    ctl, clock = controller(confirm_s=0.0)
    clock.local = datetime.time(12, 0)
    assert run_for(ctl, clock, 3600, 10.0) == []
    assert ctl.state()["phase"] == "confirming"
    clock.local = datetime.time(5, 0)
    assert run_for(ctl, clock, 5, 10.0)[0].open
    assert in_windows([(22 * 60, 2 * 60)], datetime.time(23, 30))
    assert in_windows([(1320, 120)], datetime.time(1, 0))
    assert not in_windows([(1320, 120)], datetime.time(2, 0))


def test_target_closes_the_valve() -> None:
    ctl, clock = controller(confirm_s=0.0)
    run_for(ctl, clock, 5, 20.0)
    assert run_for(ctl, clock, 300, 45.0) == []
    (decision,) = run_for(ctl, clock, 5, 61.0)
    assert (decision.open, decision.reason) == (False, "target_reached")


def test_max_run_closes_even_if_the_moisture_never_rises() -> None:
    ctl, clock = controller(confirm_s=0.0)
    run_for(ctl, clock, 5, 20.0)
    decisions = run_for(ctl, clock, 1200, 20.0)
    assert [(d.open, d.reason) for d in decisions] == [(False, "max_run")]
    assert ctl.state()["phase"] == "resting"


def test_minimum_rest_between_runs() -> None:
    ctl, clock = controller(confirm_s=0.0, max_run_s=60.0)
    run_for(ctl, clock, 5, 20.0)
    run_for(ctl, clock, 60, 20.0)  # closed at max run
    closed_at = clock.mono
    assert run_for(ctl, clock, 3595, 20.0) == []  # still dry, but resting
    with pytest.raises(IrrigationRefused, match="resting"):
        ctl.manual(30, "ba Lan")
    (decision,) = run_for(ctl, clock, 5, 20.0)
    assert decision.open
    assert clock.mono - closed_at >= 3600


def test_faults_and_silence_close_the_valve_and_keep_it_closed() -> None:
    ctl, clock = controller(confirm_s=0.0, min_rest_s=0.0)
    run_for(ctl, clock, 5, 20.0)
    (decision,) = run_for(ctl, clock, 5, None, fault="vuon rail_high")
    assert (decision.open, decision.reason, decision.command) == (False, "fault: vuon rail_high", True)
    assert run_for(ctl, clock, 100, None, fault="sensor_silent") == []
    assert ctl.state()["phase"] == "fault"
    with pytest.raises(IrrigationRefused, match="faulty"):
        ctl.manual(30, "technician")


def test_the_node_closing_by_itself_is_noted_not_commanded() -> None:
    ctl, clock = controller(confirm_s=0.0)
    run_for(ctl, clock, 5, 20.0)
    (decision,) = run_for(ctl, clock, 5, 20.0, valve_open=False)
    assert (decision.open, decision.reason, decision.command) == (False, "closed_by_node", False)


def test_an_open_valve_nobody_declared_is_closed() -> None:
    ctl, clock = controller()
    (decision,) = run_for(ctl, clock, 5, 50.0, valve_open=True)
    assert (decision.open, decision.reason) == (False, "not_declared")


def test_manual_run() -> None:
    ctl, clock = controller()
    clock.local = datetime.time(13, 0)  # allowed hours do not bind a person
    decision = ctl.manual(120, "ong Tuan")
    assert (decision.open, decision.mode, decision.who, decision.max_seconds) == (True, "manual", "ong Tuan", 130.0)
    with pytest.raises(IrrigationRefused, match="already"):
        ctl.manual(60, "someone else")
    assert run_for(ctl, clock, 115, 80.0) == []  # a manual run does not stop at the target
    (decision,) = run_for(ctl, clock, 5, 80.0)
    assert (decision.open, decision.reason, decision.who) == (False, "manual_done", "ong Tuan")
    with pytest.raises(IrrigationRefused, match="must be > 0"):
        ctl.manual(5000, "x")


def test_a_failed_opening_does_not_start_the_rest() -> None:
    ctl, _ = controller()
    ctl.manual(60, "x")
    ctl.open_failed()
    assert ctl.state()["phase"] == "idle"
    assert ctl.rest_remaining() == 0.0
    assert ctl.manual(60, "x").open


# -- the service on the simulated node --------------------------------------------------------------------------------
NODE = {"heartbeat_interval_s": 0.2, "response_timeout_s": 0.1, "retries": 1, "failsafe_timeout_s": 1.5}
DRY, WET = 40000, 20000  # calibration of probe "vuon" on channel 0
AT_10_PCT, AT_70_PCT = 38000, 26000


@dataclass
class Rig:
    service: SensorsService
    simulator: NodeSimulator
    store: Store
    bus: EventBus

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(r.payload_json) for r in self.store.pending(10_000) if r.kind == kind]

    def valve_changes(self) -> list[tuple[float, bool]]:
        with self.simulator.lock:
            return list(self.simulator.board.valve_changes)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    overrides = getattr(request, "param", {})
    irrigation = {
        "enabled": True,
        "probes": ["vuon"],
        "confirm_s": 0.3,
        "max_run_s": 1.0,
        "min_rest_s": 1.5,
        "allowed_hours": ["00:00-24:00"],
        "check_interval_s": 0.05,
        "stale_after_s": 0.5,
        **overrides,
    }
    settings = SensorsSettings(
        interval_s=1.0,
        soil=SoilSettings(probes=[SoilProbeSettings(name="vuon", channel=0, dry_raw=DRY, wet_raw=WET)]),
        irrigation=IrrigationSettings.model_validate(irrigation),
    )
    link, simulator = serial_link.build(SensorNodeSettings.model_validate(NODE), simulated=True)
    assert simulator is not None
    simulator.set_soil([30000, 30000, 30000, 30000])  # 50 %: not dry
    store = Store.open(tmp_path)
    bus = EventBus()
    service = SensorsService(link, None, store, bus, settings.interval_s, settings=settings)
    await service.start()
    assert await link.wait_connected(5.0)
    task = asyncio.create_task(service.run())
    try:
        yield Rig(service, simulator, store, bus)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.stop()
        simulator.stop()
        store.close()


async def test_dry_soil_opens_the_valve_and_wet_soil_closes_it(rig: Rig) -> None:
    rig.simulator.set_soil([AT_10_PCT, 30000, 30000, 30000])
    await wait_for(lambda: rig.simulator.valve_open)
    rig.simulator.set_soil([AT_70_PCT, 30000, 30000, 30000])
    await wait_for(lambda: not rig.simulator.valve_open)
    await wait_for(lambda: len(rig.records("irrigation.valve")) >= 2)  # recorded once the node has answered
    valve = rig.records("irrigation.valve")
    assert [(v["open"], v["reason"], v["ok"]) for v in valve] == [(True, "dry", True), (False, "target_reached", True)]
    assert valve[0]["moisture_pct"] == pytest.approx(10.0)


async def test_max_run_closes_and_the_rest_is_kept(rig: Rig) -> None:
    rig.simulator.set_soil([AT_10_PCT, 30000, 30000, 30000])  # and it stays dry: the water never arrives
    await wait_for(lambda: len(rig.valve_changes()) >= 4, timeout=10)
    await wait_for(lambda: len(rig.records("irrigation.valve")) >= 4)
    changes = rig.valve_changes()
    assert [opened for _, opened in changes[:4]] == [True, False, True, False]
    run_s = changes[1][0] - changes[0][0]
    assert 1.0 <= run_s < 3.0  # closed by the hub at max_run_s, well before the node's own bound (+10 s)
    rest_s = changes[2][0] - changes[1][0]
    assert rest_s >= 1.5  # never two cycles within the minimum rest
    reasons = [(v["open"], v["reason"]) for v in rig.records("irrigation.valve")]
    assert reasons[:4] == [(True, "dry"), (False, "max_run"), (True, "dry"), (False, "max_run")]


@pytest.mark.parametrize("rig", [{"max_run_s": 60.0}], indirect=True)
async def test_a_silent_node_closes_the_valve_and_raises_an_alert(rig: Rig) -> None:
    rig.simulator.set_soil([AT_10_PCT, 30000, 30000, 30000])
    await wait_for(lambda: rig.simulator.valve_open)
    rig.simulator.go_silent()  # cable cut: the hub cannot even send the close
    await wait_for(lambda: not rig.simulator.valve_open, timeout=5)  # the node's fail-safe (1.5 s) closed it
    assert rig.simulator.valve_reason == "failsafe"
    await wait_for(lambda: any(f["source"] == "node" for f in rig.records("sensors.fault")))
    fault = rig.records("sensors.fault")[0]
    assert (fault["source"], fault["fault"], fault["state"]) == ("node", "sensor_silent", "raised")
    await wait_for(lambda: not rig.records("irrigation.valve")[-1]["open"])
    close = rig.records("irrigation.valve")[-1]
    assert (close["open"], close["reason"], close["ok"]) == (False, "fault: sensor_silent", False)
    health = rig.service.health()
    assert health["irrigation"]["phase"] == "fault"
    assert health["faults"] == {"node": "sensor_silent"}
    assert health["errors"]["node_reads"] > 0

    rig.simulator.resume()
    await wait_for(lambda: rig.records("sensors.fault")[-1]["state"] == "cleared", timeout=10)


@pytest.mark.parametrize("rig", [{"max_run_s": 60.0}], indirect=True)
async def test_a_probe_out_of_range_closes_the_valve(rig: Rig) -> None:
    rig.simulator.set_soil([AT_10_PCT, 30000, 30000, 30000])
    await wait_for(lambda: rig.simulator.valve_open)
    rig.simulator.set_soil([65535, 30000, 30000, 30000])  # wire cut at the probe
    await wait_for(lambda: not rig.simulator.valve_open)
    await wait_for(lambda: len(rig.records("irrigation.valve")) >= 2)
    assert rig.records("irrigation.valve")[-1]["reason"] == "fault: vuon rail_high"
    assert rig.records("sensors.fault")[-1] == {"source": "vuon", "fault": "rail_high", "state": "raised"}
    assert rig.service.problems() == ["vuon: rail_high"]


async def test_manual_run_from_the_bus(rig: Rig) -> None:
    results = rig.bus.subscribe("sensors.irrigation.run_result")
    rig.bus.publish("irrigation.run", seconds=0.5, who="ong Tuan")
    result = await asyncio.wait_for(results.get(), 5)
    assert result.data["accepted"] is True
    await wait_for(lambda: len(rig.valve_changes()) >= 2)
    await wait_for(lambda: len(rig.records("irrigation.valve")) >= 2)
    valve = rig.records("irrigation.valve")
    assert [(v["open"], v["reason"], v["who"]) for v in valve] == [
        (True, "manual", "ong Tuan"),
        (False, "manual_done", "ong Tuan"),
    ]
    # a second run at once falls within the rest
    refused = await rig.service.run_irrigation(0.5, "ong Tuan")
    assert refused["accepted"] is False
    assert "resting" in refused["error"]
    assert (await rig.service.run_irrigation("lots", "x"))["accepted"] is False
