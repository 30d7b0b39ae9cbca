"""Who plays next: the queue of broadcasts by level, pre-emption, quiet hours and the duplicate window.

Rules (Circular 39/2020/TT-BTTTT's three bulletin levels, plus live voice and background):
- The queue is ordered by level (emergency > live > priority > normal > background), then by arrival.
- An emergency cuts into whatever lower plays now, mid-item. Everything else waits for the current *item* to
  end; then the higher level goes first and the programme it stepped in front of carries on afterwards
  (a priority bulletin "played first within the programme").
- Two exceptions, both settings: background (music) yields at once to anything higher, and a live
  announcement may be allowed to cut in like an emergency.
- Quiet hours block everything but emergencies.
- The same alert or announcement (same key) arriving again within the duplicate window is refused.

No clock and no I/O: the engine gives the times, so every rule is a unit test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.broadcast.model import Item, Level, OnInterrupt
from hub.broadcast.schedule import quiet

Origin = Literal["schedule", "play_now", "cap", "live", "test"]
CutKind = Literal["preempted", "cancelled", "stopped", "replaced"]


@dataclass
class Cut:
    """Why the current broadcast was stopped before its end."""

    kind: CutKind  # preempted: by a higher level (resumes or is logged interrupted, per programme)
    reason: str
    by: str | None = None  # the job that caused it
    at: dt.datetime | None = None


@dataclass(eq=False)
class Job:
    """One broadcast to play: a programme occurrence, an announcement, an alert, a live announcement."""

    level: Level
    items: tuple[Item, ...]
    zones: tuple[str, ...]
    volume: int
    origin: Origin
    title: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    programme_id: str | None = None
    schedule_id: str | None = None
    planned_at: dt.datetime | None = None  # the wall time it was meant to start (scheduled ones)
    start_mono: float | None = None  # not before this (monotonic); None: as soon as possible
    on_interrupt: OnInterrupt = "resume"
    dedupe_key: str | None = None
    expires_at: dt.datetime | None = None  # CAP: not played after this
    alert_key: str | None = None  # CAP: "sender,identifier", what an Update or a Cancel refers to
    late: bool = False  # a missed occurrence played late
    detail: dict[str, Any] = field(default_factory=dict)
    # kept by the arbiter and the engine while it lives
    seq: int = 0
    position: int = 0  # the next item to play
    submitted_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    interruptions: list[dict[str, Any]] = field(default_factory=list)
    cut: Cut | None = None
    finished: bool = False  # its outcome is logged

    def describe(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "title": self.title,
            "level": self.level.label,
            "origin": self.origin,
            "programme_id": self.programme_id,
            "schedule_id": self.schedule_id,
            "zones": list(self.zones),
            "planned_at": _iso(self.planned_at),
            "items": len(self.items),
            "position": self.position,
            "late": self.late,
        }


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["queued", "blocked", "duplicate"]
    reason: str = ""
    cut_current: bool = False  # the engine must stop the current item now


class Arbiter:
    def __init__(
        self,
        *,
        quiet_hours: Sequence[tuple[dt.time, dt.time]] = (),
        dedupe_window_s: float = 180.0,
        live_cuts_in: bool = False,
        background_yields_at_once: bool = True,
    ) -> None:
        self.quiet_hours = list(quiet_hours)
        self.dedupe_window_s = dedupe_window_s
        self.live_cuts_in = live_cuts_in
        self.background_yields_at_once = background_yields_at_once
        self.queue: list[Job] = []
        self.current: Job | None = None
        self._seen: dict[str, float] = {}  # dedupe key -> monotonic time it was admitted
        self._seq = itertools.count(1)

    # ---- admission -------------------------------------------------------------------------------------------

    def quiet_reason(self, job: Job, at: dt.datetime) -> str | None:
        """Why quiet hours keep `job` from playing at local time `at` (None: they do not)."""
        if job.level >= Level.EMERGENCY:
            return None
        window = quiet(self.quiet_hours, at)
        if window is None:
            return None
        return f"quiet hours {window[0].strftime('%H:%M')}-{window[1].strftime('%H:%M')}"

    def admit(self, job: Job, at: dt.datetime, now_mono: float) -> Verdict:
        """Queue `job` (to start at local time `at`) unless quiet hours or the duplicate window refuse it."""
        reason = self.quiet_reason(job, at)
        if reason is not None:
            return Verdict("blocked", reason)
        key = job.dedupe_key
        if key is not None and self.dedupe_window_s > 0:
            self._expire(now_mono)
            seen = self._seen.get(key)
            if seen is not None:
                return Verdict(
                    "duplicate", f"the same arrived {now_mono - seen:.0f} s ago (window {self.dedupe_window_s:g} s)"
                )
            self._seen[key] = now_mono
        job.seq = next(self._seq)
        self.queue.append(job)
        return Verdict("queued", cut_current=self.cuts_in(job))

    def remember(self, key: str, at_mono: float) -> None:
        """Something with this key played at `at_mono` (e.g. before a restart): refuse it again within the window."""
        self._seen[key] = max(self._seen.get(key, at_mono), at_mono)

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)

    def _expire(self, now_mono: float) -> None:
        old = [k for k, t in self._seen.items() if now_mono - t >= self.dedupe_window_s]
        for k in old:
            del self._seen[k]

    # ---- pre-emption -----------------------------------------------------------------------------------------

    def cuts_in(self, job: Job, current: Job | None = None) -> bool:
        """Whether `job` stops the current item at once, rather than waiting for it to end."""
        current = current or self.current
        if current is None or current is job:
            return False
        if job.level >= Level.EMERGENCY and current.level < Level.EMERGENCY:
            return True
        if job.level == Level.LIVE and self.live_cuts_in and current.level < Level.LIVE:
            return True
        return current.level == Level.BACKGROUND and job.level > Level.BACKGROUND and self.background_yields_at_once

    def steps_in(self, current: Job, now_mono: float) -> Job | None:
        """At an item boundary of `current`: the queued job that goes before its next item, if any."""
        best = self._best(now_mono)
        if best is not None and best.level > current.level:
            return best
        return None

    # ---- the queue -------------------------------------------------------------------------------------------

    def _best(self, now_mono: float | None = None) -> Job | None:
        ready = [j for j in self.queue if now_mono is None or j.start_mono is None or j.start_mono <= now_mono]
        return min(ready, key=lambda j: (-j.level, j.seq), default=None)

    def peek(self) -> Job | None:
        return self._best()

    def pop(self) -> Job | None:
        """The job to play next: highest level first, then the earliest queued (a job cut and put back keeps its
        place). Its start time may still be ahead: the engine waits for it."""
        job = self._best()
        if job is not None:
            self.queue.remove(job)
        return job

    def requeue(self, job: Job) -> None:
        """Put back a job that yielded (it keeps its original place among its level)."""
        self.queue.append(job)

    def remove(self, predicate: Callable[[Job], bool]) -> list[Job]:
        taken = [j for j in self.queue if predicate(j)]
        self.queue = [j for j in self.queue if not predicate(j)]
        return taken

    def ordered(self) -> list[Job]:
        return sorted(self.queue, key=lambda j: (-j.level, j.seq))


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
