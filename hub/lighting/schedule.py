"""What each circuit should be at a given instant, why, and when that next changes: pure computation.

Every rule becomes intervals on the time line (built in local wall time, compared in UTC so that a DST
fold in some other `hub.timezone` cannot confuse the order). A circuit is on while one of its on-intervals
(dusk_dawn, fixed) holds and none of its half_night windows is open; a manual override that has not expired
replaces all of that. Nothing here reads a clock or the store: the service passes `at`, so the same
function serves the service, the tests and the benchmark.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import sunrise, sunset

from hub.lighting.settings import CircuitSettings, LightingSection, RuleSettings

UTC = dt.UTC
DAY = dt.timedelta(days=1)
# How far ahead the next change is looked for: a rule for one weekday changes at most a week away.
HORIZON_DAYS = 8
NO_RULE = "no rule"


@dataclass(frozen=True, slots=True)
class Place:
    """Where the box is: for sunset and sunrise, and the zone the rules' wall times are written in."""

    latitude: float
    longitude: float
    tz: dt.tzinfo

    @classmethod
    def create(cls, latitude: float, longitude: float, timezone: str) -> Place:
        return cls(latitude, longitude, ZoneInfo(timezone))


# ---- rules --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DuskDawn:
    name: str
    days: frozenset[int]
    on_offset: dt.timedelta  # after sunset
    off_offset: dt.timedelta  # before sunrise


@dataclass(frozen=True, slots=True)
class Fixed:
    name: str
    days: frozenset[int]
    on: dt.time
    off: dt.time


@dataclass(frozen=True, slots=True)
class HalfNight:
    """Forced off from `off` to `on`: a window cut out of whatever the other rules say."""

    name: str
    days: frozenset[int]
    off: dt.time
    on: dt.time


Rule = DuskDawn | Fixed | HalfNight


def rule_from_settings(rule: RuleSettings) -> Rule:
    if rule.kind == "dusk_dawn":
        return DuskDawn(
            rule.label,
            rule.weekdays,
            dt.timedelta(minutes=rule.on_offset_min),
            dt.timedelta(minutes=rule.off_offset_min),
        )
    assert rule.on is not None
    assert rule.off is not None  # the settings refuse a fixed or half_night rule without both
    if rule.kind == "fixed":
        return Fixed(rule.label, rule.weekdays, rule.on, rule.off)
    return HalfNight(rule.label, rule.weekdays, rule.off, rule.on)


@dataclass(frozen=True, slots=True)
class Circuit:
    name: str
    relays: tuple[str, ...]
    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_settings(cls, circuit: CircuitSettings) -> Circuit:
        return cls(circuit.name, tuple(circuit.relays), tuple(rule_from_settings(r) for r in circuit.rule))


def circuits_from_settings(section: LightingSection) -> tuple[Circuit, ...]:
    return tuple(Circuit.from_settings(c) for c in section.circuit)


# ---- overrides and decisions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Override:
    """A person's "on (or off) until …". `until` None: until cancelled (only when no rule ever changes)."""

    on: bool
    until: dt.datetime | None
    who: str
    reason: str
    set_at: dt.datetime
    until_next_change: bool = False  # asked as "until the next rule change"; `until` is that change

    def active(self, at: dt.datetime) -> bool:
        return self.until is None or at < self.until

    def as_dict(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "until": None if self.until is None else self.until.isoformat(),
            "who": self.who,
            "reason": self.reason,
            "set_at": self.set_at.isoformat(),
            "until_next_change": self.until_next_change,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Override:
        until = data.get("until")
        return cls(
            on=bool(data["on"]),
            until=None if until is None else _aware(dt.datetime.fromisoformat(str(until))),
            who=str(data["who"]),
            reason=str(data.get("reason") or ""),
            set_at=_aware(dt.datetime.fromisoformat(str(data["set_at"]))),
            until_next_change=bool(data.get("until_next_change", False)),
        )


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no UTC offset")
    return value


Cause = Literal["rule", "override"]


@dataclass(frozen=True, slots=True)
class Decision:
    circuit: str
    on: bool
    cause: Cause
    reason: str  # the rule's name, "no rule", or the override's reason
    next_change: dt.datetime | None  # in the place's zone; None: nothing changes within the horizon
    override: Override | None = None
    rule: str | None = field(default=None)  # the rule behind the state (None for an override or no rule)


# ---- intervals ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Interval:
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC, exclusive
    rule: str


@functools.lru_cache(maxsize=1024)
def _sun(latitude: float, longitude: float, tz: dt.tzinfo, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """Sunset of `day` and sunrise of the day after (UTC), or None where the sun does not set or rise."""
    observer = Observer(latitude, longitude, 0.0)
    try:
        dusk = sunset(observer, day, tzinfo=tz)
        dawn = sunrise(observer, day + DAY, tzinfo=tz)
    except ValueError:  # polar day or night: astral finds no crossing. Not in Vietnam, but never crash.
        return None
    return dusk.astimezone(UTC), dawn.astimezone(UTC)


def _local(day: dt.date, at: dt.time, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def _interval_from(rule: Rule, place: Place, day: dt.date) -> _Interval | None:
    """The interval the rule starts on local date `day` (each rule starts at most one per day)."""
    if day.weekday() not in rule.days:
        return None
    if isinstance(rule, DuskDawn):
        sun = _sun(place.latitude, place.longitude, place.tz, day)
        if sun is None:
            return None
        start, end = sun[0] + rule.on_offset, sun[1] - rule.off_offset
    else:
        first, second = (rule.on, rule.off) if isinstance(rule, Fixed) else (rule.off, rule.on)
        start = _local(day, first, place.tz)
        end = _local(day + DAY if second <= first else day, second, place.tz)
    if end <= start:  # offsets so large that the night vanished: the rule does nothing that day
        return None
    return _Interval(start, end, rule.name)


def _intervals(rules: Iterable[Rule], place: Place, first: dt.date, days: int) -> list[_Interval]:
    out: list[_Interval] = []
    for rule in rules:
        for n in range(days):
            interval = _interval_from(rule, place, first + n * DAY)
            if interval is not None:
                out.append(interval)
    return out


def _holding(intervals: Sequence[_Interval], at: dt.datetime) -> _Interval | None:
    for interval in intervals:
        if interval.start <= at < interval.end:
            return interval
    return None


def _state(on: Sequence[_Interval], off: Sequence[_Interval], at: dt.datetime) -> tuple[bool, str | None]:
    """(on?, the rule responsible) at `at`; the rule is None when nothing holds."""
    blocker = _holding(off, at)
    holder = _holding(on, at)
    if holder is None:
        return False, None
    if blocker is not None:
        return False, blocker.rule
    return True, holder.rule


def decide_circuit(circuit: Circuit, place: Place, at: dt.datetime, override: Override | None = None) -> Decision:
    """The circuit's desired state at `at` (an aware datetime), why, and when that will next change."""
    if at.tzinfo is None:
        raise ValueError("decide_circuit needs an aware datetime (a naive one is ambiguous after a clock jump)")
    t = at.astimezone(UTC)
    if override is not None and override.active(t):
        until = None if override.until is None else override.until.astimezone(place.tz)
        return Decision(circuit.name, override.on, "override", override.reason or "override", until, override)
    # Start a day early: last evening's night (or a fixed interval across midnight) may still hold.
    first = t.astimezone(place.tz).date() - DAY
    on_rules = [r for r in circuit.rules if not isinstance(r, HalfNight)]
    off_rules = [r for r in circuit.rules if isinstance(r, HalfNight)]
    on = _intervals(on_rules, place, first, HORIZON_DAYS + 1)
    off = _intervals(off_rules, place, first, HORIZON_DAYS + 1)
    state, rule = _state(on, off, t)
    if rule is None:
        # Off with nothing holding: name the rule that last switched it off (sunrise ended the night),
        # so "off, dusk_dawn" reads as the commune expects.
        ended = [i for i in on if i.end <= t]
        rule = max(ended, key=lambda i: i.end).rule if ended else None
    next_change: dt.datetime | None = None
    for boundary in sorted({b for i in (*on, *off) for b in (i.start, i.end) if b > t}):
        if _state(on, off, boundary)[0] != state:
            next_change = boundary.astimezone(place.tz)
            break
    return Decision(circuit.name, state, "rule", rule or NO_RULE, next_change, None, rule)


def decide(
    circuits: Iterable[Circuit],
    place: Place,
    at: dt.datetime,
    overrides: Mapping[str, Override] | None = None,
) -> dict[str, Decision]:
    """Every circuit's decision at `at`. Overrides that have expired by `at` are ignored (the caller drops them)."""
    overrides = overrides or {}
    return {c.name: decide_circuit(c, place, at, overrides.get(c.name)) for c in circuits}


def next_change(decisions: Iterable[Decision]) -> dt.datetime | None:
    times = [d.next_change for d in decisions if d.next_change is not None]
    return min(times) if times else None
