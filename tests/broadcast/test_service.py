"""The broadcast service on simulated hardware (mock pins, the simulated loudspeaker): schedules play on time,
emergencies cut in, bulletins wait for the item, the relays follow amplifier -> zones and back, and every
broadcast ends in the log and the outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from hub.broadcast.service import BroadcastError
from hub.bus import CommandError
from tests.broadcast.rig import AMP_PIN, VN, ZONE1_PIN, ZONE2_PIN, FileServer, Rig, relay_changes, write_tone

START = dt.datetime(2025, 9, 1, 4, 59, 56, tzinfo=VN)  # a Monday, four seconds before the morning programme


def text(seconds: float, words: str = "thông báo") -> dict[str, Any]:
    return {"kind": "text", "text": f"[{seconds}s] {words}"}


def programme(pid: str = "sang", *items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": pid, "name": f"Chương trình {pid}", "zones": ["khu 1"], "items": list(items) or [text(1.0)], **extra}


def started(entry: dict[str, Any]) -> float:
    return float(entry["started"]["mono"])


def ended(entry: dict[str, Any]) -> float:
    return float(entry["ended"]["mono"])


async def playing(rig: Rig) -> None:
    def sounding() -> bool:
        current = rig.svc.arbiter.current
        return current is not None and current.started_at is not None

    await rig.wait_for(sounding, 5, "a broadcast to be heard")


@pytest.mark.realtime
async def test_a_schedule_at_t_plays_within_a_second_of_t(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await rig.svc.upsert_programme(programme("sang"))
        answer = await rig.svc.upsert_schedule(
            {"id": "sang-chieu", "programme_id": "sang", "kind": "daily", "times": ["05:00", "17:00"]}
        )
        assert answer["next"] == "2025-09-01T05:00:00+07:00"
        assert rig.svc.health()["next"][0]["at"] == "2025-09-01T05:00:00+07:00"
        [entry] = await rig.wait_logged("played", timeout=10)
        kinds = [kind for kind, _ in rig.outbox()]
    assert "broadcast.log" in kinds
    planned = dt.datetime.fromisoformat(entry["planned_at"])
    actual = dt.datetime.fromisoformat(entry["started_at"])
    assert planned == dt.datetime(2025, 9, 1, 5, tzinfo=VN)
    assert 0 <= (actual - planned).total_seconds() < 1.0
    assert entry["schedule_id"] == "sang-chieu"
    assert entry["zones"] == ["khu 1"]
    assert entry["items"][0]["ok"] is True
    assert entry["items"][0]["played_s"] == pytest.approx(1.0, abs=0.05)
    # what the loudspeaker heard started at the same moment (the clock is the real one, shifted)
    [heard] = rig.playbacks()
    assert heard["frames_played"] > 0


@pytest.mark.realtime
async def test_an_emergency_cuts_in_within_500_ms_and_the_programme_resumes(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await rig.svc.upsert_programme(programme("dai", text(3.0, "bản tin dài"), text(0.5, "phần hai")))
        await rig.svc.play_now(programme_id="dai")
        await playing(rig)
        await asyncio.sleep(0.5)
        submitted = time.monotonic()
        answer = await rig.svc.play_now(items=[text(0.8, "cháy ở khu 2")], level="emergency", zones=["khu 1", "khu 2"])
        assert answer["outcome"] == "queued"
        entries = await rig.wait_logged("played", count=2, timeout=15)
        heard = rig.playbacks()
    long_item, chime, alert, *rest = heard
    assert long_item["stopped_early"] is True
    assert ended(long_item) - submitted < 0.1  # the loudspeakers went quiet at once
    assert started(chime) - submitted < 0.5  # the alert was heard within 500 ms: its chime, then the text
    assert "chime-alert" in chime["source"]
    assert started(alert) >= ended(chime)
    assert chime["volume"] == alert["volume"] == 100  # emergency volume
    assert [e["level"] for e in entries] == ["emergency", "normal"]
    normal = entries[1]
    assert normal["interruptions"][0]["kind"] == "cut"
    assert "emergency" in normal["interruptions"][0]["reason"]
    # resumed from the cut item: the long item again in full, then part two
    assert [round(r["played_s"], 1) for r in normal["items"]] == [pytest.approx(0.5, abs=0.15), 3.0, 0.5]
    assert normal["items"][0]["cut"] is True
    assert len(rest) == 2


async def test_a_programme_that_says_log_is_logged_interrupted(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await rig.svc.upsert_programme(programme("dai", text(3.0), text(1.0), on_interrupt="log"))
        await rig.svc.play_now(programme_id="dai")
        await playing(rig)
        await rig.svc.play_now(items=[text(0.3, "khẩn cấp")], level="emergency")
        [interrupted] = await rig.wait_logged("interrupted")
        await rig.wait_logged("played")
        assert len(rig.playbacks()) == 3  # cut item, the alert's chime and text; the rest was dropped
    assert interrupted["reason"].startswith("cut by emergency")
    assert len(interrupted["items"]) == 1


@pytest.mark.realtime
async def test_a_priority_bulletin_waits_for_the_current_item(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await rig.svc.upsert_programme(programme("ct", text(1.5, "mục một"), text(0.5, "mục hai")))
        await rig.svc.play_now(programme_id="ct")
        await playing(rig)
        await asyncio.sleep(0.3)
        await rig.svc.play_now(items=[text(0.4, "ưu tiên")], level="priority")
        entries = await rig.wait_logged("played", count=2)
        first, bulletin, second = rig.playbacks()
    assert first["stopped_early"] is False  # not cut
    assert started(bulletin) >= ended(first)  # after the item, not in it
    assert started(second) >= ended(bulletin)  # and the programme carried on after the bulletin
    assert second["stopped_early"] is False
    normal = next(e for e in entries if e["level"] == "normal")
    assert normal["interruptions"][0]["kind"] == "stepped_aside"
    assert [r["ok"] for r in normal["items"]] == [True, True]


async def test_relays_amplifier_then_zones_and_back_in_reverse(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        assert not rig.pin_on(AMP_PIN)
        await rig.svc.play_now(items=[text(0.5)], zones=["khu 1", "khu 2"])
        await playing(rig)
        assert rig.pin_on(AMP_PIN)
        assert rig.pin_on(ZONE1_PIN)
        assert rig.pin_on(ZONE2_PIN)
        await rig.wait_logged("played")
        await rig.wait_for(lambda: not rig.pin_on(AMP_PIN), 5, "the amplifier to go off after the idle delay")
        [heard] = rig.playbacks()
        amp_on, zone1_on, zone2_on = (
            relay_changes(rig.relays, pin, True)[-1] for pin in (AMP_PIN, ZONE1_PIN, ZONE2_PIN)
        )
        amp_off, zone1_off, zone2_off = (
            relay_changes(rig.relays, p, False)[-1] for p in (AMP_PIN, ZONE1_PIN, ZONE2_PIN)
        )
        assert amp_on + 0.3 <= min(zone1_on, zone2_on)  # warm-up before the zones
        assert max(zone1_on, zone2_on) <= started(heard)  # zones connected before the first sound
        assert ended(heard) <= min(zone1_off, zone2_off)  # disconnected after the last
        assert max(zone1_off, zone2_off) < amp_off  # the amplifier last
        assert amp_off - ended(heard) >= 0.5  # after the idle delay
        states = rig.relays.bank.states()
    assert str(states["ampli"].reason).startswith("broadcast: idle")


async def test_quiet_hours_block_all_but_emergencies(tmp_path: Path) -> None:
    async with Rig(tmp_path, START, quiet_hours=[{"start": "22:00", "end": "05:30"}]) as rig:
        blocked = await rig.svc.play_now(items=[text(0.2)], level="priority")
        assert (blocked["outcome"], blocked["reason"]) == ("blocked", "quiet hours 22:00-05:30")
        alert = await rig.svc.play_now(items=[text(0.2, "lũ")], level="emergency")
        assert alert["outcome"] == "queued"
        entries = await rig.wait_logged(count=2)
        assert rig.svc.health()["quiet_now"] == "22:00-05:30"
    assert [(e["level"], e["outcome"]) for e in entries] == [("priority", "blocked"), ("emergency", "played")]


async def test_the_same_announcement_twice_within_the_window_plays_once(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        first = await rig.svc.play_now(items=[text(0.2, "họp thôn lúc 19 giờ")])
        again = await rig.svc.play_now(items=[text(0.2, "họp thôn lúc 19 giờ")])
        other = await rig.svc.play_now(items=[text(0.2, "họp thôn lúc 20 giờ")])
        assert (first["outcome"], again["outcome"], other["outcome"]) == ("queued", "duplicate", "queued")
        entries = await rig.wait_logged(count=3)
        assert len(rig.playbacks()) == 2
    assert sorted(e["outcome"] for e in entries) == ["duplicate", "played", "played"]


async def test_validation_errors_name_what_is_wrong(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        with pytest.raises(BroadcastError, match="unknown zone 'khu 9'; configured zones: 'khu 1', 'khu 2'"):
            await rig.svc.upsert_programme(programme("x", zones=["khu 9"]))
        with pytest.raises(BroadcastError, match="no programme 'nope'"):
            await rig.svc.upsert_schedule({"id": "s", "programme_id": "nope", "kind": "daily", "times": ["05:00"]})
        await rig.svc.upsert_programme(programme("dai", {"kind": "stream", "url": "http://r/x", "duration_s": 900}))
        await rig.svc.upsert_programme(programme("ngan"))
        await rig.svc.upsert_schedule({"id": "a", "programme_id": "dai", "kind": "daily", "times": ["06:00"]})
        answer = await rig.svc.upsert_schedule(
            {"id": "b", "programme_id": "ngan", "kind": "weekly", "days": ["t2"], "times": ["06:10"]}
        )
        assert answer["warnings"] == [
            "schedule 'b' starts at 2025-09-01 06:10 while schedule 'a' is still playing on zones khu 1; "
            "the later one will wait for the other"
        ]
        with pytest.raises(BroadcastError, match=r"used by schedule\(s\) 'a'; delete them first"):
            await rig.svc.delete_programme("dai")
        with pytest.raises(BroadcastError, match="unknown zone 'khu 3'"):
            await rig.svc.play_now(items=[text(0.1)], zones=["khu 3"])
        with pytest.raises(BroadcastError, match="volume must be an integer 0-100"):
            await rig.svc.play_now(items=[text(0.1)], volume=150)
        with pytest.raises(BroadcastError, match=r"items\.0: Input tag 'video' found using 'kind'"):
            await rig.svc.play_now(items=[{"kind": "video"}])
        catalog = rig.svc.catalog()
        assert [s["id"] for s in catalog["schedules"]] == ["a", "b"]
        assert catalog["schedules"][0]["next"] == "2025-09-01T06:00:00+07:00"


async def test_commands_on_the_bus(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        with pytest.raises(CommandError, match="unknown zone 'khu 7'"):
            await rig.bus.call("broadcast.test_zone", zone="khu 7", who="kỹ thuật viên")
        answer = await rig.bus.call("broadcast.test_zone", zone="khu 2", who="kỹ thuật viên")
        assert answer["outcome"] == "queued"
        await playing(rig)
        assert rig.pin_on(ZONE2_PIN)
        assert not rig.pin_on(ZONE1_PIN)
        [entry] = await rig.wait_logged("played")
        assert entry["origin"] == "test"
        assert entry["who"] == "kỹ thuật viên"
        # fire-and-forget messages are answered on broadcast.result
        results = rig.bus.subscribe("broadcast.result")
        rig.bus.publish("broadcast.delete_schedule", id="nope", request_id="r1")
        result = (await asyncio.wait_for(results.get(), 2)).data
        assert result == {"command": "delete_schedule", "request_id": "r1", "ok": False, "error": "no schedule 'nope'"}
        listing = await rig.bus.call("broadcast.list")
        assert listing["zones"] == ["khu 1", "khu 2"]


async def test_a_stream_is_relayed_for_its_duration_and_falls_back_when_down(tmp_path: Path) -> None:
    media = tmp_path / "www"
    media.mkdir()
    write_tone(media / "vov.wav", 6.0, 500.0)
    with FileServer(media) as server:
        async with Rig(tmp_path, START) as rig:
            await rig.svc.play_now(
                items=[
                    {"kind": "stream", "url": f"{server.url}/vov.wav", "duration_s": 1.0, "title": "VOV1"},
                    {
                        "kind": "stream",
                        "url": "http://127.0.0.1:9/down",
                        "duration_s": 5.0,
                        "fallback": {"kind": "chime", "chime": "end"},
                    },
                ]
            )
            [entry] = await rig.wait_logged("played", timeout=15)
            heard = rig.playbacks()
    relay, down = entry["items"]
    assert relay["ok"] is True
    assert relay["played_s"] == pytest.approx(1.0, abs=0.15)
    assert down["attempts"] >= 2  # tried again before giving up
    assert "could not be played" in down["error"]
    assert down["fallback"]["ok"] is True
    assert down["ok"] is True
    assert heard[0]["stopped_early"] is True  # the stream was cut at its duration
    assert heard[-1]["source"].endswith("chime-end-0.3.wav")


async def test_live_announcement_and_stop_all(tmp_path: Path) -> None:
    media = tmp_path / "www"
    media.mkdir()
    write_tone(media / "mic.wav", 20.0, 300.0)
    with FileServer(media) as server:
        async with Rig(tmp_path, START) as rig:
            await rig.svc.start_live(url=f"{server.url}/mic.wav", who="trưởng thôn")
            with pytest.raises(BroadcastError, match="already on"):
                await rig.svc.start_live(url=f"{server.url}/mic.wav")
            await playing(rig)
            queued = await rig.svc.play_now(items=[text(0.2, "sau tiếng nói trực tiếp")])
            assert rig.svc.health()["queue"][0]["job_id"] == queued["job_id"]
            await asyncio.sleep(0.3)
            await rig.svc.stop_live(who="trưởng thôn")
            live = (await rig.wait_logged("played", count=2))[0]
            assert live["origin"] == "live"
            assert live["level"] == "live"
            assert live["reason"] == "ended by trưởng thôn"
            # stop_all: the current one and the queue
            await rig.svc.upsert_programme(programme("a", text(3.0)))
            await rig.svc.play_now(programme_id="a")
            await rig.svc.play_now(items=[text(0.5, "chờ")])
            await playing(rig)
            stopped = await rig.svc.stop_all(who="trưởng thôn", reason="nhầm")
            assert len(stopped["stopped"]) == 2
            cancelled = await rig.wait_logged("cancelled", count=2)
    assert {e["reason"] for e in cancelled} == {"stopped by trưởng thôn: nhầm"}


async def test_health_says_what_plays_what_waits_and_what_comes(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await rig.svc.upsert_programme(programme("sang", text(1.0)))
        await rig.svc.upsert_schedule({"id": "s", "programme_id": "sang", "kind": "daily", "times": ["17:00"]})
        await rig.svc.play_now(items=[text(1.0, "một")])
        await rig.svc.play_now(items=[text(0.2, "hai")])
        await playing(rig)
        health = rig.svc.health()
        assert health["now_playing"]["title"].startswith("[1.0s] một")
        assert health["now_playing"]["since"] is not None
        assert [q["title"] for q in health["queue"]] == ["[0.2s] hai"]
        assert health["next"][0] == {
            "at": "2025-09-01T17:00:00+07:00",
            "schedule_id": "s",
            "programme_id": "sang",
            "title": "Chương trình sang",
        }
        assert health["relays"]["amplifier_on"] is True
        await rig.wait_logged("played", count=2)
        health = rig.svc.health()
        assert health["now_playing"] is None
        assert health["counts"] == {"played": 2}
        assert health["last_broadcast"]["title"] == "[0.2s] hai"
        assert rig.svc.problems() == []


async def test_an_item_that_cannot_be_prepared_is_logged_and_the_rest_plays(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        rig.renderer.media["m-ok"] = 0.3
        await rig.svc.play_now(
            items=[{"kind": "audio", "media_id": "m-missing"}, {"kind": "audio", "media_id": "m-ok"}]
        )
        [entry] = await rig.wait_logged("played")
        await rig.svc.play_now(items=[{"kind": "audio", "media_id": "m-missing"}], zones=["khu 2"])
        [failed] = await rig.wait_logged("failed")
    assert entry["reason"] == "item 1: could not prepare it: audio item 'm-missing': no media with that id"
    assert [r["ok"] for r in entry["items"]] == [False, True]
    assert failed["outcome"] == "failed"


async def test_programmes_from_hub_toml_are_loaded_and_kept_read_only(tmp_path: Path) -> None:
    provisioned: dict[str, Any] = {
        "programmes": [programme("sang", text(0.3))],
        "schedules": [{"id": "sang", "programme_id": "sang", "kind": "daily", "times": ["17:00"]}],
    }
    async with Rig(tmp_path, START, **provisioned) as rig:
        catalog = rig.svc.catalog()
        assert [(p["id"], p["origin"]) for p in catalog["programmes"]] == [("sang", "config")]
        assert catalog["schedules"][0]["next"] == "2025-09-01T17:00:00+07:00"
        with pytest.raises(BroadcastError, match=r"comes from hub\.toml; change it there"):
            await rig.svc.upsert_programme(programme("sang", text(1.0)))
        with pytest.raises(BroadcastError, match=r"comes from hub\.toml; remove it there"):
            await rig.svc.delete_schedule("sang")
        # the API adds its own beside them, and both survive a restart
        await rig.svc.upsert_programme(programme("toi", text(0.3)))
        await rig.halt()
        await rig.boot()
        assert sorted(rig.svc.programmes) == ["sang", "toi"]
        assert rig.svc.programmes["toi"].origin == "api"


async def test_a_daily_summary_of_minutes_per_zone_goes_to_the_outbox(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await rig.svc.play_now(items=[text(0.6)], zones=["khu 1", "khu 2"])
        await rig.wait_logged("played")
        rig.clock.jump(dt.timedelta(days=1))  # past midnight: yesterday is summed up
        summaries = await rig.wait_for(
            lambda: [p for kind, p in rig.outbox() if kind == "broadcast.daily_summary"], 5, "the daily summary"
        )
    assert summaries == [
        {
            "date": "2025-09-01",
            "minutes_per_zone": {"khu 1": 0.01, "khu 2": 0.01},
            "outcomes": {"played": 1},
            "broadcasts": 1,
        }
    ]


async def test_uploads_go_through_the_media_commands(tmp_path: Path) -> None:
    source = write_tone(tmp_path / "thông báo họp.wav", 1.0, 440.0)

    async def chunks() -> Any:
        yield source.read_bytes()

    async with Rig(tmp_path, START, uploads=True) as rig:
        assert (await rig.bus.call("broadcast.media_list")) == {"media": []}
        info = await rig.bus.call("broadcast.media_add", filename=source.name, chunks=chunks(), who="kỹ thuật viên")
        assert info["name"] == "thông báo họp.wav"
        assert info["duration_s"] == pytest.approx(1.0, abs=0.05)
        with pytest.raises(CommandError, match=r"file name 'a/b\.mp3'"):
            await rig.bus.call("broadcast.media_add", filename="a/b.mp3", chunks=chunks())
        listed = await rig.bus.call("broadcast.media_list")
        assert [m["id"] for m in listed["media"]] == [info["id"]]
        await rig.svc.upsert_programme(programme("hop", {"kind": "audio", "media_id": info["id"]}))
        with pytest.raises(CommandError, match=r"is used by programme\(s\) 'hop'"):
            await rig.bus.call("broadcast.media_remove", id=info["id"])
        assert rig.svc.engine.durations[info["id"]] == pytest.approx(1.0, abs=0.05)
        await rig.svc.delete_programme("hop")
        assert await rig.bus.call("broadcast.media_remove", id=info["id"]) == {"removed": info["id"]}
        with pytest.raises(CommandError, match="no media with id"):
            await rig.bus.call("broadcast.media_remove", id=info["id"])
