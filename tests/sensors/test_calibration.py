"""Soil probe calibration: raw counts to percent and back, clamping, and readings that cannot be soil."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.sensors.calibration import Calibration, SoilCalibrator, SoilFault
from hub.sensors.settings import IrrigationSettings, SensorsSettings, SoilProbeSettings, SoilSettings

CAPACITIVE = Calibration(dry_raw=42000, wet_raw=18000)  # reads lower when wet, like most capacitive probes
RESISTIVE = Calibration(dry_raw=9000, wet_raw=51000)  # reads higher when wet


@pytest.mark.parametrize("calibration", [CAPACITIVE, RESISTIVE])
def test_percent_round_trips_through_raw(calibration: Calibration) -> None:
    one_count = 100.0 / calibration.span  # the resolution: one ADC count in percent
    for tenth in range(0, 1001):
        percent = tenth / 10
        raw = calibration.raw_for(percent)
        assert calibration.fault(raw) is None
        assert calibration.percent(raw) == pytest.approx(percent, abs=one_count / 2 + 1e-9)
    for raw in range(min(calibration.dry_raw, calibration.wet_raw), max(calibration.dry_raw, calibration.wet_raw)):
        assert calibration.raw_for(calibration.percent(raw)) == raw


def test_ends_and_midpoint() -> None:
    assert CAPACITIVE.percent(42000) == 0.0
    assert CAPACITIVE.percent(18000) == 100.0
    assert CAPACITIVE.percent(30000) == pytest.approx(50.0)
    assert RESISTIVE.percent(30000) == pytest.approx(50.0)


def test_a_little_beyond_either_end_is_clamped_not_a_fault() -> None:
    # tolerance 10 % of a 24000-count span = 2400 counts
    assert CAPACITIVE.percent(44000) == 0.0
    assert CAPACITIVE.fault(44000) is None
    assert CAPACITIVE.percent(16000) == 100.0
    assert CAPACITIVE.fault(16000) is None


@pytest.mark.parametrize(
    ("raw", "fault"),
    [
        (0, SoilFault.RAIL_LOW),
        (200, SoilFault.RAIL_LOW),
        (65535, SoilFault.RAIL_HIGH),
        (65400, SoilFault.RAIL_HIGH),
        (44500, SoilFault.BEYOND_DRY),  # 2500 counts drier than dry: out of the ground
        (15500, SoilFault.BEYOND_WET),
    ],
)
def test_out_of_physical_range_is_a_fault(raw: int, fault: SoilFault) -> None:
    assert CAPACITIVE.fault(raw) is fault


def test_reversed_probe_faults_on_its_own_sides() -> None:
    assert RESISTIVE.fault(9000 - 4300) is SoilFault.BEYOND_DRY  # 10 % of 42000 = 4200
    assert RESISTIVE.fault(51000 + 4300) is SoilFault.BEYOND_WET
    assert RESISTIVE.fault(9000 - 4100) is None


def test_calibrator_reads_each_configured_probe_from_its_channel() -> None:
    soil = SoilSettings(
        probes=[
            SoilProbeSettings(name="vuon-rau", channel=0, dry_raw=42000, wet_raw=18000),
            SoilProbeSettings(name="cay-an-qua", channel=2, dry_raw=40000, wet_raw=20000),
            SoilProbeSettings(name="chau-hoa", channel=5, dry_raw=40000, wet_raw=20000),
        ]
    )
    readings = SoilCalibrator(soil).read([30000, 12345, 65535, 21000])
    assert [(r.name, r.raw, r.percent, r.fault) for r in readings] == [
        ("vuon-rau", 30000, pytest.approx(50.0), None),
        ("cay-an-qua", 65535, None, SoilFault.RAIL_HIGH),
        ("chau-hoa", None, None, SoilFault.MISSING),  # the node has four channels
    ]
    assert readings[1].as_dict() == {"name": "cay-an-qua", "raw": 65535, "percent": None, "fault": "rail_high"}


def test_settings_refuse_what_cannot_work() -> None:
    probe = SoilProbeSettings(name="vuon-rau", channel=0, dry_raw=42000, wet_raw=18000)
    with pytest.raises(ValidationError, match="less than 1000 counts apart"):
        SoilProbeSettings(name="x", channel=1, dry_raw=30000, wet_raw=29500)
    with pytest.raises(ValidationError, match="same channel"):
        SoilSettings(probes=[probe, probe.model_copy(update={"name": "other"})])
    with pytest.raises(ValidationError, match="not in"):
        SensorsSettings(
            soil=SoilSettings(probes=[probe]), irrigation=IrrigationSettings(enabled=True, probes=["ruong"])
        )
    with pytest.raises(ValidationError, match="must be above"):
        IrrigationSettings(start_below_pct=50, target_pct=40)
    with pytest.raises(ValidationError, match="HH:MM-HH:MM"):
        IrrigationSettings(allowed_hours=["5h-8h"])
    with pytest.raises(ValidationError, match="watches no probe"):
        IrrigationSettings(enabled=True)
    # TOML-shaped input validates as the config loader would feed it
    SensorsSettings.model_validate(
        {
            "interval_s": 60.0,
            "soil": {"probes": [{"name": "vuon-rau", "channel": 0, "dry_raw": 42000, "wet_raw": 18000}]},
            "irrigation": {"enabled": True, "probes": ["vuon-rau"], "allowed_hours": ["22:00-02:00"]},
        }
    )
