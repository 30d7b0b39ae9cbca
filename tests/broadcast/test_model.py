"""Programmes, schedules and the [broadcast] section: what is accepted, and errors that name what is wrong."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from hub.broadcast.model import Level, ModelError, check_zones, parse_programme, parse_schedule
from hub.broadcast.settings import BroadcastSettings

ZONES = {"khu 1": "loa khu 1", "khu 2": "loa khu 2"}


def programme(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "ban-tin-sang",
        "name": "Bản tin buổi sáng",
        "zones": ["khu 1", "khu 2"],
        "items": [
            {"kind": "chime"},
            {"kind": "text", "text": "Kính thưa bà con, sáng nay có mưa rào."},
            {"kind": "audio", "media_id": "m-123"},
            {"kind": "stream", "url": "http://radio.example/vov1", "duration_s": 600},
        ],
    }
    data.update(changes)
    return data


def test_a_full_programme_is_accepted_with_defaults() -> None:
    p = parse_programme(programme())
    assert [item.kind for item in p.items] == ["chime", "text", "audio", "stream"]
    assert p.level == "normal"
    assert p.level_value is Level.NORMAL
    assert p.on_interrupt == "resume"
    assert p.volume is None
    assert p.play_late is False
    # 9 words of text at 3 a second, a 3 s chime, 600 s of stream, audio of unknown length
    assert p.estimate_s() == pytest.approx(3 + 9 / 3 + 600)
    assert p.estimate_s({"m-123": 30.0}) == pytest.approx(636)
    assert parse_programme(p.as_json()) == p  # what the store keeps reads back the same


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"items": []}, "programme.items: List should have at least 1 item"),
        ({"items": [{"kind": "video", "url": "x"}]}, "programme.items.0"),
        ({"items": [{"kind": "text", "text": "   "}]}, "programme.items.0.text: the text to read aloud is empty"),
        (
            {"items": [{"kind": "stream", "url": "ftp://x/y", "duration_s": 10}]},
            "stream url 'ftp://x/y' must start with http://",
        ),
        ({"items": [{"kind": "stream", "url": "http://x/y", "duration_s": 0}]}, "programme.items.0.duration_s"),
        ({"zones": ["khu 1", "khu 1"]}, "zone 'khu 1' is listed twice"),
        ({"volume": 101}, "programme.volume"),
        ({"level": "live"}, "programme.level"),
        ({"id": "bản tin"}, "id 'bản tin' must be 1-64 letters"),
        ({"colour": "red"}, "programme.colour: Extra inputs are not permitted"),
    ],
)
def test_bad_programmes_are_refused_naming_the_field(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_programme(programme(**changes))
    assert expected in str(caught.value)


def test_unknown_zones_are_refused_by_name() -> None:
    p = parse_programme(programme(zones=["khu 1", "khu 9"]))
    with pytest.raises(ModelError) as caught:
        check_zones(p, ZONES)
    assert str(caught.value) == ("programme 'ban-tin-sang': unknown zone 'khu 9'; configured zones: 'khu 1', 'khu 2'")
    with pytest.raises(ModelError, match="configured zones: none"):
        check_zones(p, {})


def test_levels_parse_in_english_and_vietnamese() -> None:
    assert Level.parse("emergency") is Level.EMERGENCY
    assert Level.parse("Khẩn cấp") is Level.EMERGENCY
    assert Level.parse("ưu tiên") is Level.PRIORITY
    assert Level.parse("thông thường") is Level.NORMAL
    assert Level.EMERGENCY > Level.LIVE > Level.PRIORITY > Level.NORMAL > Level.BACKGROUND
    with pytest.raises(ValueError, match="expected one of emergency, live, priority, normal, background"):
        Level.parse("urgent")


def test_schedule_kinds() -> None:
    daily = parse_schedule({"id": "s1", "programme_id": "p", "kind": "daily", "times": ["17:00", "5:00"]})
    assert daily.times == [dt.time(5), dt.time(17)]  # sorted; '5:00' is fine
    weekly = parse_schedule(
        {"id": "s2", "programme_id": "p", "kind": "weekly", "times": ["06:30"], "days": ["T2", "cn"]}
    )
    assert weekly.weekdays == {0, 6}
    dates = parse_schedule(
        {
            "id": "s3",
            "programme_id": "p",
            "kind": "dates",
            "times": ["19:00"],
            "start_date": "2025-09-01",
            "end_date": "2025-09-05",
        }
    )
    assert dates.describe() == "every day from 2025-09-01 to 2025-09-05 at 19:00"
    once = parse_schedule({"id": "s4", "programme_id": "p", "kind": "once", "at": "2025-09-02T07:30"})
    assert once.at == dt.datetime(2025, 9, 2, 7, 30)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "daily"}, "schedule.times: a daily schedule needs 'times'"),
        ({"kind": "daily", "times": ["25:00"]}, "time '25:00' is out of range"),
        ({"kind": "daily", "times": ["5h"]}, "time '5h' is not written as HH:MM"),
        ({"kind": "daily", "times": ["05:00", "05:00"]}, "a time is listed twice"),
        ({"kind": "daily", "times": ["05:00"], "days": ["mon"]}, "'days' does not apply to a daily schedule"),
        ({"kind": "weekly", "times": ["05:00"]}, "a weekly schedule needs 'days'"),
        ({"kind": "weekly", "times": ["05:00"], "days": ["t8"]}, "unknown day 't8'"),
        ({"kind": "dates", "times": ["05:00"], "start_date": "2025-01-02"}, "needs 'end_date'"),
        (
            {"kind": "dates", "times": ["05:00"], "start_date": "2025-01-02", "end_date": "2025-01-01"},
            "'end_date' is before 'start_date'",
        ),
        ({"kind": "once"}, "a once schedule needs 'at'"),
        ({"kind": "once", "at": "2025-01-01T05:00", "times": ["05:00"]}, "'times' does not apply to a once"),
        ({"kind": "monthly", "times": ["05:00"]}, "schedule.kind"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_schedule({"id": "s", "programme_id": "p", **data})
    assert expected in str(caught.value)


def test_settings_cross_checks() -> None:
    ok = BroadcastSettings.model_validate(
        {
            "amplifier_relay": "ampli",
            "zones": ZONES,
            "quiet_hours": [{"start": "22:00", "end": "04:30"}],
            "programmes": [programme()],
            "schedules": [{"id": "s", "programme_id": "ban-tin-sang", "kind": "daily", "times": ["05:00"]}],
        }
    )
    assert ok.quiet_windows() == [(dt.time(22), dt.time(4, 30))]
    assert ok.relay_names() == ["ampli", "loa khu 1", "loa khu 2"]
    with pytest.raises(ValidationError) as caught:
        BroadcastSettings.model_validate(
            {
                "amplifier_relay": "ampli",
                "zones": {"khu 1": "ampli", "khu 2": "loa", "khu 3": "loa"},
                "programmes": [programme(zones=["khu 1", "khu 9"])],
                "schedules": [{"id": "s", "programme_id": "nope", "kind": "daily", "times": ["05:00"]}],
                "emergency_zones": ["khu 7"],
            }
        )
    text = str(caught.value)
    assert "relay 'ampli' is the amplifier relay" in text
    assert "relay 'loa' is already zone 'khu 2'" in text
    assert "unknown zone 'khu 9'" in text
    assert "no programme 'nope' among [[broadcast.programmes]]" in text
    assert "unknown zone 'khu 7'" in text
    with pytest.raises(ValidationError, match="are the same time"):
        BroadcastSettings.model_validate({"quiet_hours": [{"start": "22:00", "end": "22:00"}]})
