"""Sampling the UPS periodically and turning samples into events: mains_lost, mains_restored, battery_low,
battery_ok. The hub subscribes (callback or async iterator); the ShutdownPlan given to the monitor is told the
state after every sample."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from drivers.base import DriverHealth, cancel_and_wait
from drivers.power.interface import EventKind, PowerEvent, PowerSample
from drivers.power.shutdown import ShutdownPlan
from drivers.power.ups import Ups

log = logging.getLogger(__name__)

Subscriber = Callable[[PowerEvent], Awaitable[None] | None]


class PowerStateMachine:
    """Pure: samples in, events out.

    Mains changes are reported on the first sample that shows them (prompt; the hub announces a power cut).
    The battery has hysteresis and confirmation: low only after `confirm` samples in a row under `low_v`,
    recovered only after `confirm` samples in a row over `ok_v` (> low_v). A pack that wanders around one
    threshold, or sags for a moment under an amplifier at full volume, produces no stream of events."""

    def __init__(self, *, low_v: float, ok_v: float, confirm: int = 3) -> None:
        if ok_v <= low_v:
            raise ValueError("ok_v must be above low_v")
        self.low_v = low_v
        self.ok_v = ok_v
        self.confirm = max(1, confirm)
        self.mains: bool | None = None
        self.battery_low = False
        self._streak = 0

    def update(self, sample: PowerSample) -> list[PowerEvent]:
        kinds: list[EventKind] = []
        if sample.mains is not None and sample.mains != self.mains:
            # First sample: only a box that starts on battery is news.
            if self.mains is not None or not sample.mains:
                kinds.append("mains_restored" if sample.mains else "mains_lost")
            self.mains = sample.mains
        if sample.battery_v is not None:
            crossing = sample.battery_v > self.ok_v if self.battery_low else sample.battery_v < self.low_v
            self._streak = self._streak + 1 if crossing else 0
            if self._streak >= self.confirm:
                self._streak = 0
                self.battery_low = not self.battery_low
                kinds.append("battery_low" if self.battery_low else "battery_ok")
        return [PowerEvent(kind, sample.at_mono, sample.at_wall, sample.battery_v, sample.mains) for kind in kinds]


class PowerMonitor:
    def __init__(
        self,
        ups: Ups,
        machine: PowerStateMachine,
        *,
        interval_s: float = 2.0,
        plan: ShutdownPlan | None = None,
        simulated: bool = False,
    ) -> None:
        self.ups = ups
        self.machine = machine
        self.interval_s = interval_s
        self.plan = plan
        self.simulated = simulated
        self.latest: PowerSample | None = None
        self.last_error: str | None = None
        self.recent_events: list[PowerEvent] = []
        self._subscribers: list[Subscriber] = []
        self._task: asyncio.Task[None] | None = None
        self._callback_tasks: set[asyncio.Task[None]] = set()

    # -- subscribing ------------------------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """`callback(event)` for every event, plain or async; returns the function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    async def events(self, maxsize: int = 100) -> AsyncIterator[PowerEvent]:
        """The events as an async iterator (bounded: a consumer that falls far behind loses the oldest)."""
        queue: asyncio.Queue[PowerEvent] = asyncio.Queue(maxsize)

        def offer(event: PowerEvent) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

        unsubscribe = self.subscribe(offer)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    # -- sampling ---------------------------------------------------------------------------------------------
    async def poll(self) -> list[PowerEvent]:
        """One sample now (the I2C reads run in a thread) and the events it gives, delivered."""
        sample = await asyncio.to_thread(self.ups.read)
        self.latest = sample
        if sample.error and sample.error != self.last_error:
            log.warning("power: %s", sample.error)
        self.last_error = sample.error
        events = self.machine.update(sample)
        if self.plan is not None:
            self.plan.observe(
                mains=self.machine.mains, battery_low=self.machine.battery_low, battery_v=sample.battery_v
            )
        for event in events:
            log.warning("power: %s (battery %s V, mains %s)", event.kind, event.battery_v, event.mains)
            self.recent_events.append(event)
            del self.recent_events[:-20]
            for callback in list(self._subscribers):
                self._deliver(callback, event)
        return events

    def _deliver(self, callback: Subscriber, event: PowerEvent) -> None:
        try:
            result = callback(event)
        except Exception:
            log.exception("power: event subscriber failed")
            return
        if inspect.isawaitable(result):
            # Run async subscribers beside the sampling loop, so a slow one cannot delay the next sample.
            task = asyncio.ensure_future(result)
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_done)

    def _callback_done(self, task: asyncio.Task[None]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("power: event subscriber failed: %r", task.exception())

    async def run(self) -> None:
        """Sample every `interval_s` (on the monotonic clock) until cancelled."""
        next_at = time.monotonic()
        while True:
            try:
                await self.poll()
            except Exception:  # a bug in one sample must not end power monitoring
                log.exception("power: sampling failed")
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a stalled bus): start counting again from now
                next_at, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="power-monitor")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.plan is not None:
            await self.plan.close()
        for task in list(self._callback_tasks):
            task.cancel()

    def health(self) -> DriverHealth:
        sample = self.latest
        detail: dict[str, Any] = {
            "simulated": self.simulated,
            "ups_fitted": self.ups.fitted,
            "battery_v": sample.battery_v if sample else None,
            "current_a": sample.current_a if sample else None,
            "mains": sample.mains if sample else None,
            "battery_low": self.machine.battery_low,
            "sample_age_s": round(time.monotonic() - sample.at_mono, 1) if sample else None,
            "recent_events": [event.as_dict() for event in self.recent_events[-5:]],
            "shutdown": self.plan.as_dict() if self.plan else None,
        }
        if sample is None:
            return DriverHealth(ok=False, state="starting", detail=detail, last_error=self.last_error)
        if sample.error is not None and sample.battery_v is None and self.ups.fitted:
            return DriverHealth(ok=False, state="absent", detail=detail, last_error=sample.error)
        if self.machine.battery_low:
            state = "battery_low"
        elif sample.mains is False:
            state = "on_battery"
        else:
            state = "on_mains"
        # Running on battery is the UPS doing its job, not a fault of the driver; the events tell the hub.
        return DriverHealth(ok=sample.error is None, state=state, detail=detail, last_error=sample.error)
