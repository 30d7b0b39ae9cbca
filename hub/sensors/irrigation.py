"""When the node's irrigation valve opens and closes: a pure controller, told the moisture and the time.

    closed --dry (below start) for the confirm period, in allowed hours, rested--> open (auto)
    closed --manual run {seconds, who}, rested, no fault------------------------> open (manual)
    open   --target reached (auto) | run time over | probe fault | sensor silent
             | the node closed it itself (max duration, fail-safe, reboot)----> closed (rest begins)

The controller declares the valve state it wants and answers with decisions; the service carries them out on the
node and records each with its reason. Every opening also tells the node its bound (max_seconds), so a hub that
dies mid-run still cannot flood the garden. Time comes from an injectable Clock, so tests drive it.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any

from hub.clock import WallClock as Clock

from .settings import IrrigationSettings

# The node is told to close by itself this long after the hub should have closed it: the hub, checking every few
# seconds, closes first and records why; the node's bound is the backstop for a hub that has stopped.
NODE_GRACE_S = 10.0


class ManualClock:
    """A clock that moves only when told to (tests, benchmarks, replays): `mono` is its monotonic time and
    `local` the local time of day its wall clock shows (on a fixed date)."""

    def __init__(self, start: float = 1000.0, local: datetime.time = datetime.time(6, 0)) -> None:
        self.mono = start
        self.local = local

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime.datetime:
        return datetime.datetime.combine(datetime.date(2026, 1, 1), self.local, tzinfo=datetime.UTC)

    def advance(self, seconds: float) -> None:
        self.mono += seconds


def parse_window(window: str) -> tuple[int, int]:
    """'HH:MM-HH:MM' -> (start, end) in minutes after midnight; end may be 1440 ('24:00')."""
    start, end = window.split("-")
    h1, m1 = start.split(":")
    h2, m2 = end.split(":")
    return int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)


def in_windows(windows: list[tuple[int, int]], at: datetime.time) -> bool:
    minute = at.hour * 60 + at.minute
    for start, end in windows:
        if start <= end:
            if start <= minute < end:
                return True
        elif minute >= start or minute < end:  # runs past midnight
            return True
    return False


class Phase(enum.StrEnum):
    IDLE = "idle"  # closed, soil not dry
    CONFIRMING = "confirming"  # closed, soil dry, waiting out the confirm period (or the allowed hours)
    WATERING = "watering"
    RESTING = "resting"  # closed, minimum rest not over
    FAULT = "fault"  # closed, the watched probes are faulty or the node is silent


@dataclass(frozen=True)
class ValveDecision:
    open: bool
    reason: str  # "dry", "manual", "target_reached", "max_run", "manual_done", "fault: …", "closed_by_node", …
    mode: str  # "auto" | "manual": the run this decision starts or ends
    max_seconds: float = 0.0  # for an opening: the bound to give the node
    command: bool = True  # False: the node already did it, only record it
    who: str | None = None
    moisture_pct: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "reason": self.reason,
            "mode": self.mode,
            "max_seconds": self.max_seconds if self.open else None,
            "who": self.who,
            "moisture_pct": None if self.moisture_pct is None else round(self.moisture_pct, 1),
        }


class IrrigationRefused(Exception):
    """A manual run that cannot start now; the message says why."""


class IrrigationController:
    def __init__(self, settings: IrrigationSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.windows = [parse_window(w) for w in settings.allowed_hours]
        self.valve_open = False  # as declared by us
        self.mode = "auto"
        self.who: str | None = None
        self.opened_at: float | None = None
        self.run_limit_s = 0.0
        self.last_closed_at: float | None = None
        self.dry_since: float | None = None
        self.fault: str | None = None
        self.moisture: float | None = None
        self.last_decision: ValveDecision | None = None
        self.cycles = {"auto": 0, "manual": 0}

    # -- inputs ---------------------------------------------------------------------------------------------------
    def observe(self, moisture: float | None, fault: str | None, valve_open: bool | None) -> ValveDecision | None:
        """One check: the watched moisture (None: no reading this time), a fault of the watched probes or of the
        node (None: none), and the valve state the node reported (None: not heard). Returns what to do, if any."""
        now = self.clock.monotonic()
        self.fault = fault
        self.moisture = moisture
        if self.valve_open:
            decision = self._while_open(now, moisture, fault, valve_open)
        else:
            decision = self._while_closed(now, moisture, fault, valve_open)
        if decision is not None:
            self.last_decision = decision
        return decision

    def manual(self, seconds: float, who: str) -> ValveDecision:
        """A manual run of `seconds`, asked by `who` (a person or a cloud command): the opening decision, or
        IrrigationRefused."""
        s = self.settings
        if not s.enabled:
            raise IrrigationRefused("irrigation is not enabled on this hub")
        if not 0 < seconds <= s.max_run_s:  # also refuses NaN
            raise IrrigationRefused(f"seconds={seconds}: must be > 0 and <= {s.max_run_s:g} (max_run_s)")
        if self.valve_open:
            raise IrrigationRefused(f"a {self.mode} run is already going on")
        if self.fault is not None:
            raise IrrigationRefused(f"the sensors are faulty ({self.fault}): fix them first")
        rest = self.rest_remaining()
        if rest > 0:
            raise IrrigationRefused(f"resting after the last run: possible again in {rest:.0f} s")
        decision = self._open("manual", seconds, "manual", who)
        self.last_decision = decision
        return decision

    def open_failed(self) -> None:
        """The opening could not be carried out (node unreachable or refused): the valve never opened, so no rest."""
        if self.valve_open:
            self.valve_open = False
            self.opened_at = None
            self.cycles[self.mode] -= 1

    # -- the machine ----------------------------------------------------------------------------------------------
    def _while_open(
        self, now: float, moisture: float | None, fault: str | None, valve_open: bool | None
    ) -> ValveDecision | None:
        assert self.opened_at is not None
        if fault is not None:
            return self._close(now, f"fault: {fault}")
        if valve_open is False:
            return self._close(now, "closed_by_node", command=False)
        if now - self.opened_at >= self.run_limit_s:
            return self._close(now, "max_run" if self.mode == "auto" else "manual_done")
        if self.mode == "auto" and moisture is not None and moisture >= self.settings.target_pct:
            return self._close(now, "target_reached")
        return None

    def _while_closed(
        self, now: float, moisture: float | None, fault: str | None, valve_open: bool | None
    ) -> ValveDecision | None:
        if valve_open:
            # Open without our say (a command from before a restart, a hand on the node): the declared state wins.
            return ValveDecision(False, "not_declared", self.mode, moisture_pct=moisture)
        if fault is not None or moisture is None or moisture >= self.settings.start_below_pct:
            # A gap in the readings restarts the confirm period: dryness must be seen without a break.
            self.dry_since = None
            return None
        if self.dry_since is None:
            self.dry_since = now
        if (
            now - self.dry_since >= self.settings.confirm_s
            and self.rest_remaining() <= 0
            and in_windows(self.windows, self.clock.now().time())
        ):
            return self._open("auto", self.settings.max_run_s, "dry", None)
        return None

    def _open(self, mode: str, limit_s: float, reason: str, who: str | None) -> ValveDecision:
        self.valve_open = True
        self.mode = mode
        self.who = who
        self.opened_at = self.clock.monotonic()
        self.run_limit_s = limit_s
        self.dry_since = None
        self.cycles[mode] += 1
        return ValveDecision(True, reason, mode, limit_s + NODE_GRACE_S, who=who, moisture_pct=self.moisture)

    def _close(self, now: float, reason: str, command: bool = True) -> ValveDecision:
        self.valve_open = False
        self.opened_at = None
        self.last_closed_at = now
        return ValveDecision(False, reason, self.mode, command=command, who=self.who, moisture_pct=self.moisture)

    # -- reporting ------------------------------------------------------------------------------------------------
    def rest_remaining(self) -> float:
        if self.last_closed_at is None:
            return 0.0
        return max(0.0, self.settings.min_rest_s - (self.clock.monotonic() - self.last_closed_at))

    @property
    def phase(self) -> Phase:
        if self.valve_open:
            return Phase.WATERING
        if self.fault is not None:
            return Phase.FAULT
        if self.rest_remaining() > 0:
            return Phase.RESTING
        if self.dry_since is not None:
            return Phase.CONFIRMING
        return Phase.IDLE

    def state(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        return {
            "enabled": self.settings.enabled,
            "phase": self.phase.value,
            "valve_open": self.valve_open,
            "mode": self.mode if self.valve_open else None,
            "who": self.who if self.valve_open else None,
            "run_s": None if self.opened_at is None else round(now - self.opened_at, 1),
            "run_limit_s": self.run_limit_s if self.valve_open else None,
            "dry_for_s": None if self.dry_since is None else round(now - self.dry_since, 1),
            "rest_remaining_s": round(self.rest_remaining(), 1),
            "moisture_pct": None if self.moisture is None else round(self.moisture, 1),
            "fault": self.fault,
            "last_decision": None if self.last_decision is None else self.last_decision.as_dict(),
            "cycles": dict(self.cycles),
        }
