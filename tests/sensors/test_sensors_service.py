"""The sensors service on the simulated node (real protocol on a pty): readings become telemetry, a cabinet
door opening becomes a security event, and `hub run` shows the node connected."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from drivers import airquality, serial_link
from drivers.airquality import AirQualitySettings
from drivers.serial_link import SensorNodeSettings
from hub.bus import EventBus
from hub.sensors.service import SensorsService
from hub.store import Store
from tests.support.processes import HubProcess, wait_until, write_hub_config

NODE = {"heartbeat_interval_s": 0.2, "response_timeout_s": 0.2, "retries": 2, "failsafe_timeout_s": 5.0}


def records(store: Store) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.cls.label, r.kind, json.loads(r.payload_json)) for r in store.pending(1000)]


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_readings_and_door_events_reach_the_outbox(tmp_path: Path) -> None:
    link, simulator = serial_link.build(SensorNodeSettings.model_validate(NODE), simulated=True)
    assert simulator is not None
    air, _ = airquality.build(AirQualitySettings(), simulated=True, node=link)
    store = Store.open(tmp_path)
    service = SensorsService(link, air, store, EventBus(), interval_s=0.3)
    simulator.set_soil([41000, 23000, 30500, 52000])
    simulator.set_air(pm2_5=87, pm10=120)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: any(kind == "sensors.soil" for _, kind, _ in records(store)))
        # the node forwards the sensor's latest frame, so the new values show up within a sample or two
        await wait_for(lambda: any(k == "sensors.air" and p["pm2_5"] == 87 for _, k, p in records(store)), 10)
        soil = [p for _, kind, p in records(store) if kind == "sensors.soil"][-1]
        assert soil["soil_raw"] == [41000, 23000, 30500, 52000]
        air_reading = [p for _, kind, p in records(store) if kind == "sensors.air"][-1]
        assert (air_reading["pm2_5"], air_reading["pm10"], air_reading["source"]) == (87, 120, "node")
        assert air_reading["samples"] >= 1
        assert service.health()["node"]["state"] == "connected"

        simulator.set_door(True)  # someone opens the cabinet
        await wait_for(lambda: any(kind == "node.door_opened" for _, kind, _ in records(store)))
        cls = next(c for c, kind, _ in records(store) if kind == "node.door_opened")
        assert cls == "security"

        simulator.unplug()
        await wait_for(lambda: service.problems() != [])
        assert "sensor node" in service.problems()[0]
        simulator.replug()
        await wait_for(lambda: service.problems() == [], timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.stop()
        simulator.stop()
        store.close()


def test_hub_runs_with_the_simulated_node(tmp_path: Path) -> None:
    extra = "\n[sensor_node]\nheartbeat_interval_s = 0.5\n\n[sensors]\ninterval_s = 1.0\n"
    config = write_hub_config(tmp_path / "hub", "thon-sensors", cloud_url=None, token=None, extra=extra)
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: hub.health()["services"]["sensors"]["details"]["last_soil"] is not None, 15)
        wait_until(lambda: hub.health()["services"]["sensors"]["ok"], 15, what="sensors healthy")
        sensors = hub.health()["services"]["sensors"]
        assert sensors["details"]["node"]["state"] == "connected"
        assert sensors["details"]["air_quality"] is not None
    finally:
        hub.terminate()


def test_air_quality_on_the_node_needs_a_node(tmp_path: Path) -> None:
    import subprocess

    from tests.support.processes import HUB

    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nid = "thon-x"\n\n[air_quality]\nsource = "node"\n')
    result = subprocess.run([HUB, "config", "check", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "air_quality.source = 'node' needs a [sensor_node] table" in result.stderr
