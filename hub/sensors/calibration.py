"""Soil probes: raw ADC counts to moisture percent, per probe, and the readings that cannot be true.

A capacitive probe reads lower the wetter the soil (most do; the other way round works too). Percent is linear
between the probe's dry (0 %) and wet (100 %) counts, clamped, because a little beyond either end is normal
(drier than at calibration, puddle on top). Far beyond either end, or at an ADC rail, is not soil any more: the
probe is out of the ground, shorted, or its wire is cut. Those readings are faults and give no percent, so that
nothing (irrigation above all) acts on them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .settings import ADC_MAX, SoilProbeSettings, SoilSettings


class SoilFault(enum.StrEnum):
    RAIL_LOW = "rail_low"  # at or near 0 counts: short circuit, or the ADC input pulled to ground
    RAIL_HIGH = "rail_high"  # at or near full scale: open circuit, cut wire, probe unplugged
    BEYOND_DRY = "beyond_dry"  # far drier than air-dry soil: probe lifted out of the ground
    BEYOND_WET = "beyond_wet"  # far wetter than saturated soil: probe under water, corroded, or a bad calibration
    MISSING = "missing"  # the node sent fewer channels than this probe's


@dataclass(frozen=True)
class Calibration:
    dry_raw: int
    wet_raw: int
    tolerance_pct: float = 10.0
    rail_margin_raw: int = 256

    def __post_init__(self) -> None:
        if self.dry_raw == self.wet_raw:
            raise ValueError("dry_raw and wet_raw must differ")

    @property
    def span(self) -> int:
        return abs(self.dry_raw - self.wet_raw)

    def unclamped(self, raw: float) -> float:
        """Percent on the calibration line, unbounded (negative: drier than dry; above 100: wetter than wet)."""
        return (self.dry_raw - raw) / (self.dry_raw - self.wet_raw) * 100.0

    def percent(self, raw: float) -> float:
        return min(100.0, max(0.0, self.unclamped(raw)))

    def raw_for(self, percent: float) -> int:
        """The raw count that reads as `percent` (the inverse of percent(), within a count)."""
        return round(self.dry_raw - percent / 100.0 * (self.dry_raw - self.wet_raw))

    def fault(self, raw: int) -> SoilFault | None:
        if raw <= self.rail_margin_raw:
            return SoilFault.RAIL_LOW
        if raw >= ADC_MAX - self.rail_margin_raw:
            return SoilFault.RAIL_HIGH
        beyond = self.tolerance_pct
        line = self.unclamped(raw)
        if line < -beyond:
            return SoilFault.BEYOND_DRY
        if line > 100.0 + beyond:
            return SoilFault.BEYOND_WET
        return None


@dataclass(frozen=True)
class ProbeReading:
    name: str
    channel: int
    raw: int | None
    percent: float | None  # None when faulty
    fault: SoilFault | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "raw": self.raw,
            "percent": None if self.percent is None else round(self.percent, 1),
            "fault": None if self.fault is None else self.fault.value,
        }


@dataclass(frozen=True)
class Probe:
    name: str
    channel: int
    calibration: Calibration

    @classmethod
    def from_settings(cls, probe: SoilProbeSettings, soil: SoilSettings) -> Probe:
        return cls(
            probe.name,
            probe.channel,
            Calibration(probe.dry_raw, probe.wet_raw, soil.tolerance_pct, soil.rail_margin_raw),
        )

    def read(self, soil_raw: Sequence[int]) -> ProbeReading:
        if self.channel >= len(soil_raw):
            return ProbeReading(self.name, self.channel, None, None, SoilFault.MISSING)
        raw = soil_raw[self.channel]
        fault = self.calibration.fault(raw)
        percent = None if fault is not None else self.calibration.percent(raw)
        return ProbeReading(self.name, self.channel, raw, percent, fault)


class SoilCalibrator:
    """Every configured probe read from one node answer."""

    def __init__(self, soil: SoilSettings) -> None:
        self.probes = [Probe.from_settings(p, soil) for p in soil.probes]

    def read(self, soil_raw: Sequence[int]) -> list[ProbeReading]:
        return [probe.read(soil_raw) for probe in self.probes]
