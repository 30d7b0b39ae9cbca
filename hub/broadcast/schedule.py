"""When programmes play: occurrences of schedules in local time, and what to do with each one that comes due.

Pure functions, no clock of their own. The service keeps, per schedule, a *watermark*: every occurrence at or
before it has been decided (played, logged missed) and is never looked at again. The last decided occurrence
is kept in the store, so neither a restart nor a wall clock that jumps backwards (NTP after a boot without
RTC) can make an occurrence play twice; a clock that jumps forwards (or a box that was off) leaves
occurrences behind, which `decide` logs as missed — or plays late, if the programme asks for it and it is
still within the programme's late window.

Times are local wall times in the hub's zone (Asia/Ho_Chi_Minh). A local time that does not exist (a DST
gap, in zones that have one) is moved forward by the gap; a repeated one (DST fall-back) counts once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hub.broadcast.model import Programme, Schedule

UTC = dt.UTC
MAX_HORIZON_DAYS = 800  # next_occurrence looks this far ahead (a 'dates' schedule may start next year)

Action = Literal["play", "late", "missed"]


def local(date: dt.date, time: dt.time, tz: dt.tzinfo) -> dt.datetime:
    """`date` at `time` on the wall clock of `tz`, as an aware datetime (first of two if repeated)."""
    naive = dt.datetime.combine(date, time)
    aware = naive.replace(tzinfo=tz, fold=0)
    # Round-trip through UTC: a time in a DST gap becomes the real instant after the gap.
    return aware.astimezone(UTC).astimezone(tz)


def _days(schedule: Schedule, first: dt.date, last: dt.date) -> Iterator[dt.date]:
    start = max(first, schedule.start_date) if schedule.start_date else first
    end = min(last, schedule.end_date) if schedule.end_date else last
    weekdays = schedule.weekdays if schedule.kind in ("weekly", "dates") else frozenset(range(7))
    day = start
    while day <= end:
        if day.weekday() in weekdays:
            yield day
        day += dt.timedelta(days=1)


def occurrences(schedule: Schedule, after: dt.datetime, until: dt.datetime, tz: dt.tzinfo) -> list[dt.datetime]:
    """Planned starts with `after < t <= until`, oldest first, as aware datetimes in `tz`."""
    if until <= after:
        return []
    if schedule.kind == "once":
        at = schedule.at_local(tz)
        return [at] if at is not None and after < at <= until else []
    out: list[dt.datetime] = []
    first = after.astimezone(tz).date() - dt.timedelta(days=1)
    last = until.astimezone(tz).date() + dt.timedelta(days=1)
    for day in _days(schedule, first, last):
        for time in schedule.times:
            t = local(day, time, tz)
            if after < t <= until and (not out or t > out[-1]):
                out.append(t)
    return out


def next_occurrence(schedule: Schedule, after: dt.datetime, tz: dt.tzinfo) -> dt.datetime | None:
    """The first planned start strictly after `after`, or None if there is none any more."""
    if schedule.kind == "once":
        at = schedule.at_local(tz)
        return at if at is not None and at > after else None
    window = dt.timedelta(days=8)
    start = after
    horizon = after + dt.timedelta(days=MAX_HORIZON_DAYS)
    if schedule.start_date is not None:
        # Skip straight to the start of a range that begins later.
        begin = local(schedule.start_date, dt.time(0), tz) - dt.timedelta(seconds=1)
        start = max(start, begin)
    while start < horizon:
        if schedule.end_date is not None and start.astimezone(tz).date() > schedule.end_date:
            return None
        found = occurrences(schedule, start, start + window, tz)
        if found:
            return found[0]
        start += window
    return None


@dataclass(frozen=True)
class Occurrence:
    schedule_id: str
    programme_id: str
    planned: dt.datetime  # aware, local
    action: Action
    lateness_s: float  # now - planned; negative: still in the future (pre-roll)


@dataclass(frozen=True)
class Window:
    """The timing rules `decide` applies (from [broadcast], some overridden per programme)."""

    preroll_s: float  # occurrences this far ahead are decided now (power on, render), then start on time
    grace_s: float  # up to this late still counts as on time (a busy moment, a small clock step)
    late_window_s: float  # a programme with play_late plays if no later than this
    lookback_s: float  # older missed occurrences are only counted, not logged one by one


def decide(
    schedule: Schedule,
    programme: Programme | None,
    watermark: dt.datetime,
    now: dt.datetime,
    window: Window,
    tz: dt.tzinfo,
) -> tuple[list[Occurrence], int]:
    """What to do with the occurrences in (watermark, now + preroll].

    Returns the decisions, oldest first, and how many occurrences were older than the lookback (not logged one
    by one: a box that booted in 2020 without a clock must not write years of 'missed' when NTP syncs).
    On time (lateness <= grace): play. Later: missed — except the newest missed one of a programme that says
    play_late, which plays late if within its late window. A watermark in the future (the clock jumped back)
    gives nothing until the clock has caught up again.
    """
    until = now + dt.timedelta(seconds=window.preroll_s)
    if not schedule.enabled or until <= watermark:
        return [], 0
    floor = now - dt.timedelta(seconds=window.lookback_s)
    skipped = 0
    start = watermark
    if watermark < floor:
        skipped = len(occurrences(schedule, watermark, floor, tz))
        start = floor
    found = occurrences(schedule, start, until, tz)
    late_window = window.late_window_s
    play_late = False
    if programme is not None:
        play_late = programme.play_late
        if programme.late_window_s is not None:
            late_window = programme.late_window_s
    out: list[Occurrence] = []
    missed_indexes: list[int] = []
    for t in found:
        lateness = (now - t).total_seconds()
        action: Action = "play" if lateness <= window.grace_s else "missed"
        if action == "missed":
            missed_indexes.append(len(out))
        out.append(Occurrence(schedule.id, schedule.programme_id, t, action, lateness))
    if play_late and missed_indexes:
        newest = missed_indexes[-1]
        entry = out[newest]
        played_after = any(o.action == "play" for o in out[newest + 1 :])
        if entry.lateness_s <= late_window and not played_after:
            out[newest] = Occurrence(entry.schedule_id, entry.programme_id, entry.planned, "late", entry.lateness_s)
    return out, skipped


# ---- quiet hours -----------------------------------------------------------------------------------------------


def in_window(start: dt.time, end: dt.time, at: dt.time) -> bool:
    """Whether `at` falls in [start, end), a window that may run over midnight (22:00-05:00)."""
    if start <= end:
        return start <= at < end
    return at >= start or at < end


def quiet(windows: Iterable[tuple[dt.time, dt.time]], at: dt.datetime) -> tuple[dt.time, dt.time] | None:
    """The quiet-hours window `at` (local) falls in, or None."""
    t = at.time().replace(tzinfo=None)
    for start, end in windows:
        if in_window(start, end, t):
            return start, end
    return None


# ---- overlaps --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlap:
    first: str  # schedule ids
    second: str
    at: dt.datetime  # the start of the later of the two
    shared_zones: tuple[str, ...]

    def describe(self) -> str:
        zones = f" on zones {', '.join(self.shared_zones)}" if self.shared_zones else ""
        return (
            f"schedule {self.second!r} starts at {self.at.strftime('%Y-%m-%d %H:%M')} while schedule "
            f"{self.first!r} is still playing{zones}; the later one will wait for the other"
        )


def overlaps(
    schedules: Sequence[Schedule],
    programmes: Mapping[str, Programme],
    start: dt.datetime,
    tz: dt.tzinfo,
    *,
    days: int = 14,
    durations: dict[str, float] | None = None,
    only: str | None = None,
) -> list[Overlap]:
    """Schedules whose programmes would play at the same time within the next `days` (one loudspeaker output:
    any two overlap, whatever their zones). Lengths are estimated (text by its words, streams by their duration,
    uploaded audio by `durations` when known). `only`: report only overlaps involving this schedule id."""
    slots: list[tuple[dt.datetime, dt.datetime, Schedule, Programme]] = []
    end = start + dt.timedelta(days=days)
    for schedule in schedules:
        programme = programmes.get(schedule.programme_id)
        if programme is None or not schedule.enabled:
            continue
        length = dt.timedelta(seconds=max(programme.estimate_s(durations), 1.0))
        for t in occurrences(schedule, start, end, tz):
            slots.append((t, t + length, schedule, programme))
    slots.sort(key=lambda slot: slot[0])
    found: dict[tuple[str, str], Overlap] = {}
    for i, (_t0, e0, s0, p0) in enumerate(slots):
        for t1, _e1, s1, p1 in slots[i + 1 :]:
            if t1 >= e0:
                break
            if s1.id == s0.id or (only is not None and only not in (s0.id, s1.id)):
                continue
            key = (s0.id, s1.id)
            if key not in found:
                shared = tuple(z for z in p0.zones if z in p1.zones)
                found[key] = Overlap(s0.id, s1.id, t1, shared)
    return list(found.values())
