"""The [sensors] table of hub.toml and its sub-tables: air-quality index and alerts, soil probes, irrigation.

Meant to replace hub.config.settings.SensorsSection (same `interval_s` field, same meaning), so that the sensors
service owns its config section as every hub service should.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hub.section import Section

ADC_MAX = 65535

CategoryKey = Literal["trung_binh", "kem", "xau", "rat_xau", "nguy_hai"]

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class AirQualityIndexSettings(Section):
    alert_from: CategoryKey = Field(
        default="kem",
        title="Alert from category",
        description=(
            "The VN_AQI category (QĐ 1459/QĐ-TCMT) from which an alert is raised, on the hourly index: 'kem' "
            "(101-150, sensitive people affected), 'xau' (151-200), 'rat_xau' (201-300), 'nguy_hai' (301-500). "
            "Each higher category is a further, more urgent alert."
        ),
    )
    hysteresis_aqi: float = Field(
        default=10.0,
        ge=0.0,
        le=50.0,
        title="Hysteresis (AQI points)",
        description=(
            "An alert clears (or steps down a category) only once the hourly index is this many points below the "
            "category's lower bound, so an index hovering at a boundary does not raise and clear by turns."
        ),
    )
    min_hour_coverage: float = Field(
        default=0.75,
        gt=0.0,
        le=1.0,
        title="Minimum hour coverage",
        description=(
            "Share of the minutes of an hour that must hold readings for its average to count; a shorter hour is a "
            "gap (the NowCast then weighs the other hours, and needs two of the last three)."
        ),
    )
    min_day_hours: int = Field(
        default=18,
        ge=1,
        le=24,
        title="Hours for a daily index",
        description="Valid hourly averages among the last 24 needed before the daily index (24-hour mean) is given.",
    )


class SoilProbeSettings(Section):
    name: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        title="Probe name",
        description="Short name used in telemetry and by [sensors.irrigation] probes, e.g. 'vuon-rau'.",
    )
    channel: int = Field(
        ge=0,
        le=15,
        title="Node channel",
        description="The probe's position in the node's readings (wiring order, 0 first).",
    )
    dry_raw: int = Field(
        ge=0,
        le=ADC_MAX,
        title="Dry reading (ADC counts)",
        description="The probe's raw value in air-dry soil (0 %). Measured at installation.",
    )
    wet_raw: int = Field(
        ge=0,
        le=ADC_MAX,
        title="Wet reading (ADC counts)",
        description="The probe's raw value in water-saturated soil (100 %). Most capacitive probes read lower wet.",
    )

    @model_validator(mode="after")
    def _span(self) -> SoilProbeSettings:
        if abs(self.dry_raw - self.wet_raw) < 1000:
            raise ValueError(
                f"dry_raw={self.dry_raw} and wet_raw={self.wet_raw} are less than 1000 counts apart: "
                "recalibrate the probe (readings in dry and in saturated soil)"
            )
        return self


class SoilSettings(Section):
    probes: list[SoilProbeSettings] = Field(
        default_factory=list,
        title="Soil probes",
        description="Calibration of each wired probe; channels not listed are recorded raw only.",
    )
    tolerance_pct: float = Field(
        default=10.0,
        ge=0.0,
        le=100.0,
        title="Calibration tolerance (% of span)",
        description=(
            "A reading further beyond the dry or the wet value than this share of the dry-wet span is physically "
            "implausible (probe out of the soil, flooded, corroded): a fault, not 0 % or 100 %."
        ),
    )
    rail_margin_raw: int = Field(
        default=256,
        ge=0,
        le=8192,
        title="ADC rail margin (counts)",
        description="A reading within this many counts of 0 or 65535 means a cut wire or a short circuit: a fault.",
    )

    @field_validator("probes")
    @classmethod
    def _unique(cls, probes: list[SoilProbeSettings]) -> list[SoilProbeSettings]:
        for what in ("name", "channel"):
            values = [getattr(p, what) for p in probes]
            duplicates = sorted({str(v) for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"two probes have the same {what}: {', '.join(duplicates)}")
        return probes


class IrrigationSettings(Section):
    enabled: bool = Field(
        default=False,
        title="Irrigation",
        description="Let the hub drive the node's valve (automatic cycles and manual runs).",
    )
    probes: list[str] = Field(
        default_factory=list,
        title="Probes watched",
        description="Names of [[sensors.soil.probes]] whose mean moisture decides; a fault on any of them stops it.",
    )
    start_below_pct: float = Field(
        default=30.0,
        ge=0.0,
        le=100.0,
        title="Start below (%)",
        description="A cycle starts when the moisture has stayed below this for the confirm period.",
    )
    target_pct: float = Field(
        default=60.0,
        ge=0.0,
        le=100.0,
        title="Target (%)",
        description="A cycle ends when the moisture reaches this.",
    )
    confirm_s: float = Field(
        default=600.0,
        ge=0.0,
        le=86_400.0,
        title="Confirm period (s)",
        description="How long the soil must read dry without a break before a cycle starts (one dry reading is noise).",
    )
    max_run_s: float = Field(
        default=1200.0,
        gt=0.0,
        le=3600.0,
        title="Longest run (s)",
        description="A cycle or a manual run ends after this, wet or not; the node is told too and enforces it.",
    )
    min_rest_s: float = Field(
        default=3600.0,
        ge=0.0,
        le=7 * 86_400.0,
        title="Minimum rest (s)",
        description="Time from the end of one run to the start of the next (automatic or manual): water soaks in.",
    )
    allowed_hours: list[str] = Field(
        default_factory=lambda: ["05:00-08:00", "17:00-19:00"],
        title="Allowed hours",
        description=(
            "Local-time windows 'HH:MM-HH:MM' in which automatic cycles may start (cool hours: less evaporation). "
            "'00:00-24:00' for all day; a window may run past midnight ('22:00-02:00'). Manual runs ignore them."
        ),
    )
    check_interval_s: float = Field(
        default=5.0,
        gt=0.0,
        le=600.0,
        title="Check interval (s)",
        description="How often the probes are read while irrigation is enabled.",
    )
    stale_after_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        title="Sensor silent after (s)",
        description="No reading from the node for this long is a fault: the valve is closed and an alert raised.",
    )

    @field_validator("allowed_hours")
    @classmethod
    def _windows(cls, windows: list[str]) -> list[str]:
        for window in windows:
            match = _WINDOW.match(window)
            if match is None or (match.group(3) == "24" and match.group(4) != "00"):
                raise ValueError(f"allowed_hours: {window!r} is not 'HH:MM-HH:MM' (e.g. '05:00-08:00')")
        return windows

    @model_validator(mode="after")
    def _thresholds(self) -> IrrigationSettings:
        if self.target_pct <= self.start_below_pct:
            raise ValueError(
                f"target_pct={self.target_pct} must be above start_below_pct={self.start_below_pct}, or every cycle "
                "would end as it starts"
            )
        if self.enabled and not self.probes:
            raise ValueError("irrigation is enabled but watches no probe: list probe names in 'probes'")
        return self


class SensorsSettings(Section):
    interval_s: float = Field(
        default=60.0,
        ge=1.0,
        le=86_400.0,
        title="Sampling interval (s)",
        description=(
            "How often soil moisture and air quality are recorded; air quality is the mean over the interval "
            "(the default gives per-minute averages)."
        ),
    )
    air: AirQualityIndexSettings = Field(default_factory=AirQualityIndexSettings, title="Air-quality index")
    soil: SoilSettings = Field(default_factory=SoilSettings, title="Soil probes")
    irrigation: IrrigationSettings = Field(default_factory=IrrigationSettings, title="Irrigation")

    @model_validator(mode="after")
    def _irrigation_probes_exist(self) -> SensorsSettings:
        known = {p.name for p in self.soil.probes}
        unknown = [name for name in self.irrigation.probes if name not in known]
        if unknown:
            raise ValueError(
                f"irrigation.probes names {', '.join(unknown)}, not in [[sensors.soil.probes]] "
                f"({', '.join(sorted(known)) or 'none defined'})"
            )
        return self
