"""A PMS5003 on a hub UART: the driver against the simulated sensor writing real frames on a pty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from drivers.airquality import AirQualitySettings, AirQualityUnavailable, Pms5003Simulator, Pms5003Uart
from drivers.airquality.pms5003 import encode_frame

FRAME_EVERY_S = 0.02


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def pms(tmp_path: Path) -> Iterator[Pms5003Simulator]:
    with Pms5003Simulator(tmp_path / "ttyPMS", interval_s=FRAME_EVERY_S) as simulator:
        yield simulator


@pytest.fixture
async def sensor(pms: Pms5003Simulator) -> AsyncIterator[Pms5003Uart]:
    settings = AirQualitySettings(source="uart", port=str(pms.path), stale_after_s=0.3, reconnect_interval_s=0.05)
    driver = Pms5003Uart(settings)
    await driver.start()
    yield driver
    await driver.stop()


async def test_reads_the_values_the_sensor_sends(pms: Pms5003Simulator, sensor: Pms5003Uart) -> None:
    pms.set_values(pm1_0=3, pm2_5=42, pm10=61, pm2_5_cf1=45, particles_0_3=5000)
    await sensor.next_reading(1.0)  # the frame in flight may predate set_values
    reading = await sensor.next_reading(1.0)
    assert (reading.pm1_0, reading.pm2_5, reading.pm10) == (3, 42, 61)
    assert reading.pm2_5_cf1 == 45
    assert reading.particles_0_3 == 5000
    assert reading.source == "uart"
    assert await sensor.read() == sensor.latest()
    health = sensor.health()
    assert health.ok
    assert health.state == "connected"
    assert health.detail["pm2_5"] == 42


async def test_garbage_between_frames_is_skipped_and_counted(pms: Pms5003Simulator, sensor: Pms5003Uart) -> None:
    await sensor.next_reading(1.0)
    pms.set_values(pm2_5=17)
    frame = encode_frame([1] * 12)
    pms.inject(b"\x00\xff\x42\x4d\x00\x1c" + b"\x42" * 40 + frame[:17])  # noise, a false start, a cut frame
    pms.corrupt_next(2)
    readings = []
    for _ in range(6):
        readings.append(await sensor.next_reading(1.0))
    assert all(r.pm2_5 == 17 or r.pm2_5 == 1 for r in readings)
    assert readings[-1].pm2_5 == 17
    detail = sensor.health().detail
    assert detail["checksum_errors"] >= 2
    assert detail["bytes_skipped"] > 40
    assert sensor.health().ok


async def test_silent_sensor_goes_stale(pms: Pms5003Simulator, sensor: Pms5003Uart) -> None:
    await sensor.next_reading(1.0)
    pms.go_silent()
    await eventually(lambda: sensor.health().state == "stale", timeout=2, what="stale")
    assert not sensor.health().ok
    with pytest.raises(AirQualityUnavailable, match="old"):
        await sensor.read()
    pms.resume()
    await sensor.next_reading(1.0)
    assert sensor.health().ok


async def test_only_corrupt_frames_is_stale_too(pms: Pms5003Simulator, sensor: Pms5003Uart) -> None:
    await sensor.next_reading(1.0)
    pms.corrupt_next(1000)
    await eventually(lambda: sensor.health().state == "stale", timeout=2, what="stale")
    assert sensor.health().detail["checksum_errors"] >= 5


async def test_unplug_and_replug_recover(pms: Pms5003Simulator, sensor: Pms5003Uart) -> None:
    await sensor.next_reading(1.0)
    pms.unplug()
    await eventually(lambda: sensor.health().state == "absent", timeout=2, what="absent")
    assert not sensor.health().ok
    assert sensor.health().last_error
    pms.replug()
    await sensor.next_reading(2.0)
    await eventually(lambda: sensor.health().ok, timeout=2, what="healthy again")
    assert sensor.reconnects == 1


async def test_no_reading_before_the_first_frame(tmp_path: Path) -> None:
    settings = AirQualitySettings(source="uart", port=str(tmp_path / "missing"), reconnect_interval_s=0.05)
    driver = Pms5003Uart(settings)
    await driver.start()
    try:
        await asyncio.sleep(0.1)
        assert driver.health().state == "absent"
        assert "missing" in (driver.health().last_error or "")
        with pytest.raises(AirQualityUnavailable, match="no PMS5003 frame yet"):
            await driver.read()
    finally:
        await driver.stop()
    assert driver.health().state == "stopped"
