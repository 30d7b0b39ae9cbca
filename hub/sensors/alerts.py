"""Alerts on a value crossing ordered thresholds, with hysteresis so that a value hovering at one does not flap.

Pure state machines: they are told values and answer with the transitions to record; they do no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.store import RecordClass

from .aqi import CATEGORIES, CATEGORY_BY_KEY, AqiResult, Category


@dataclass(frozen=True)
class Transition:
    previous: int  # level before: 0 = below the first threshold, k = at or above threshold k
    level: int

    @property
    def rising(self) -> bool:
        return self.level > self.previous


class LevelAlarm:
    """Level k is entered as soon as the value reaches thresholds[k-1] (rising, possibly several levels at once),
    and left only when the value falls below thresholds[k-1] - band. One transition per change of level."""

    def __init__(self, thresholds: Sequence[float], band: float) -> None:
        if list(thresholds) != sorted(thresholds):
            raise ValueError("thresholds must be in ascending order")
        if band < 0:
            raise ValueError("band must not be negative")
        self.thresholds = tuple(thresholds)
        self.band = band
        self.level = 0

    def update(self, value: float | None) -> Transition | None:
        if value is None:  # unknown says nothing: keep the state rather than clear an alert on a gap
            return None
        previous = self.level
        reached = sum(value >= t for t in self.thresholds)
        if reached > self.level:
            self.level = reached
        else:
            while self.level > 0 and value < self.thresholds[self.level - 1] - self.band:
                self.level -= 1
        return Transition(previous, self.level) if self.level != previous else None


def alert_class(category: Category) -> RecordClass:
    """Outbox class of an air-quality alert, by how many people it concerns (the class decides what survives when
    the outbox is full: the lowest is dropped first).

    - Kém: sensitive people (children, the old, the sick) should limit time outdoors. Advice that matters to the
      commune's operators, like a valve or link event: operations.
    - Xấu, Rất xấu: everyone starts to be affected. Must outlive routine operations records through a long outage,
      so it takes the second-highest slot (security), though nothing was broken into.
    - Nguy hại: everyone should stay indoors, an emergency health warning; it ranks with emergency broadcasts and
      power loss: safety.
    """
    if category.low >= CATEGORY_BY_KEY["nguy_hai"].low:
        return RecordClass.SAFETY
    if category.low >= CATEGORY_BY_KEY["xau"].low:
        return RecordClass.SECURITY
    return RecordClass.OPERATIONS


@dataclass(frozen=True)
class AqiAlert:
    state: str  # "raised" (a higher category), "lowered" (down a category, still in alert), "cleared"
    category: Category | None  # the alert category now (None when cleared)
    previous: Category | None
    aqi: int
    record_class: RecordClass

    def payload(self, result: AqiResult) -> dict[str, Any]:
        return {
            "state": self.state,
            "category": None if self.category is None else self.category.key,
            "category_name": None if self.category is None else self.category.name,
            "colour": None if self.category is None else self.category.hex,
            "previous": None if self.previous is None else self.previous.key,
            "aqi": self.aqi,
            "pollutant": result.pollutant,
            "index": "hourly",
        }


class AqiAlarm:
    """Alerts on the hourly VN_AQI from category `alert_from` upwards, each category one level."""

    def __init__(self, alert_from: str, hysteresis_aqi: float) -> None:
        first = CATEGORIES.index(CATEGORY_BY_KEY[alert_from])
        self.categories = CATEGORIES[first:]
        self.alarm = LevelAlarm([c.low for c in self.categories], hysteresis_aqi)

    @property
    def active(self) -> Category | None:
        return self.categories[self.alarm.level - 1] if self.alarm.level else None

    def restore(self, category_key: str | None) -> None:
        """The alert that was active before a restart stays active (no second 'raised', and a 'cleared' when it
        ends); a category below `alert_from` now (the setting changed) restores nothing."""
        keys = [c.key for c in self.categories]
        self.alarm.level = keys.index(category_key) + 1 if category_key in keys else 0

    def update(self, result: AqiResult | None) -> AqiAlert | None:
        transition = self.alarm.update(None if result is None else result.aqi)
        if transition is None or result is None:
            return None
        before = self.categories[transition.previous - 1] if transition.previous else None
        now = self.active
        if transition.rising:
            state = "raised"
        elif now is None:
            state = "cleared"
        else:
            state = "lowered"
        # A step down is filed in the class of the alert it ends: were it lower, a full outbox could drop the
        # clearing record and keep the raising one, and the cloud would show an alert that never ends.
        severest = max((c for c in (before, now) if c is not None), key=lambda c: c.low)
        return AqiAlert(state, now, before, result.aqi, alert_class(severest))
