"""The clock the lighting service runs on: wall time for rules, monotonic time for timers.

The two are kept apart on purpose. A box without a real-time clock boots in 1970 (or at the last saved
time) and jumps hours when NTP syncs: rules are decided on the wall clock, but how long to sleep is
measured on the monotonic clock, and a jump is noticed by comparing the two.
Tests pass their own clock with the same three methods and drive time by hand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The wall clock, as an aware datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep on the monotonic clock; cancellable."""
        ...


class SystemClock:
    """The real clocks: time.time() via datetime.now, time.monotonic, asyncio.sleep (the loop is monotonic)."""

    def __init__(self, tz: dt.tzinfo) -> None:
        self.tz = tz

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.tz)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
