"""Power and clock on the real box: reads the UPS HAT's INA219 and the DS3231 over I2C, and checks the hardware
watchdog. Nothing moves and nothing is heard; the box is never powered off (the shutdown command is replaced
by `true` here). Uses the [power] table of $VILLAGE_HUB_CONFIG or /etc/village-hub/hub.toml, else defaults.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from drivers.power import PowerSettings, build, check_watchdog
from drivers.power.ina219 import CONFIG as INA219_CONFIG
from drivers.power.ina219 import REG_CONFIG

if TYPE_CHECKING:  # conftest is pytest's to import; only its type is needed here
    from conftest import RealBoard

pytestmark = pytest.mark.hw

CONFIG = Path(os.environ.get("VILLAGE_HUB_CONFIG", "/etc/village-hub/hub.toml"))
NTP_SYNCED = Path("/run/systemd/timesync/synchronized")  # systemd-timesyncd touches it once synchronised


def power_settings() -> PowerSettings:
    table = tomllib.loads(CONFIG.read_text(encoding="utf-8")).get("power", {}) if CONFIG.is_file() else {}
    # Whatever the battery says during the test, nothing may power the box off.
    return PowerSettings.model_validate(table).model_copy(update={"shutdown_command": ["true"]})


def test_i2c_bus_exists(board: RealBoard) -> None:
    bus = Path(f"/dev/i2c-{power_settings().i2c_bus}")
    assert bus.exists(), f"{bus} missing: enable I2C (dtparam=i2c_arm=on in config.txt, or raspi-config)"


async def test_ups_reads_plausible_values(board: RealBoard) -> None:
    settings = power_settings()
    if settings.ina219_address is None:
        pytest.skip("no UPS configured ([power] ina219_address is empty)")
    drivers = build(settings, simulated=False)
    await drivers.monitor.poll()
    sample = drivers.monitor.latest
    assert sample is not None
    assert sample.error is None, sample.error
    assert sample.battery_v is not None
    assert 2.5 < sample.battery_v < 30.0, sample
    assert sample.current_a is not None
    assert abs(sample.current_a) < 5.0, sample
    assert sample.mains is not None
    ina = drivers.monitor.ups.ina
    assert ina is not None
    assert ina.read_register(REG_CONFIG) == INA219_CONFIG  # our configuration reached the chip
    health = drivers.monitor.health()
    assert health.ok, health.as_dict()
    mains = "present" if sample.mains else "ABSENT"
    print(f"battery {sample.battery_v} V, current {sample.current_a} A, mains {mains}")


async def test_rtc_holds_valid_time(board: RealBoard) -> None:
    settings = power_settings()
    if settings.rtc_address is None:
        pytest.skip("no RTC configured ([power] rtc_address is empty)")
    rtc = build(settings, simulated=False).rtc
    reading = await rtc.read()
    assert reading.error is None or reading.oscillator_stopped, reading.error
    assert not reading.oscillator_stopped, (
        "the DS3231's oscillator stopped (new chip, flat coin cell): set it after NTP"
    )
    assert reading.time is not None
    if await asyncio.to_thread(NTP_SYNCED.exists):
        drift = abs((reading.time - dt.datetime.now(dt.UTC)).total_seconds())
        assert drift < 5.0, f"RTC is {drift:.0f} s off the NTP-synchronised system clock"
    via = "kernel driver" if rtc.kernel_owned else "I2C"
    print(f"RTC {reading.time.isoformat()} (via {via}), {reading.temperature_c} °C")


def test_hardware_watchdog_is_armed_and_short(board: RealBoard) -> None:
    status = check_watchdog()
    assert status.ok, f"{status.state}: {status.message} (see drivers/power/README.md)"
