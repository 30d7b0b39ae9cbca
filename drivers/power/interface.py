"""What hub/ sees of the power supply: samples of the UPS and the events derived from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

EventKind = Literal["mains_lost", "mains_restored", "battery_low", "battery_ok"]


@dataclass(frozen=True, slots=True)
class PowerSample:
    at_mono: float  # time.monotonic(): for intervals, immune to the wall clock jumping at NTP sync
    at_wall: float  # time.time(): for the event log
    battery_v: float | None  # pack voltage; None when the UPS could not be read (or none is fitted)
    current_a: float | None  # battery current, positive while charging
    mains: bool | None  # None: unknown (UPS unreadable)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PowerEvent:
    kind: EventKind
    at_mono: float
    at_wall: float
    battery_v: float | None
    mains: bool | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
