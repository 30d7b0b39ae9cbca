"""The Vietnamese air-quality index VN_AQI for particulate matter, as QĐ 1459/QĐ-TCMT (12 Nov 2019) of the Vietnam
Environment Administration (Tổng cục Môi trường) defines it. Pure computation: no I/O, no clock of its own.

Names follow the document:
- Bảng 1: AQI ranges, categories (Tốt, Trung bình, Kém, Xấu, Rất xấu, Nguy hại) and their colours (RGB).
- Bảng 2: breakpoints BP_i (µg/m³) against index levels I_i; PM2.5 and PM10 use the same table for the hourly and
  the daily index.
- Công thức 1/2: linear interpolation between breakpoints, AQI_x = (I_{i+1}-I_i)/(BP_{i+1}-BP_i)·(C_x-BP_i) + I_i.
- Mục 2.2.1 (AQI giờ): for PM the concentration is the NowCast of the last 12 hourly means c_1 (current hour) …
  c_12: w* = c_min/c_max, w = w* if w* > 1/2 else 1/2, NowCast = Σ w^(i-1)·c_i / Σ w^(i-1); it needs at least two
  of c_1, c_2, c_3. (The document writes the w = 1/2 case as Σ (1/2)^i·c_i; with all 12 hours that equals the
  normalised form times (1 - 2^-12), a 0.02 % difference. The normalised form is used because it also holds when
  an hour is missing, where the literal one would count the gap as clean air.)
- Mục 2.2.2 (AQI ngày): for PM the 24-hour mean.
- The reported index is the larger of the PM2.5 and PM10 sub-indices, rounded to an integer (half up).

Sources: the breakpoints and categories were checked against the publication note of the Centre for Environmental
Monitoring (cem.gov.vn, 13 Nov 2019, "Tổng cục Môi trường ban hành Hướng dẫn kỹ thuật tính toán và công bố chỉ số
chất lượng không khí Việt Nam") for Bảng 1, and against several independent implementations of Bảng 2, which agree.

Conventions of ours, not the document's: a concentration above the top breakpoint gives 500 (the scale's end);
an hour's mean counts when enough of its minutes hold readings (settings: min_hour_coverage); hours are counted on
the monotonic clock from when the tracker started, not on the wall clock (a box without RTC jumps at NTP sync).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drivers.airquality import AirQualityReading

STANDARD = "VN_AQI (QĐ 1459/QĐ-TCMT 2019)"

# Bảng 2
INDEX_LEVELS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS: dict[str, tuple[float, ...]] = {
    "pm2_5": (0, 25, 50, 80, 150, 250, 350, 500),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
}
POLLUTANTS = ("pm2_5", "pm10")  # order breaks ties: PM2.5 is named when both give the same index
NOWCAST_HOURS = 12
DAY_HOURS = 24


@dataclass(frozen=True)
class Category:
    """A row of Bảng 1."""

    key: str  # ascii key used in config and telemetry
    name: str  # as the document names it
    name_en: str
    low: int
    high: int
    colour: str  # name of the colour in the document
    rgb: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "name": self.name, "name_en": self.name_en, "colour": self.colour, "rgb": self.hex}


CATEGORIES: tuple[Category, ...] = (
    Category("tot", "Tốt", "Good", 0, 50, "Xanh", (0, 228, 0)),
    Category("trung_binh", "Trung bình", "Moderate", 51, 100, "Vàng", (255, 255, 0)),
    Category("kem", "Kém", "Poor", 101, 150, "Da cam", (255, 126, 0)),
    Category("xau", "Xấu", "Bad", 151, 200, "Đỏ", (255, 0, 0)),
    Category("rat_xau", "Rất xấu", "Very bad", 201, 300, "Tím", (143, 63, 151)),
    Category("nguy_hai", "Nguy hại", "Hazardous", 301, 500, "Nâu", (126, 0, 35)),
)
CATEGORY_BY_KEY = {c.key: c for c in CATEGORIES}


def category_of(aqi: int) -> Category:
    if aqi < 0:
        raise ValueError(f"AQI {aqi} is negative")
    for category in CATEGORIES:
        if aqi <= category.high:
            return category
    return CATEGORIES[-1]


def round_half_up(x: float) -> int:
    # round() rounds half to even (112.5 -> 112); the index is read by people, who expect 113. The inner round
    # absorbs float noise such as 112.49999999999999 coming out of an interpolation that is exactly 112.5.
    return math.floor(round(x, 9) + 0.5)


def sub_index(pollutant: str, concentration: float | None) -> float | None:
    """Công thức 1: the unrounded index of one pollutant; None when there is no concentration."""
    if concentration is None or math.isnan(concentration):
        return None
    c = max(0.0, concentration)  # a slightly negative mean (sensor offset) is clean air, not an error
    bp = BREAKPOINTS[pollutant]
    for i in range(len(bp) - 1):
        if c <= bp[i + 1]:
            return (INDEX_LEVELS[i + 1] - INDEX_LEVELS[i]) / (bp[i + 1] - bp[i]) * (c - bp[i]) + INDEX_LEVELS[i]
    return float(INDEX_LEVELS[-1])


def nowcast(hours: Sequence[float | None]) -> float | None:
    """Mục 2.2.1: NowCast of hourly means, most recent first (c_1 = the hour just ended); None = no data."""
    c = list(itertools.islice(hours, NOWCAST_HOURS))  # hours may be a deque, which does not slice
    if sum(x is not None for x in c[:3]) < 2:
        return None
    present = [x for x in c if x is not None]
    c_max = max(present)
    if c_max <= 0:
        return 0.0
    w_star = min(present) / c_max
    w = w_star if w_star > 0.5 else 0.5
    num = den = 0.0
    for i, x in enumerate(c):
        if x is not None:
            num += w**i * x
            den += w**i
    return num / den


@dataclass(frozen=True)
class AqiResult:
    aqi: int
    category: Category
    pollutant: str  # the one that gave the index
    sub_indices: dict[str, int | None]
    concentrations: dict[str, float | None]  # the NowCast (hourly) or the 24-h mean (daily) that was used

    def as_dict(self) -> dict[str, object]:
        return {
            "aqi": self.aqi,
            "category": self.category.key,
            "category_name": self.category.name,
            "colour": self.category.hex,
            "pollutant": self.pollutant,
            "sub_indices": self.sub_indices,
            "concentrations": {k: None if v is None else round(v, 1) for k, v in self.concentrations.items()},
        }


def combine(concentrations: dict[str, float | None]) -> AqiResult | None:
    """The index from one concentration per pollutant: the largest rounded sub-index; None without PM data."""
    subs: dict[str, int | None] = {}
    for pollutant in POLLUTANTS:
        value = sub_index(pollutant, concentrations.get(pollutant))
        subs[pollutant] = None if value is None else round_half_up(value)
    known = [(v, p) for p, v in subs.items() if v is not None]
    if not known:
        return None
    best = max(v for v, _ in known)
    pollutant = next(p for v, p in known if v == best)
    return AqiResult(best, category_of(best), pollutant, subs, dict(concentrations))


def hourly_aqi(hours: Mapping[str, Sequence[float | None]]) -> AqiResult | None:
    """AQI giờ from hourly means per pollutant, most recent first."""
    return combine({p: nowcast(hours.get(p, ())) for p in POLLUTANTS})


def daily_aqi(hours: Mapping[str, Sequence[float | None]], min_hours: int = 18) -> AqiResult | None:
    """AQI ngày from the last 24 hourly means per pollutant (most recent first); a pollutant with fewer than
    min_hours valid hours among them is left out."""
    means: dict[str, float | None] = {}
    for pollutant in POLLUTANTS:
        valid = [x for x in itertools.islice(hours.get(pollutant, ()), DAY_HOURS) if x is not None]
        means[pollutant] = statistics.fmean(valid) if len(valid) >= min_hours else None
    return combine(means)


def interval_mean(samples: Iterable[AirQualityReading]) -> dict[str, float | int | str]:
    """The telemetry record of one sampling interval: the mean of each mass concentration over it."""
    samples = list(samples)
    return {
        "pm1_0": round(statistics.fmean(r.pm1_0 for r in samples), 1),
        "pm2_5": round(statistics.fmean(r.pm2_5 for r in samples), 1),
        "pm10": round(statistics.fmean(r.pm10 for r in samples), 1),
        "samples": len(samples),
        "source": samples[-1].source,
    }


@dataclass(frozen=True)
class HourSummary:
    """What the tracker gives when an hour ends: that hour's means and the indices after it."""

    hour: int  # hours since the tracker started
    pm2_5: float | None  # the hour's mean, None when too few minutes held readings
    pm10: float | None
    coverage: float  # share of the hour's minutes with readings
    hourly: AqiResult | None
    daily: AqiResult | None

    def as_dict(self) -> dict[str, object]:
        return {
            "standard": STANDARD,
            "hour": self.hour,
            "hour_pm2_5": None if self.pm2_5 is None else round(self.pm2_5, 1),
            "hour_pm10": None if self.pm10 is None else round(self.pm10, 1),
            "coverage": round(self.coverage, 3),
            "hourly": None if self.hourly is None else self.hourly.as_dict(),
            "daily": None if self.daily is None else self.daily.as_dict(),
        }


class AirQualityTracker:
    """Hourly means and the indices, from readings as they come (any rate), keyed by a monotonic time in seconds.

    Feed every reading to add(); call tick() now and then so that hours without any reading still end (a dead
    sensor gives gaps, which the NowCast must see). Both return the summaries of the hours that ended.
    """

    def __init__(
        self,
        start: float,
        *,
        min_coverage: float = 0.75,
        min_day_hours: int = 18,
        hour_s: float = 3600.0,
        minutes_per_hour: int = 60,
    ) -> None:
        self.origin = start
        self.hour_s = hour_s
        self.minute_s = hour_s / minutes_per_hour
        self.minutes_per_hour = minutes_per_hour
        self.min_coverage = min_coverage
        self.min_day_hours = min_day_hours
        self._hour = 0
        self._sums = {p: 0.0 for p in POLLUTANTS}
        self._count = 0
        self._minutes: set[int] = set()
        # Most recent first, like c_1 … c_24 in the document.
        self.hours: dict[str, deque[float | None]] = {p: deque(maxlen=DAY_HOURS) for p in POLLUTANTS}
        self.last: HourSummary | None = None

    def add(self, t: float, pm2_5: float, pm10: float) -> list[HourSummary]:
        ended = self.tick(t)
        if t < self.origin:  # cannot happen on a monotonic clock; ignored rather than filed in a past hour
            return ended
        self._sums["pm2_5"] += pm2_5
        self._sums["pm10"] += pm10
        self._count += 1
        self._minutes.add(int((t - self.origin - self._hour * self.hour_s) // self.minute_s))
        return ended

    def restore(self, hours: dict[str, list[float | None]], missed: int) -> None:
        """Put back the hourly means saved before a restart; `missed` hours went by without a reading (the box
        was off) and count as gaps, as the NowCast wants. Without this a restart would blank the index for
        hours (and the 24 h index for a day) after every power cut."""
        missed = max(0, min(missed, DAY_HOURS))
        for p in POLLUTANTS:
            saved = [None if v is None else float(v) for v in hours.get(p, [])][:DAY_HOURS]
            self.hours[p] = deque([None] * missed + saved, maxlen=DAY_HOURS)

    def history(self) -> dict[str, list[float | None]]:
        return {p: list(self.hours[p]) for p in POLLUTANTS}

    def tick(self, t: float) -> list[HourSummary]:
        ended: list[HourSummary] = []
        while t - self.origin >= (self._hour + 1) * self.hour_s:
            ended.append(self._close_hour())
        return ended

    def _close_hour(self) -> HourSummary:
        coverage = len(self._minutes) / self.minutes_per_hour
        valid = self._count > 0 and coverage >= self.min_coverage
        means = {p: (self._sums[p] / self._count if valid else None) for p in POLLUTANTS}
        for p in POLLUTANTS:
            self.hours[p].appendleft(means[p])
        summary = HourSummary(
            hour=self._hour,
            pm2_5=means["pm2_5"],
            pm10=means["pm10"],
            coverage=coverage,
            hourly=hourly_aqi(self.hours),
            daily=daily_aqi(self.hours, self.min_day_hours),
        )
        self._hour += 1
        self._sums = {p: 0.0 for p in POLLUTANTS}
        self._count = 0
        self._minutes = set()
        self.last = summary
        return summary
