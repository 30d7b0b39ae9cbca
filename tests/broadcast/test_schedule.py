"""Occurrences in local time and the decision taken for each due one, without any clock: the rules the service's
scheduler applies, including the ones that keep a programme from playing twice when the wall clock jumps."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.broadcast.model import Programme, Schedule, parse_programme, parse_schedule
from hub.broadcast.schedule import Window, decide, in_window, next_occurrence, occurrences, overlaps, quiet

VN = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
WINDOW = Window(preroll_s=5.0, grace_s=60.0, late_window_s=1800.0, lookback_s=7 * 86400.0)


def at(day: int, hour: int, minute: int = 0, second: int = 0, tz: dt.tzinfo = VN) -> dt.datetime:
    return dt.datetime(2025, 9, day, hour, minute, second, tzinfo=tz)


def schedule(**data: Any) -> Schedule:
    return parse_schedule({"id": "s", "programme_id": "p", **data})


def programme(**data: Any) -> Programme:
    return parse_programme(
        {"id": "p", "name": "P", "zones": ["khu 1"], "items": [{"kind": "text", "text": "một hai ba"}], **data}
    )


DAILY = schedule(kind="daily", times=["05:00", "17:00"])


def test_daily_times_are_local_times() -> None:
    found = occurrences(DAILY, at(1, 0), at(3, 0), VN)
    assert found == [at(1, 5), at(1, 17), at(2, 5), at(2, 17)]
    # 05:00 in Hà Nội is 22:00 UTC the day before
    assert found[0].astimezone(dt.UTC) == dt.datetime(2025, 8, 31, 22, tzinfo=dt.UTC)
    # the window is (after, until]: an occurrence at `after` is not included, one at `until` is
    assert occurrences(DAILY, at(1, 5), at(1, 17), VN) == [at(1, 17)]


def test_weekly_dates_and_once() -> None:
    weekly = schedule(kind="weekly", times=["06:30"], days=["t2", "t6"])  # Monday and Friday
    found = occurrences(weekly, at(1, 0), at(8, 23), VN)  # 1 Sept 2025 is a Monday
    assert found == [at(1, 6, 30), at(5, 6, 30), at(8, 6, 30)]
    dates = schedule(kind="dates", times=["19:00"], start_date="2025-09-02", end_date="2025-09-04")
    assert occurrences(dates, at(1, 0), at(30, 0), VN) == [at(2, 19), at(3, 19), at(4, 19)]
    once = schedule(kind="once", at="2025-09-02T07:30")
    assert occurrences(once, at(1, 0), at(30, 0), VN) == [at(2, 7, 30)]
    assert occurrences(once, at(2, 7, 30), at(30, 0), VN) == []


def test_next_occurrence() -> None:
    assert next_occurrence(DAILY, at(1, 5), VN) == at(1, 17)
    assert next_occurrence(DAILY, at(1, 18), VN) == at(2, 5)
    later = schedule(kind="dates", times=["08:00"], start_date="2026-02-10", end_date="2026-02-12")
    assert next_occurrence(later, at(1, 0), VN) == dt.datetime(2026, 2, 10, 8, tzinfo=VN)
    assert next_occurrence(later, dt.datetime(2026, 2, 12, 9, tzinfo=VN), VN) is None
    assert next_occurrence(schedule(kind="once", at="2025-09-02T07:30"), at(3, 0), VN) is None


def test_a_repeated_local_time_plays_once_and_a_skipped_one_moves_forward() -> None:
    # Not Vietnam's problem (no DST), but the code must not play twice where there is one.
    fall = schedule(kind="daily", times=["02:30"])
    found = occurrences(
        fall, dt.datetime(2025, 10, 26, 0, tzinfo=PARIS), dt.datetime(2025, 10, 26, 5, tzinfo=PARIS), PARIS
    )
    assert len(found) == 1
    spring = occurrences(
        fall, dt.datetime(2025, 3, 30, 0, tzinfo=PARIS), dt.datetime(2025, 3, 30, 5, tzinfo=PARIS), PARIS
    )
    assert [t.astimezone(dt.UTC).hour for t in spring] == [1]  # 02:30 does not exist: 03:30 CEST, 01:30 UTC


def test_decide_on_time_ahead_and_within_grace() -> None:
    found, skipped = decide(DAILY, programme(), at(1, 4, 59, 50), at(1, 4, 59, 56), WINDOW, VN)
    assert skipped == 0
    assert [(o.planned, o.action) for o in found] == [(at(1, 5), "play")]
    assert found[0].lateness_s == -4.0  # within the preparation time: decided now, starts at 05:00
    found, _ = decide(DAILY, programme(), at(1, 4, 59), at(1, 5, 0, 45), WINDOW, VN)
    assert [o.action for o in found] == ["play"]  # 45 s late: still on time
    found, _ = decide(DAILY, programme(), at(1, 4, 59), at(1, 5, 2), WINDOW, VN)
    assert [o.action for o in found] == ["missed"]


def test_decide_late_only_for_the_newest_missed_within_the_window() -> None:
    late = programme(play_late=True)
    found, _ = decide(DAILY, late, at(1, 4), at(1, 5, 20), WINDOW, VN)
    assert [(o.planned, o.action) for o in found] == [(at(1, 5), "late")]
    found, _ = decide(DAILY, late, at(1, 4), at(1, 6), WINDOW, VN)  # an hour late, window 30 min
    assert [o.action for o in found] == ["missed"]
    found, _ = decide(DAILY, programme(play_late=True, late_window_s=7200), at(1, 4), at(2, 6), WINDOW, VN)
    # off for a day: 05:00 and 17:00 yesterday missed, today's 05:00 one hour ago is played late
    assert [(o.planned, o.action) for o in found] == [(at(1, 5), "missed"), (at(1, 17), "missed"), (at(2, 5), "late")]


def test_a_watermark_ahead_of_the_clock_gives_nothing() -> None:
    # The 05:00 programme played, then NTP moved the clock back an hour: 05:00 must not come again.
    found, _ = decide(DAILY, programme(), at(1, 5, 0, 5), at(1, 4, 10), WINDOW, VN)
    assert found == []
    found, _ = decide(DAILY, programme(), at(1, 5, 0, 5), at(1, 5, 0, 30), WINDOW, VN)
    assert found == []


def test_a_box_that_booted_years_ago_counts_its_misses_but_logs_only_a_week() -> None:
    found, skipped = decide(DAILY, programme(), dt.datetime(2020, 1, 1, tzinfo=VN), at(10, 12), WINDOW, VN)
    assert len(found) == 14  # 7 days, twice a day
    assert all(o.action == "missed" for o in found)
    assert skipped > 3000


def test_disabled_schedule_decides_nothing() -> None:
    off = schedule(kind="daily", times=["05:00"], enabled=False)
    assert decide(off, programme(), at(1, 0), at(2, 0), WINDOW, VN) == ([], 0)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=-3 * 3600, max_value=5 * 3600), st.booleans()), min_size=1, max_size=40
    )
)
def test_whatever_the_clock_does_no_occurrence_is_decided_twice(steps: list[tuple[int, bool]]) -> None:
    """Clock steps forwards and backwards, and restarts (which forget the in-memory watermark and keep only the
    stored newest decided occurrence): every occurrence is decided at most once."""
    since = at(1, 0)
    now = since
    stored_last: dt.datetime | None = None
    watermark = since
    decided: list[dt.datetime] = []
    for step, restart in steps:
        now += dt.timedelta(seconds=step)
        if restart:
            watermark = max(since, stored_last) if stored_last else since
        found, _ = decide(DAILY, programme(play_late=True), watermark, now, WINDOW, VN)
        for occurrence in found:
            decided.append(occurrence.planned)
            stored_last = max(stored_last or occurrence.planned, occurrence.planned)
        watermark = max(watermark, now + dt.timedelta(seconds=WINDOW.preroll_s))
    assert len(decided) == len(set(decided))


def test_quiet_hours_windows() -> None:
    night = (dt.time(22), dt.time(4, 30))
    assert in_window(*night, dt.time(23, 59))
    assert in_window(*night, dt.time(0, 10))
    assert not in_window(*night, dt.time(4, 30))
    assert not in_window(*night, dt.time(12))
    noon = (dt.time(11, 30), dt.time(13, 30))
    assert quiet([night, noon], at(1, 12)) == noon
    assert quiet([night, noon], at(1, 17)) is None


def test_overlaps_are_reported_whatever_the_zones() -> None:
    p1 = programme(items=[{"kind": "stream", "url": "http://r/1", "duration_s": 300}])
    p2 = parse_programme({"id": "p2", "name": "P2", "zones": ["khu 2"], "items": [{"kind": "chime"}]})
    s1 = parse_schedule({"id": "sang", "programme_id": "p", "kind": "daily", "times": ["05:00"]})
    s2 = parse_schedule({"id": "thong-bao", "programme_id": "p2", "kind": "daily", "times": ["05:03"]})
    s3 = parse_schedule({"id": "chieu", "programme_id": "p2", "kind": "daily", "times": ["17:00"]})
    found = overlaps([s1, s2, s3], {"p": p1, "p2": p2}, at(1, 0), VN, days=3)
    assert [(o.first, o.second) for o in found] == [("sang", "thong-bao")]
    assert found[0].shared_zones == ()
    assert (
        "schedule 'thong-bao' starts at 2025-09-01 05:03 while schedule 'sang' is still playing" in found[0].describe()
    )
    assert overlaps([s1, s3], {"p": p1, "p2": p2}, at(1, 0), VN) == []
    assert overlaps([s1, s2, s3], {"p": p1, "p2": p2}, at(1, 0), VN, only="chieu") == []
