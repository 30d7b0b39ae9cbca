"""The queue's rules without any clock or audio: order, who cuts in, quiet hours, the duplicate window."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from hub.broadcast.arbiter import Arbiter, Job
from hub.broadcast.model import ChimeItem, Level

VN = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
NOON = dt.datetime(2025, 9, 1, 12, tzinfo=VN)
NIGHT = dt.datetime(2025, 9, 1, 23, tzinfo=VN)


def job(level: Level, title: str = "", key: str | None = None) -> Job:
    return Job(level, (ChimeItem(kind="chime"),), ("khu 1",), 80, "play_now", title or level.label, dedupe_key=key)


def test_order_is_level_then_arrival() -> None:
    arbiter = Arbiter()
    for j in (job(Level.NORMAL, "n1"), job(Level.BACKGROUND, "b"), job(Level.PRIORITY, "p"), job(Level.NORMAL, "n2")):
        assert arbiter.admit(j, NOON, 0.0).outcome == "queued"
    arbiter.admit(job(Level.EMERGENCY, "e"), NOON, 0.0)
    arbiter.admit(job(Level.LIVE, "l"), NOON, 0.0)
    assert [j.title for j in arbiter.ordered()] == ["e", "l", "p", "n1", "n2", "b"]
    assert [arbiter.pop().title for _ in range(6)] == ["e", "l", "p", "n1", "n2", "b"]  # type: ignore[union-attr]
    assert arbiter.pop() is None


def test_a_job_put_back_keeps_its_place() -> None:
    arbiter = Arbiter()
    first, second = job(Level.NORMAL, "first"), job(Level.NORMAL, "second")
    arbiter.admit(first, NOON, 0)
    arbiter.admit(second, NOON, 0)
    assert arbiter.pop() is first
    arbiter.requeue(first)  # cut by an emergency, resumes
    assert arbiter.pop() is first


def test_only_an_emergency_cuts_in_unless_configured() -> None:
    arbiter = Arbiter()
    arbiter.current = job(Level.NORMAL)
    assert arbiter.admit(job(Level.EMERGENCY), NOON, 0).cut_current
    assert not arbiter.admit(job(Level.LIVE), NOON, 0).cut_current
    assert not arbiter.admit(job(Level.PRIORITY), NOON, 0).cut_current
    arbiter.current = job(Level.EMERGENCY)
    assert not arbiter.admit(job(Level.EMERGENCY, "second alert"), NOON, 0).cut_current  # waits its turn
    live = Arbiter(live_cuts_in=True)
    live.current = job(Level.PRIORITY)
    assert live.admit(job(Level.LIVE), NOON, 0).cut_current


def test_background_yields_at_once_to_anything_higher() -> None:
    arbiter = Arbiter()
    arbiter.current = job(Level.BACKGROUND)
    assert arbiter.admit(job(Level.NORMAL), NOON, 0).cut_current
    assert not Arbiter(background_yields_at_once=False).cuts_in(job(Level.NORMAL), job(Level.BACKGROUND))


def test_a_higher_level_steps_in_at_the_item_boundary() -> None:
    arbiter = Arbiter()
    current = job(Level.NORMAL)
    arbiter.current = current
    assert arbiter.steps_in(current, 0) is None
    arbiter.admit(job(Level.NORMAL, "same level"), NOON, 0)
    assert arbiter.steps_in(current, 0) is None  # same level: after the whole programme
    later = job(Level.PRIORITY, "bulletin at 10")
    later.start_mono = 10.0
    arbiter.admit(later, NOON, 0)
    assert arbiter.steps_in(current, 5.0) is None  # not its time yet
    assert arbiter.steps_in(current, 10.0) is later


def test_quiet_hours_block_all_but_emergencies() -> None:
    arbiter = Arbiter(quiet_hours=[(dt.time(22), dt.time(4, 30))])
    verdict = arbiter.admit(job(Level.PRIORITY), NIGHT, 0)
    assert (verdict.outcome, verdict.reason) == ("blocked", "quiet hours 22:00-04:30")
    assert arbiter.admit(job(Level.EMERGENCY), NIGHT, 0).outcome == "queued"
    assert arbiter.admit(job(Level.PRIORITY), NOON, 0).outcome == "queued"


def test_the_same_alert_within_the_window_is_a_duplicate() -> None:
    arbiter = Arbiter(dedupe_window_s=180)
    assert arbiter.admit(job(Level.EMERGENCY, key="cap:a"), NOON, 100.0).outcome == "queued"
    again = arbiter.admit(job(Level.EMERGENCY, key="cap:a"), NOON, 250.0)
    assert again.outcome == "duplicate"
    assert "150 s ago" in again.reason
    assert arbiter.admit(job(Level.EMERGENCY, key="cap:b"), NOON, 250.0).outcome == "queued"
    assert arbiter.admit(job(Level.EMERGENCY, key="cap:a"), NOON, 281.0).outcome == "queued"  # window over
    restarted = Arbiter(dedupe_window_s=180)
    restarted.remember("cap:a", 0.0)  # it played just before a restart
    assert restarted.admit(job(Level.EMERGENCY, key="cap:a"), NOON, 10.0).outcome == "duplicate"
    assert restarted.admit(job(Level.EMERGENCY), NOON, 10.0).outcome == "queued"  # no key: never a duplicate
