"""Time as the box sees it: wall clock (may jump at NTP sync), boot-relative time, and which boot this is.

Services that schedule (lighting, irrigation) take a clock object rather than calling time functions, so
tests drive time by hand. Rules are decided on the wall clock; durations and sleeps are measured on the
monotonic clock, and a jump is noticed by comparing the two (a box without RTC boots in the past and jumps
hours when NTP syncs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
import uuid
import zoneinfo
from pathlib import Path
from typing import Protocol

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def wall() -> float:
    return time.time()


def uptime() -> float:
    """Seconds since boot, counting suspend, immune to wall-clock jumps."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@functools.cache
def boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        # Not Linux (a developer's laptop): one id per process is the best stand-in.
        return str(uuid.uuid4())


class WallClock(Protocol):
    def now(self) -> dt.datetime:
        """The wall clock, as an aware datetime in the hub's time zone."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (only differences mean anything)."""
        ...


class Clock(WallClock, Protocol):
    async def sleep(self, seconds: float) -> None:
        """Sleep on the monotonic clock; cancellable."""
        ...


class SystemClock:
    """The real clocks: the wall clock in a time zone, time.monotonic, asyncio.sleep (the loop is monotonic)."""

    def __init__(self, tz: dt.tzinfo | str) -> None:
        self.tz = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.tz)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
