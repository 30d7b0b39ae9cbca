"""The wall clock jumps (NTP sync on a box without RTC) and the box is off across a scheduled time: every
scheduled programme plays exactly once or is logged missed (or played late when it says so), never twice."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from tests.broadcast.rig import VN, Rig

START = dt.datetime(2025, 9, 1, 4, 59, 57, tzinfo=VN)  # three seconds before 05:00
HOUR = dt.timedelta(hours=1)


async def timetable(rig: Rig, **programme: Any) -> None:
    await rig.svc.upsert_programme(
        {
            "id": "sang",
            "name": "Bản tin sáng",
            "zones": ["khu 1"],
            "items": [{"kind": "text", "text": "[0.5s] bản tin"}],
            **programme,
        }
    )
    await rig.svc.upsert_schedule({"id": "sang", "programme_id": "sang", "kind": "daily", "times": ["05:00"]})


async def settled(rig: Rig) -> list[dict[str, Any]]:
    await asyncio.sleep(0.3)
    return [e for e in await rig.entries() if e["schedule_id"] == "sang"]


async def test_jump_forward_over_t_is_missed_and_jumping_back_does_not_play_it(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await timetable(rig)
        await asyncio.sleep(0.5)
        rig.clock.jump(HOUR)  # 04:59:57.5 -> 05:59:57.5: NTP after a boot without RTC
        [missed] = await rig.wait_logged("missed")
        rig.clock.jump(-HOUR)  # and back: 05:00 comes round again in ~2.5 s
        await rig.wait_for(lambda: rig.clock.now() > dt.datetime(2025, 9, 1, 5, 0, 1, tzinfo=VN), 10, "05:00:01")
        entries = await settled(rig)
        assert rig.playbacks() == []
        assert rig.svc.health()["clock_jumps"] == 2
        jumps = [p for kind, p in rig.outbox() if kind == "broadcast.clock_jumped"]
    assert [e["outcome"] for e in entries] == ["missed"]
    assert missed["planned_at"] == "2025-09-01T05:00:00.000+07:00"
    assert missed["reason"].startswith("the wall clock jumped forward 3600 s over it")
    assert [round(j["jump_s"]) for j in jumps] == [3600, -3600]


async def test_jump_forward_within_the_late_window_plays_late_once(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await timetable(rig, play_late=True, late_window_s=2 * 3600)
        await asyncio.sleep(0.5)
        rig.clock.jump(HOUR)
        [late] = await rig.wait_logged("played")
        rig.clock.jump(-HOUR)
        await rig.wait_for(lambda: rig.clock.now() > dt.datetime(2025, 9, 1, 5, 0, 1, tzinfo=VN), 10, "05:00:01")
        entries = await settled(rig)
        assert len(rig.playbacks()) == 1
    assert [e["outcome"] for e in entries] == ["played"]
    assert late["late"] is True
    assert late["late_reason"].startswith("the wall clock jumped forward")


async def test_jump_back_after_t_played_does_not_play_it_again(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await timetable(rig)
        [played] = await rig.wait_logged("played")
        assert played["late"] is False
        rig.clock.jump(dt.timedelta(seconds=-4))  # ~05:00:01 -> 04:59:57: 05:00 comes round again
        await rig.wait_for(lambda: rig.clock.now() > dt.datetime(2025, 9, 1, 5, 0, 1, tzinfo=VN), 10, "05:00:01")
        # and a restart while the clock is behind: the stored newest occurrence still holds
        await rig.halt()
        rig.clock.jump(dt.timedelta(seconds=-3))
        await rig.boot()
        await rig.wait_for(lambda: rig.clock.now() > dt.datetime(2025, 9, 1, 5, 0, 1, tzinfo=VN), 10, "05:00:01")
        entries = await settled(rig)
        assert len(rig.playbacks()) == 1
    assert [e["outcome"] for e in entries] == ["played"]


async def test_off_across_t_is_logged_missed_or_played_late(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await timetable(rig)
        await rig.halt()  # the box goes off before 05:00 ...
        rig.clock.jump(dt.timedelta(minutes=10))  # ... and comes back at 05:10
        await rig.boot()
        [missed] = await rig.wait_logged("missed")
        assert missed["reason"].startswith("the hub was not running at that time")
        assert rig.playbacks() == []
        # the next day, the same, but the programme may play up to half an hour late
        await timetable(rig, play_late=True)
        await rig.halt()
        rig.clock.jump(dt.timedelta(days=1))
        await rig.boot()
        [late] = await rig.wait_logged("played")
        entries = await settled(rig)
    assert late["planned_at"] == "2025-09-02T05:00:00.000+07:00"
    assert late["late"] is True
    assert [e["outcome"] for e in entries] == ["missed", "played"]
