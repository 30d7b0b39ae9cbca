"""DS3231: BCD, the time registers, the oscillator-stop flag, through the driver and a register model."""

from __future__ import annotations

import datetime as dt
import errno
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.power import ds3231
from drivers.power.ds3231 import Ds3231, decode_time, encode_time, from_bcd, to_bcd
from drivers.power.rtc import RealTimeClock, RtcError
from drivers.power.sim_i2c import Ds3231Model, SimSMBus

ICT = dt.timezone(dt.timedelta(hours=7))  # Asia/Ho_Chi_Minh has no DST


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@given(st.integers(0, 99))
def test_bcd_round_trip(value: int) -> None:
    byte = to_bcd(value)
    assert f"{byte:02x}" == f"{value:02d}"  # BCD reads as the decimal number in hex
    assert from_bcd(byte) == value


def test_bcd_rejects_what_is_not_bcd() -> None:
    for bad in (0x0A, 0xA0, 0xFF):
        with pytest.raises(ValueError, match="not a BCD"):
            from_bcd(bad)
    with pytest.raises(ValueError, match="0-99"):
        to_bcd(100)


def test_time_registers() -> None:
    when = dt.datetime(2026, 2, 28, 23, 59, 58, tzinfo=dt.UTC)
    assert encode_time(when) == [0x58, 0x59, 0x23, 6, 0x28, 0x02, 0x26]  # a Saturday
    # Local time is stored as UTC.
    assert encode_time(dt.datetime(2026, 3, 1, 6, 59, 58, tzinfo=ICT)) == encode_time(when)
    assert decode_time([0x58, 0x59, 0x23, 6, 0x28, 0x02, 0x26]) == when
    # 12-hour mode, as other software may leave it: 11 PM and 12 AM.
    assert decode_time([0, 0, 0x40 | 0x20 | 0x11, 1, 0x01, 0x01, 0x25]).hour == 23
    assert decode_time([0, 0, 0x40 | 0x12, 1, 0x01, 0x01, 0x25]).hour == 0
    assert decode_time([0, 0, 0, 1, 0x01, 0x80 | 0x01, 0x05]).year == 2105  # century bit
    with pytest.raises(ValueError, match="naive"):
        encode_time(dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="2000-2199"):
        encode_time(dt.datetime(1999, 12, 31, tzinfo=dt.UTC))


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2199, 12, 31, 23, 59, 59)))
def test_set_and_read_round_trip_through_the_chip(naive: dt.datetime) -> None:
    when = naive.replace(microsecond=0, tzinfo=dt.UTC)
    bus = SimSMBus()
    clock = FakeClock()
    bus.attach(0x68, Ds3231Model(clock=clock))
    rtc = Ds3231(bus)
    rtc.set(when)
    reading = rtc.read()
    assert reading.time == when
    assert reading.valid


def test_oscillator_stop_flag_means_not_valid() -> None:
    bus = SimSMBus()
    clock = FakeClock()
    chip = Ds3231Model(clock=clock)  # fresh from the factory: OSF set
    bus.attach(0x68, chip)
    rtc = Ds3231(bus)
    first = rtc.read()
    assert first.oscillator_stopped
    assert not first.valid
    assert first.time == dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # plausible-looking, yet not to be trusted

    rtc.set(dt.datetime(2026, 11, 24, 16, 30, 0, tzinfo=ICT))
    assert not chip.oscillator_stopped_flag
    clock.now += 61.0
    later = rtc.read()
    assert later.valid
    assert later.time == dt.datetime(2026, 11, 24, 9, 31, 1, tzinfo=dt.UTC)

    chip.stop_oscillator()  # the coin cell died during a long power cut
    clock.now += 3600.0
    chip.start_oscillator()
    stale = rtc.read()
    assert stale.oscillator_stopped
    assert not stale.valid
    assert stale.time == dt.datetime(2026, 11, 24, 9, 31, 1, tzinfo=dt.UTC)  # stood still

    # Writing a 1 to OSF does not set it, writing 0 clears it; EN32kHz follows what is written.
    bus.write_byte_data(0x68, ds3231.REG_STATUS, 0x00)
    assert not chip.oscillator_stopped_flag
    bus.write_byte_data(0x68, ds3231.REG_STATUS, 0x88)
    assert not chip.oscillator_stopped_flag
    assert bus.read_byte_data(0x68, ds3231.REG_STATUS) == 0x08


def test_set_restarts_an_oscillator_disabled_on_battery() -> None:
    bus = SimSMBus()
    chip = Ds3231Model(clock=FakeClock())
    bus.attach(0x68, chip)
    bus.write_byte_data(0x68, ds3231.REG_CONTROL, 0x9C)  # EOSC set by someone
    Ds3231(bus).set(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert bus.read_byte_data(0x68, ds3231.REG_CONTROL) == 0x1C


def test_reads_wrap_and_temperature() -> None:
    bus = SimSMBus()
    chip = Ds3231Model(clock=FakeClock(), temperature_c=-5.75)
    bus.attach(0x68, chip)
    assert Ds3231(bus).read().temperature_c == -5.75
    # The register pointer wraps from 0x12 to 0x00.
    wrapped = bus.read_i2c_block_data(0x68, 0x12, 3)
    assert wrapped[1:] == bus.read_i2c_block_data(0x68, 0x00, 2)


def test_garbage_registers_are_no_time() -> None:
    bus = SimSMBus()
    chip = Ds3231Model(clock=FakeClock(), oscillator_stopped=False)
    bus.attach(0x68, chip)
    chip.corrupt_time_registers([0x7F, 0x7F, 0x3F, 0, 0x3F, 0x1F, 0xFF])
    reading = Ds3231(bus).read()
    assert reading.time is None
    assert not reading.valid
    assert reading.error is not None
    assert "no valid time" in reading.error


async def test_real_time_clock_health_and_kernel_fallback(tmp_path: Path) -> None:
    bus = SimSMBus()
    chip = Ds3231Model(clock=FakeClock())
    bus.attach(0x68, chip)
    rtc = RealTimeClock(Ds3231(bus), kernel_dir=tmp_path / "rtc0")
    assert not (await rtc.read()).valid
    assert rtc.health().state == "invalid"
    assert not rtc.health().ok
    await rtc.set(dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC))
    assert (await rtc.read()).valid
    assert rtc.health().ok
    assert rtc.health().state == "valid"

    # dtoverlay=i2c-rtc,ds3231: the kernel owns 0x68; the time comes from sysfs and setting is the system's job.
    (tmp_path / "rtc0").mkdir()
    (tmp_path / "rtc0" / "since_epoch").write_text("1795510800\n")
    bus.fail(0x68, errno.EBUSY)
    reading = await rtc.read()
    assert reading.valid
    assert reading.time == dt.datetime.fromtimestamp(1795510800, dt.UTC)
    assert rtc.kernel_owned
    assert rtc.health().state == "kernel"
    with pytest.raises(RtcError, match="kernel owns"):
        await rtc.set(dt.datetime(2026, 11, 24, tzinfo=dt.UTC))


async def test_no_rtc_answering(tmp_path: Path) -> None:
    rtc = RealTimeClock(Ds3231(SimSMBus()), kernel_dir=tmp_path / "rtc0")
    reading = await rtc.read()
    assert not reading.valid
    assert reading.error is not None
    assert "no answer" in reading.error
    assert rtc.health().state == "absent"
    assert not rtc.health().ok
