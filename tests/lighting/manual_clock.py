"""A clock the test moves by hand: wall and monotonic time advance together, unless the test makes the wall
clock jump (as NTP does on a box without RTC).

`advance()` steps from one sleeper's deadline to the next, so the service wakes at exactly the virtual
times it asked for and runs (its store writes are real, on the store's thread) before time moves on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field

REAL_TIMEOUT_S = 5.0


@dataclass(order=True)
class _Sleeper:
    deadline: float
    future: asyncio.Future[None] = field(compare=False)


class ManualClock:
    def __init__(self, start: dt.datetime) -> None:
        assert start.tzinfo is not None
        self.tz = start.tzinfo
        self._mono = 1000.0
        self._wall_minus_mono = start.timestamp() - self._mono
        self._sleepers: list[_Sleeper] = []

    # ---- the Clock protocol -----------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._mono + self._wall_minus_mono, self.tz)

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        sleeper = _Sleeper(self._mono + max(seconds, 0.0), asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        try:
            await sleeper.future
        finally:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    # ---- driving it -------------------------------------------------------------------------------

    def jump(self, delta: dt.timedelta) -> None:
        """The wall clock alone moves (NTP sync); monotonic time does not."""
        self._wall_minus_mono += delta.total_seconds()

    async def settle(self) -> None:
        """Wait (in real time) until some task sleeps on this clock: the service has finished its turn."""
        deadline = time.monotonic() + REAL_TIMEOUT_S
        turns = 0
        while not any(not s.future.done() for s in self._sleepers):
            if time.monotonic() > deadline:
                raise TimeoutError("nobody went back to sleep on the manual clock")
            # Most turns need only the loop (no store write): spin it before paying for real sleeps.
            turns += 1
            await asyncio.sleep(0 if turns < 50 else 0.001)
        # A few more turns of the loop for tasks woken beside the sleeper (bus listeners).
        for _ in range(5):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        target = self._mono + seconds
        await self.settle()
        while True:
            pending = [s for s in self._sleepers if not s.future.done()]
            due = min(pending).deadline if pending else None
            if due is None or due > target:
                break
            self._mono = max(self._mono, due)
            for sleeper in pending:
                if sleeper.deadline <= self._mono:
                    sleeper.future.set_result(None)
            await asyncio.sleep(0)
            await self.settle()
        self._mono = target

    async def advance_to(self, when: dt.datetime) -> None:
        await self.advance(max((when - self.now()).total_seconds(), 0.0))
