"""VN_AQI for particulate matter and its alerts.

Expected values are worked by hand from QĐ 1459/QĐ-TCMT (Tổng cục Môi trường, 12 Nov 2019), "Hướng dẫn kỹ thuật
tính toán và công bố chỉ số chất lượng không khí Việt Nam (VN_AQI)":
- Bảng 1 (categories and colours), as published by the Centre for Environmental Monitoring, cem.gov.vn, 13 Nov 2019;
- Bảng 2 breakpoints: I = 0 50 100 150 200 300 400 500;
  PM2.5 = 0 25 50 80 150 250 350 500 µg/m³; PM10 = 0 50 150 250 350 420 500 600 µg/m³;
- Công thức 1: AQI_x = (I_{i+1} - I_i) / (BP_{i+1} - BP_i) × (C_x - BP_i) + I_i;
- Mục 2.2.1: NowCast over 12 hourly means c_1 (latest) … c_12, w* = c_min / c_max, w = max(w*, 1/2).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from drivers.airquality import AirQualityReading
from hub.bus import EventBus
from hub.sensors.alerts import AqiAlarm, LevelAlarm, alert_class
from hub.sensors.aqi import (
    CATEGORY_BY_KEY,
    AirQualityTracker,
    category_of,
    combine,
    daily_aqi,
    hourly_aqi,
    nowcast,
    sub_index,
)
from hub.sensors.irrigation import ManualClock
from hub.sensors.service import AQI_STATE_KEY, SensorsService
from hub.sensors.settings import AirQualityIndexSettings, SensorsSettings
from hub.store import RecordClass, Store


def test_breakpoints_of_table_2_give_the_level_indices() -> None:
    for c, expected in [(0, 0), (25, 50), (50, 100), (80, 150), (150, 200), (250, 300), (350, 400), (500, 500)]:
        assert sub_index("pm2_5", c) == pytest.approx(expected)
    for c, expected in [(50, 50), (150, 100), (250, 150), (350, 200), (420, 300), (500, 400), (600, 500)]:
        assert sub_index("pm10", c) == pytest.approx(expected)
    assert sub_index("pm2_5", 900) == 500  # beyond the table: the end of the scale
    assert sub_index("pm2_5", None) is None


@pytest.mark.parametrize(
    ("pm2_5", "aqi", "category", "colour"),
    [
        (10.0, 20, "Tốt", "#00e400"),  # 50/25 × 10
        (35.0, 70, "Trung bình", "#ffff00"),  # 50 + 50/25 × (35 - 25)
        (60.0, 117, "Kém", "#ff7e00"),  # 100 + 50/30 × (60 - 50) = 116.67
        (100.0, 164, "Xấu", "#ff0000"),  # 150 + 50/70 × (100 - 80) = 164.29
        (200.0, 250, "Rất xấu", "#8f3f97"),  # 200 + 100/100 × (200 - 150)
        (400.0, 433, "Nguy hại", "#7e0023"),  # 400 + 100/150 × (400 - 350) = 433.33
    ],
)
def test_steady_pm2_5_gives_the_expected_hourly_index(pm2_5: float, aqi: int, category: str, colour: str) -> None:
    result = hourly_aqi({"pm2_5": [pm2_5] * 12})  # steady air: the NowCast is the concentration itself
    assert result is not None
    assert (result.aqi, result.category.name, result.category.hex, result.pollutant) == (aqi, category, colour, "pm2_5")


def test_nowcast_weighs_a_rising_series_towards_the_last_hours() -> None:
    # w* = 20/100 <= 1/2, so w = 1/2: NowCast = Σ 0.5^(i-1) c_i / Σ 0.5^(i-1) = 154.990 / 1.99951 = 77.514
    hours = [100.0, 80.0, 40.0] + [20.0] * 9
    value = nowcast(hours)
    assert value == pytest.approx(77.514, abs=1e-3)
    # the document's literal w = 1/2 form, Σ 0.5^i c_i, is within 0.03 % of it
    assert value == pytest.approx(sum(0.5 ** (i + 1) * c for i, c in enumerate(hours)), rel=3e-4)
    result = hourly_aqi({"pm2_5": hours})
    assert result is not None
    assert (result.aqi, result.category.key) == (146, "kem")  # 100 + 50/30 × 27.514 = 145.86
    # a 24-hour mean of the same day would say "Trung bình": the NowCast is what makes the hour's index respond
    assert sum(hours) / 12 < 50


def test_nowcast_with_a_steady_series_keeps_its_own_weight() -> None:
    # w* = 30/40 = 0.75: NowCast = (40 + 30 Σ_{i=1..11} 0.75^i) / Σ_{i=0..11} 0.75^i = 126.199 / 3.8733 = 32.582
    assert nowcast([40.0] + [30.0] * 11) == pytest.approx(32.582, abs=1e-3)
    result = hourly_aqi({"pm2_5": [40.0] + [30.0] * 11})
    assert result is not None
    assert result.aqi == 65


def test_nowcast_needs_two_of_the_last_three_hours() -> None:
    assert nowcast([None, None, 30.0, 30.0]) is None
    assert nowcast([None, 30.0, 30.0]) == pytest.approx(30.0)
    assert nowcast([]) is None
    assert hourly_aqi({"pm2_5": [None, None, 50.0]}) is None


def test_the_larger_sub_index_wins_and_is_named() -> None:
    result = combine({"pm2_5": 30.0, "pm10": 300.0})  # 60 against 150 + 50/100 × 50 = 175
    assert result is not None
    assert (result.aqi, result.pollutant, result.category.key) == (175, "pm10", "xau")
    assert result.sub_indices == {"pm2_5": 60, "pm10": 175}


def test_daily_index_is_the_24_hour_mean() -> None:
    hours = [40.0, 80.0] * 12  # mean 60 -> 117
    result = daily_aqi({"pm2_5": hours})
    assert result is not None
    assert (result.aqi, result.category.name) == (117, "Kém")
    assert daily_aqi({"pm2_5": [60.0] * 17 + [None] * 7}) is None  # too few valid hours
    assert daily_aqi({"pm2_5": [60.0] * 17 + [None] * 7}, min_hours=12) is not None


def test_categories_of_table_1() -> None:
    assert [category_of(a).name for a in (0, 50, 51, 100, 101, 150, 151, 200, 201, 300, 301, 500)] == [
        "Tốt",
        "Tốt",
        "Trung bình",
        "Trung bình",
        "Kém",
        "Kém",
        "Xấu",
        "Xấu",
        "Rất xấu",
        "Rất xấu",
        "Nguy hại",
        "Nguy hại",
    ]


def test_tracker_averages_hours_and_gives_the_index_once_two_hours_are_in() -> None:
    tracker = AirQualityTracker(0.0)
    summaries = []
    for second in range(3 * 3600):  # one reading a second for three hours
        summaries += tracker.add(float(second), 60.0, 40.0)
    summaries += tracker.tick(3 * 3600.0)
    assert [s.hour for s in summaries] == [0, 1, 2]
    assert summaries[0].pm2_5 == pytest.approx(60.0)
    assert summaries[0].coverage == 1.0
    assert summaries[0].hourly is None  # one hour: the NowCast needs two of the last three
    assert summaries[1].hourly is not None
    assert summaries[1].hourly.aqi == 117
    assert summaries[2].daily is None  # 3 of the 18 hours needed


def test_tracker_counts_a_short_hour_as_a_gap() -> None:
    tracker = AirQualityTracker(0.0, min_coverage=0.75)
    for second in range(0, 30 * 60, 5):  # the sensor works for the first half hour only
        tracker.add(float(second), 60.0, 40.0)
    (summary,) = tracker.tick(3600.0)
    assert summary.coverage == pytest.approx(0.5)
    assert summary.pm2_5 is None
    assert tracker.tick(3 * 3600.0)[-1].hour == 2  # hours without any reading end too


def test_alarm_fires_once_up_and_clears_once_down_past_the_band() -> None:
    alarm = LevelAlarm([101.0], band=10.0)
    values = [90, 99, 101, 120, 100, 95, 92, 91, 105, 95, 90, 99, 100, 85]
    transitions = [(v, alarm.update(v)) for v in values]
    changes = [(v, t.rising) for v, t in transitions if t is not None]
    # up at 101; 100 ... 91 stay inside the band; down at 90 (< 91); 99 and 100 are below 101: no new alert
    assert changes == [(101, True), (90, False)]
    assert alarm.update(None) is None
    assert alarm.level == 0


def test_alarm_hovering_at_the_boundary_does_not_flap() -> None:
    alarm = LevelAlarm([101.0], band=10.0)
    fired = [alarm.update(v) for v in [102, 99, 103, 98, 101, 97, 104]]
    assert sum(t is not None for t in fired) == 1


def test_aqi_alarm_escalates_and_classes_by_severity() -> None:
    alarm = AqiAlarm("kem", hysteresis_aqi=10)
    steps = [combine({"pm2_5": c}) for c in (30.0, 60.0, 400.0, 120.0, 10.0)]  # 60, 117, 433, 179, 20
    alerts = [alarm.update(r) for r in steps]
    assert alerts[0] is None
    raised, hazardous, lowered, cleared = alerts[1:]
    assert raised is not None
    assert (raised.state, raised.category, raised.record_class) == (
        "raised",
        CATEGORY_BY_KEY["kem"],
        RecordClass.OPERATIONS,
    )
    assert hazardous is not None
    assert hazardous.state == "raised"
    assert hazardous.category is CATEGORY_BY_KEY["nguy_hai"]
    assert hazardous.record_class is RecordClass.SAFETY
    # down to Xấu: the record ends the Nguy hại alert, so it is filed as safety too
    assert lowered is not None
    assert lowered.state == "lowered"
    assert lowered.category is CATEGORY_BY_KEY["xau"]
    assert lowered.record_class is RecordClass.SAFETY
    assert cleared is not None
    assert cleared.state == "cleared"
    assert cleared.category is None
    assert cleared.record_class is RecordClass.SECURITY  # it ends a Xấu alert
    assert alert_class(CATEGORY_BY_KEY["rat_xau"]) is RecordClass.SECURITY


def _reading(pm2_5: int, pm10: int, at: float) -> AirQualityReading:
    return AirQualityReading(pm2_5, pm2_5, pm10, pm2_5, pm2_5, pm10, 0, 0, 0, 0, 0, 0, at, "node")


async def test_service_records_hourly_index_and_one_alert_each_way(tmp_path: Path) -> None:
    clock = ManualClock(start=0.0)
    store = Store.open(tmp_path)
    settings = SensorsSettings(air=AirQualityIndexSettings(alert_from="kem", hysteresis_aqi=10.0))
    service = SensorsService(None, None, store, EventBus(), 60.0, settings=settings, clock=clock)
    try:
        for pm2_5 in [60] * 3 + [5] * 3:  # three polluted hours, three clean ones; one reading a minute
            for _ in range(60):
                await service.ingest_air(_reading(pm2_5, 30, clock.mono))
                clock.advance(60.0)
        await service.ingest_air(_reading(5, 30, clock.mono))  # ends the sixth hour
        records = [(r.cls, r.kind, json.loads(r.payload_json)) for r in store.pending(1000)]
        hourly = [p["hourly"] for _, kind, p in records if kind == "sensors.aqi"]
        # hour 4: c = 5, 60, 60, 60 -> w = 1/2, NowCast = 57.5 / 1.875 = 30.67 -> 61; hour 5: 33.75 / 1.9375 = 17.4
        # -> 35; hour 6: 21.875 / 1.96875 = 11.1 -> 22, below PM10's steady 30 µg/m³ -> 30 (PM10 named)
        assert [None if h is None else h["aqi"] for h in hourly] == [None, 117, 117, 61, 35, 30]
        assert hourly[-1]["pollutant"] == "pm10"
        assert all(p["standard"].startswith("VN_AQI") for _, kind, p in records if kind == "sensors.aqi")
        alerts = [(cls, p["state"], p["category"]) for cls, kind, p in records if kind == "sensors.aqi.alert"]
        assert alerts == [(RecordClass.OPERATIONS, "raised", "kem"), (RecordClass.OPERATIONS, "cleared", None)]
        assert store.get_state(AQI_STATE_KEY)["hourly"]["aqi"] == 30
        assert service.health()["aqi"]["hourly"]["category"] == "tot"
        assert service.health()["aqi_alert"] is None
    finally:
        store.close()


class RunningClock(ManualClock):
    """A manual clock whose wall time moves with its monotonic time (a restart after hours off must see them)."""

    def now(self) -> datetime.datetime:
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=self.mono)


async def test_restart_keeps_the_hourly_history_and_the_active_alert(tmp_path: Path) -> None:
    clock = RunningClock(start=0.0)
    store = Store.open(tmp_path)
    settings = SensorsSettings(air=AirQualityIndexSettings(alert_from="kem", hysteresis_aqi=10.0))
    try:
        before = SensorsService(None, None, store, EventBus(), 60.0, settings=settings, clock=clock)
        for _ in range(3 * 60):  # three polluted hours
            await before.ingest_air(_reading(60, 30, clock.mono))
            clock.advance(60.0)
        await before.ingest_air(_reading(60, 30, clock.mono))
        assert before.health()["aqi_alert"] == "kem"
        clock.advance(2 * 3600 + 120)  # the power is off for two hours
        after = SensorsService(None, None, store, EventBus(), 60.0, settings=settings, clock=clock)
        after.restore_air_quality()
        assert after.health()["aqi_alert"] == "kem"
        assert list(after.tracker.hours["pm2_5"])[:5] == [None, None, 60.0, 60.0, 60.0]
        for _ in range(4 * 60):  # clean air after the restart
            await after.ingest_air(_reading(5, 5, clock.mono))
            clock.advance(60.0)
        await after.ingest_air(_reading(5, 5, clock.mono))
        records = [(r.kind, json.loads(r.payload_json)) for r in store.pending(10_000)]
        alerts = [(p["state"], p["category"]) for kind, p in records if kind == "sensors.aqi.alert"]
        assert alerts == [("raised", "kem"), ("cleared", None)]  # not raised a second time after the restart
        hourly = [p["hourly"] for kind, p in records if kind == "sensors.aqi"]
        # Second clean hour: the NowCast weighs in the polluted hours from before the power cut, with the two hours
        # off as gaps: c = 5, 5, -, -, 60, 60, 60; w = 1/2 -> 14.06 / 1.609 = 8.7 µg/m³ (5.0 without the history).
        assert hourly[3] is None  # one valid hour of the last three: no NowCast yet
        assert hourly[4]["concentrations"]["pm2_5"] == 8.7
    finally:
        store.close()
