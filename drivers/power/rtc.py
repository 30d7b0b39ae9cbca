"""The real-time clock as hub/ uses it: is the time it holds valid, what is it, and setting it after NTP sync.

Two ways a DS3231 is reached on a Pi:
- over I2C by this driver (no device-tree overlay): registers via smbus2;
- by the kernel (`dtoverlay=i2c-rtc,ds3231`, recommended: the system clock is then set from the RTC early at
  boot, before the hub starts). The kernel then owns address 0x68 (i2cdetect shows UU) and our I2C access
  gets EBUSY; the time is read from /sys/class/rtc/rtcN instead, where the kernel's driver refuses to give
  a time while OSF is set (EINVAL). Setting it is then the system's job (`hwclock --systohc`,
  systemd-timesyncd), so set() refuses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import threading
from pathlib import Path
from typing import Any

from drivers.base import DriverHealth
from drivers.power.ds3231 import Ds3231, RtcReading
from drivers.power.ups import describe_i2c_error

SYSFS_RTC = Path("/sys/class/rtc")


class RtcError(Exception):
    pass


def read_kernel_rtc(directory: Path) -> RtcReading:
    """/sys/class/rtc/rtcN/since_epoch: seconds (UTC); EINVAL while the chip's time is invalid (OSF)."""
    try:
        seconds = int((directory / "since_epoch").read_text().strip())
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return RtcReading(time=None, oscillator_stopped=True, error="kernel RTC reports its time invalid")
        return RtcReading(time=None, oscillator_stopped=False, error=f"kernel RTC {directory.name}: {exc.strerror}")
    except ValueError as exc:
        return RtcReading(time=None, oscillator_stopped=False, error=f"kernel RTC {directory.name}: {exc}")
    return RtcReading(time=dt.datetime.fromtimestamp(seconds, dt.UTC), oscillator_stopped=False)


class RealTimeClock:
    def __init__(self, chip: Ds3231 | None, *, kernel_dir: Path = SYSFS_RTC / "rtc0", simulated: bool = False) -> None:
        self.chip = chip
        self.kernel_dir = kernel_dir
        self.simulated = simulated
        self.kernel_owned = False
        self.last: RtcReading | None = None
        self._lock = threading.Lock()  # the bus is shared with the UPS monitor's thread

    def read_blocking(self) -> RtcReading:
        if self.chip is None:
            reading = RtcReading(time=None, oscillator_stopped=False, error="no RTC fitted")
        elif self.kernel_owned:
            reading = read_kernel_rtc(self.kernel_dir)
        else:
            try:
                with self._lock:
                    reading = self.chip.read()
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    self.kernel_owned = True
                    reading = read_kernel_rtc(self.kernel_dir)
                else:
                    reading = RtcReading(
                        time=None,
                        oscillator_stopped=False,
                        error=describe_i2c_error(exc, f"DS3231 at 0x{self.chip.address:02x}"),
                    )
        self.last = reading
        return reading

    async def read(self) -> RtcReading:
        return await asyncio.to_thread(self.read_blocking)

    def set_blocking(self, when: dt.datetime) -> None:
        if self.chip is None:
            raise RtcError("no RTC fitted")
        if self.kernel_owned:
            raise RtcError("the kernel owns the RTC: it is set by `hwclock --systohc` or systemd-timesyncd")
        try:
            with self._lock:
                self.chip.set(when)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                self.kernel_owned = True
            raise RtcError(describe_i2c_error(exc, f"DS3231 at 0x{self.chip.address:02x}")) from exc

    async def set(self, when: dt.datetime) -> None:
        """Write an aware datetime (after NTP sync, say) and mark the RTC's time valid."""
        await asyncio.to_thread(self.set_blocking, when)

    def health(self) -> DriverHealth:
        reading = self.last
        detail: dict[str, Any] = {
            "simulated": self.simulated,
            "kernel_owned": self.kernel_owned,
            "time": reading.time.isoformat() if reading and reading.time else None,
            "valid": reading.valid if reading else None,
            "oscillator_stopped": reading.oscillator_stopped if reading else None,
            "temperature_c": reading.temperature_c if reading else None,
        }
        if self.chip is None:
            return DriverHealth(ok=True, state="absent", detail=detail)
        if reading is None:
            return DriverHealth(ok=False, state="starting", detail=detail)
        if reading.valid:
            state = "kernel" if self.kernel_owned else "valid"
            return DriverHealth(ok=True, state=state, detail=detail)
        if reading.oscillator_stopped:
            # The chip answers but its time is not to be trusted until set (after NTP sync).
            return DriverHealth(ok=False, state="invalid", detail=detail, last_error=reading.error)
        return DriverHealth(ok=False, state="absent", detail=detail, last_error=reading.error)
