"""DS3231 real-time clock (Maxim/Analog Devices datasheet 19-5170): BCD time registers and the oscillator-stop
flag.

The RTC keeps UTC (as Linux's hwclock does by default). OSF set means the oscillator stopped at some point
(first power-up, coin cell flat or missing): the time in the registers is then not to be trusted, however
plausible it looks; setting the time clears the flag.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from drivers.power.i2c import SMBusLike

REG_SECONDS = 0x00
REG_CONTROL = 0x0E
REG_STATUS = 0x0F
REG_TEMP_MSB = 0x11
REGISTER_COUNT = 0x13

HOUR_12H = 1 << 6  # hours register: 12-hour mode
HOUR_PM = 1 << 5  # in 12-hour mode
MONTH_CENTURY = 1 << 7  # month register: the year counter rolled over 99 -> 00
CONTROL_EOSC = 1 << 7  # written 1: oscillator stops when on the coin cell
STATUS_OSF = 1 << 7  # oscillator stop flag


def to_bcd(value: int) -> int:
    if not 0 <= value <= 99:
        raise ValueError(f"BCD holds 0-99, not {value}")
    return ((value // 10) << 4) | (value % 10)


def from_bcd(byte: int) -> int:
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise ValueError(f"0x{byte:02x} is not a BCD number")
    return high * 10 + low


def encode_time(when: dt.datetime) -> list[int]:
    """Registers 0x00-0x06 for an aware datetime, stored as UTC, 24-hour mode. Years 2000-2199."""
    if when.tzinfo is None:
        raise ValueError("a naive datetime is ambiguous; give an aware one (the RTC keeps UTC)")
    utc = when.astimezone(dt.UTC)
    if not 2000 <= utc.year <= 2199:
        raise ValueError(f"the DS3231 holds years 2000-2199, not {utc.year}")
    century = MONTH_CENTURY if utc.year >= 2100 else 0
    return [
        to_bcd(utc.second),
        to_bcd(utc.minute),
        to_bcd(utc.hour),
        utc.isoweekday(),  # 1-7; the chip only counts it
        to_bcd(utc.day),
        century | to_bcd(utc.month),
        to_bcd(utc.year % 100),
    ]


def decode_time(registers: list[int]) -> dt.datetime:
    """Registers 0x00-0x06 -> aware UTC datetime. Raises ValueError on contents no clock would hold (garbage
    after a brown-out), including hours written in 12-hour mode by other software, which are converted."""
    seconds, minutes, hours, _weekday, day, month, year = registers[:7]
    if hours & HOUR_12H:
        hour = from_bcd(hours & 0x1F)
        if not 1 <= hour <= 12:
            raise ValueError(f"12-hour register holds hour {hour}")
        hour = hour % 12 + (12 if hours & HOUR_PM else 0)
    else:
        hour = from_bcd(hours & 0x3F)
    full_year = 2000 + from_bcd(year) + (100 if month & MONTH_CENTURY else 0)
    return dt.datetime(
        full_year,
        from_bcd(month & 0x1F),
        from_bcd(day & 0x3F),
        hour,
        from_bcd(minutes & 0x7F),
        from_bcd(seconds & 0x7F),
        tzinfo=dt.UTC,
    )


@dataclass(frozen=True, slots=True)
class RtcReading:
    time: dt.datetime | None  # None when the registers hold no valid date at all
    oscillator_stopped: bool  # OSF: the time is not to be trusted
    temperature_c: float | None = None  # the chip's own sensor (its crystal compensation uses it)
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.time is not None and not self.oscillator_stopped and self.error is None


class Ds3231:
    def __init__(self, bus: SMBusLike, address: int = 0x68) -> None:
        self.bus = bus
        self.address = address

    def read(self) -> RtcReading:
        registers = self.bus.read_i2c_block_data(self.address, REG_SECONDS, REGISTER_COUNT)
        osf = bool(registers[REG_STATUS] & STATUS_OSF)
        msb, lsb = registers[REG_TEMP_MSB], registers[REG_TEMP_MSB + 1]
        temperature = (msb - 256 if msb & 0x80 else msb) + (lsb >> 6) * 0.25
        try:
            when: dt.datetime | None = decode_time(registers)
            error = None
        except ValueError as exc:
            when, error = None, f"registers hold no valid time: {exc}"
        return RtcReading(time=when, oscillator_stopped=osf, temperature_c=temperature, error=error)

    def set(self, when: dt.datetime) -> None:
        """Write the time, keep the oscillator running on the coin cell, and clear OSF (the time is now valid)."""
        self.bus.write_i2c_block_data(self.address, REG_SECONDS, encode_time(when))
        control = self.bus.read_byte_data(self.address, REG_CONTROL)
        if control & CONTROL_EOSC:
            self.bus.write_byte_data(self.address, REG_CONTROL, control & ~CONTROL_EOSC & 0xFF)
        status = self.bus.read_byte_data(self.address, REG_STATUS)
        self.bus.write_byte_data(self.address, REG_STATUS, status & ~STATUS_OSF & 0xFF)
