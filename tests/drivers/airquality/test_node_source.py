"""A PMS5003 wired to the sensor node: its frames forwarded over the node link and parsed on the hub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.airquality import AirQualitySettings, AirQualityUnavailable, NodeAirQuality, build
from drivers.serial_link import NodeSimulator, SensorNodeSettings, SerialNodeLink

FAST: dict[str, Any] = {
    "heartbeat_interval_s": 0.05,
    "response_timeout_s": 0.06,
    "retries": 2,
    "failsafe_timeout_s": 0.6,
}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[NodeSimulator]:
    with NodeSimulator(tmp_path / "ttyNODE", air_interval_s=0.03) as simulator:
        yield simulator


@pytest.fixture
async def link(sim: NodeSimulator) -> AsyncIterator[SerialNodeLink]:
    link = SerialNodeLink(SensorNodeSettings(port=str(sim.path), reconnect_interval_s=0.05, **FAST))
    await link.start()
    assert await link.wait_connected(3)
    yield link
    await link.stop()


async def test_forwarded_frames_become_readings(sim: NodeSimulator, link: SerialNodeLink) -> None:
    sensor, simulator = build(AirQualitySettings(source="node", stale_after_s=1.0), simulated=True, node=link)
    assert isinstance(sensor, NodeAirQuality)
    assert simulator is None
    sim.set_air(pm1_0=7, pm2_5=88, pm10=120, particles_10=3)
    await asyncio.sleep(0.1)
    reading = await sensor.read()
    assert (reading.pm1_0, reading.pm2_5, reading.pm10, reading.particles_10) == (7, 88, 120, 3)
    assert reading.source == "node"
    health = sensor.health()
    assert health.ok
    assert health.detail["node_link"] == "connected"


async def test_garbage_on_the_nodes_air_uart_is_filtered_by_the_node(sim: NodeSimulator, link: SerialNodeLink) -> None:
    sensor = NodeAirQuality(link, AirQualitySettings(source="node"))
    sim.set_air(pm2_5=33)
    sim.inject_air(b"\x42\x4d\x00\x1c" + b"\x00" * 10 + b"\x42\x4d\x01")
    await asyncio.sleep(0.15)
    assert (await sensor.read()).pm2_5 == 33
    status = await link.status()
    assert status.counters["air_errors"] >= 1


async def test_no_sensor_on_the_node(sim: NodeSimulator, tmp_path: Path) -> None:
    del tmp_path
    sim.set_air_enabled(False)
    sim.reboot()  # forget frames received so far
    link = SerialNodeLink(SensorNodeSettings(port=str(sim.path), reconnect_interval_s=0.05, **FAST))
    await link.start()
    try:
        assert await link.wait_connected(3)
        sensor = NodeAirQuality(link, AirQualitySettings(source="node"))
        with pytest.raises(AirQualityUnavailable, match="no PMS5003 frame"):
            await sensor.read()
        assert sensor.health().state == "absent"
        assert not sensor.health().ok
    finally:
        await link.stop()


async def test_stale_frame_on_the_node_is_not_reported(sim: NodeSimulator, link: SerialNodeLink) -> None:
    sensor = NodeAirQuality(link, AirQualitySettings(source="node", stale_after_s=0.2))
    await asyncio.sleep(0.1)
    await sensor.read()
    sim.set_air_enabled(False)
    await asyncio.sleep(0.35)
    with pytest.raises(AirQualityUnavailable, match="old"):
        await sensor.read()
    assert sensor.health().state == "stale"


async def test_node_link_down_is_unavailable(sim: NodeSimulator, link: SerialNodeLink) -> None:
    sensor = NodeAirQuality(link, AirQualitySettings(source="node"))
    sim.unplug()
    for _ in range(100):
        if not link.health().ok:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(AirQualityUnavailable, match="sensor node"):
        await sensor.read()
    assert sensor.health().detail["node_link"] == "absent"
    assert not sensor.health().ok
