"""What happens when the battery runs low on battery power: a countdown to a clean power-off that mains coming
back cancels.

The hub owns the decision around it (announcing, stopping the loudspeakers, flushing the store: pass that as
`prepare`); this object owns the timing, so it is the same on every box and testable on its own. Timers
run on the event loop's monotonic clock, so an NTP jump during the countdown changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from drivers.power.interface import PowerEvent

log = logging.getLogger(__name__)

PlanState = Literal["idle", "armed", "preparing", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class ShutdownResult:
    returncode: int | None  # None: the command could not be started
    output: str
    at_wall: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class ShutdownPlan:
    """Arms when the battery is low while running on battery (in either order: low then mains lost, or mains
    lost then low), fires `command` after `delay_s` unless mains returns first. A battery that recovers
    without mains does not cancel: only mains coming back does.

    Cancellable while armed or preparing; once the command runs it is too late to take it back."""

    def __init__(
        self,
        command: Sequence[str],
        delay_s: float,
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
        prepare_timeout_s: float = 30.0,
    ) -> None:
        if not command:
            raise ValueError("the shutdown command is empty")
        self.command = list(command)
        self.delay_s = delay_s
        self.prepare = prepare
        self.prepare_timeout_s = prepare_timeout_s
        self.state: PlanState = "idle"
        self.reason: str | None = None
        self.deadline_mono: float | None = None
        self.result: ShutdownResult | None = None
        self.mains: bool | None = None
        self.battery_low = False
        self.history: list[tuple[float, str]] = []  # (wall time, what happened) for the technician page
        self._task: asyncio.Task[None] | None = None

    # -- inputs -----------------------------------------------------------------------------------------------
    def observe(self, *, mains: bool | None, battery_low: bool, battery_v: float | None = None) -> None:
        """The monitor's state after each sample (mains None: unknown). This, not the events alone, decides: a
        box that started on mains emits no mains event, yet a low battery there must not arm."""
        previous_mains = self.mains
        self.mains, self.battery_low = mains, battery_low
        if mains is True and previous_mains is not True:
            self.cancel("mains restored")
        # Unknown mains (UPS unreadable) with a low battery arms too: the safe side is a clean power-off.
        if battery_low and mains is not True:
            self.arm(f"battery low ({battery_v} V) on battery power")

    def handle(self, event: PowerEvent) -> None:
        """The same from events alone, for a caller that has only those (from the event loop)."""
        mains = {"mains_lost": False, "mains_restored": True}.get(event.kind, self.mains)
        low = {"battery_low": True, "battery_ok": False}.get(event.kind, self.battery_low)
        self.observe(mains=mains, battery_low=low, battery_v=event.battery_v)

    def arm(self, reason: str) -> None:
        if self.state != "idle":
            return
        self.state = "armed"
        self.reason = reason
        self.deadline_mono = time.monotonic() + self.delay_s
        self._note(f"armed: {reason}; power-off in {self.delay_s:g} s")
        self._task = asyncio.get_running_loop().create_task(self._countdown(), name="power-shutdown-plan")

    def cancel(self, reason: str) -> bool:
        """True if a pending shutdown was called off."""
        if self.state not in ("armed", "preparing") or self._task is None:
            return False
        self._task.cancel()
        self._task = None
        self.state = "idle"
        self.deadline_mono = None
        self._note(f"cancelled: {reason}")
        return True

    async def close(self) -> None:
        """The hub is stopping: a countdown does not outlive it (on restart the monitor re-arms if still low).
        Once preparing, the decision stands: `prepare` itself may well stop the services, this one included."""
        task = self._task
        if self.state == "armed" and self.cancel("hub stopping") and task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait(self) -> ShutdownResult | None:
        """Until the current countdown ends (fired or cancelled); None if nothing fired."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)
        return self.result

    # -- the countdown ----------------------------------------------------------------------------------------
    async def _countdown(self) -> None:
        await asyncio.sleep(self.delay_s)
        self.state = "preparing"
        if self.prepare is not None:
            try:
                await asyncio.wait_for(self.prepare(), self.prepare_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the hub's preparations failing must not keep the box from powering off
                log.exception("power: preparing the shutdown failed; powering off anyway")
                self._note(f"prepare failed: {exc!r}")
        self.state = "running"
        self._note(f"running {self.command}")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            out, _ = await proc.communicate()
            self.result = ShutdownResult(proc.returncode, out.decode("utf-8", "replace")[-2000:], time.time())
        except OSError as exc:
            self.result = ShutdownResult(None, f"cannot run {self.command[0]!r}: {exc.strerror or exc}", time.time())
        self.state = "done" if self.result.ok else "failed"
        self._note(f"{self.state}: exit {self.result.returncode} {self.result.output.strip()[:200]}")
        if not self.result.ok:
            log.error("power: shutdown command %s failed: %s", self.command, self.result.output.strip())

    def seconds_left(self) -> float | None:
        if self.state != "armed" or self.deadline_mono is None:
            return None
        return max(0.0, self.deadline_mono - time.monotonic())

    def _note(self, what: str) -> None:
        log.warning("power: shutdown plan %s", what)
        self.history.append((time.time(), what))
        del self.history[:-20]

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "seconds_left": self.seconds_left(),
            "command": self.command,
            "delay_s": self.delay_s,
            "result": None
            if self.result is None
            else {"returncode": self.result.returncode, "output": self.result.output, "at_wall": self.result.at_wall},
            "history": [{"at_wall": at, "what": what} for at, what in self.history],
        }
