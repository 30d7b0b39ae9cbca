"""CAP 1.2 alerts through the broadcast service: an Alert plays, an Update replaces it, a Cancel stops it, an
expired one does not play, malformed XML gets a clear error, and the same alert twice within the window plays
once (also across a restart)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from hub.broadcast.service import BroadcastError
from hub.bus import CommandError
from tests.broadcast.rig import VN, Rig

NS = "urn:oasis:names:tc:emergency:cap:1.2"
NOW = dt.datetime(2025, 10, 7, 8, 26, tzinfo=VN)
SENDER = "pctt@dongson.gov.vn"


def cap(
    identifier: str = "VN-DS-2025-0042",
    msg_type: str = "Alert",
    references: str | None = None,
    *,
    status: str = "Actual",
    urgency: str = "Immediate",
    severity: str = "Extreme",
    expires: str = "2025-10-07T14:30:00+07:00",
    headline: str = "Cảnh báo lũ quét khẩn cấp",
) -> str:
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{NS}">
  <identifier>{identifier}</identifier><sender>{SENDER}</sender><sent>2025-10-07T08:25:00+07:00</sent>
  <status>{status}</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}
  <info>
    <language>vi-VN</language><category>Met</category><event>Lũ quét</event>
    <urgency>{urgency}</urgency><severity>{severity}</severity><certainty>Observed</certainty>
    <expires>{expires}</expires>
    <headline>{headline}</headline>
    <instruction>Bà con thôn Đông di chuyển ngay lên nhà văn hóa!</instruction>
    <area><areaDesc>Thôn Đông, xã Đông Sơn</areaDesc></area>
  </info>
</alert>"""


def reading(rig: Rig) -> bool:
    """The current alert's text (its second item, after the chime) is being heard."""
    item = rig.svc.engine.now_item
    return bool(item and item["item_index"] == 1 and item["since"])


def ref(identifier: str) -> str:
    return f"{SENDER},{identifier},2025-10-07T08:25:00+07:00"


async def test_a_valid_alert_is_read_aloud_to_every_zone_after_a_chime(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW, chime_before_announcements=True) as rig:
        answer = await rig.svc.submit_cap(cap())
        assert (answer["outcome"], answer["level"], answer["msg_type"]) == ("queued", "emergency", "Alert")
        [entry] = await rig.wait_logged("played")
        heard = rig.playbacks()
        assert rig.renderer.texts == ["Cảnh báo lũ quét khẩn cấp. Bà con thôn Đông di chuyển ngay lên nhà văn hóa!"]
        outbox = [(kind, payload) for kind, payload in rig.outbox() if kind == "broadcast.log"]
    assert entry["zones"] == ["khu 1", "khu 2"]
    assert entry["title"] == "Cảnh báo lũ quét khẩn cấp"
    assert entry["cap"]["severity"] == "Extreme"
    assert entry["cap"]["areas"] == ["Thôn Đông, xã Đông Sơn"]
    assert Path(heard[0]["source"]).name.startswith("chime-alert")
    assert Path(heard[1]["source"]).name.startswith("text-")
    assert all(h["volume"] == 100 for h in heard)
    assert outbox[-1][1]["outcome"] == "played"
    assert outbox[-1][1]["level"] == "emergency"


async def test_a_moderate_alert_is_a_priority_bulletin(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW) as rig:
        answer = await rig.svc.submit_cap(cap(urgency="Expected", severity="Moderate"))
        assert answer["level"] == "priority"
        await rig.wait_logged("played")


async def test_an_update_replaces_the_alert_it_references(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW) as rig:
        rig.renderer.text_s = 3.0
        await rig.svc.submit_cap(cap("A1"))
        await rig.wait_for(lambda: reading(rig), 5, "A1's text to be heard")
        rig.renderer.text_s = 0.4
        answer = await rig.svc.submit_cap(cap("A2", "Update", ref("A1"), headline="Lũ quét: nước đang rút"))
        assert answer["outcome"] == "queued"
        assert len(answer["stopped"]) == 1
        replaced = (await rig.wait_logged("cancelled"))[0]
        [update] = await rig.wait_logged("played")
        heard = rig.playbacks()
        assert rig.svc.health()["alerts"][f"{SENDER},A1"]["state"] == "replaced"
    assert replaced["reason"] == f"replaced by CAP Update 'A2' from {SENDER}"
    assert replaced["items"][-1]["cut"] is True
    assert update["title"] == "Lũ quét: nước đang rút"
    assert update["cap"]["references"] == [f"{SENDER},A1"]
    assert [h["stopped_early"] for h in heard] == [False, True, False, False]  # A1: chime, text cut; A2 whole


async def test_a_cancel_stops_the_alert_and_takes_it_out_of_the_queue(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW) as rig:
        rig.renderer.text_s = 3.0
        await rig.svc.submit_cap(cap("A1"))
        await rig.svc.submit_cap(cap("B1", headline="Sạt lở đất"))  # an emergency waits for the one playing
        await rig.wait_for(lambda: reading(rig), 5, "A1's text to be heard")
        stopped = await rig.svc.submit_cap(cap("C1", "Cancel", f"{ref('A1')} {ref('B1')}"))
        assert len(stopped["stopped"]) == 2
        cancelled = await rig.wait_logged("cancelled", count=2)
        await asyncio.sleep(0.3)
        assert rig.svc.arbiter.current is None
        assert [h["stopped_early"] for h in rig.playbacks()] == [False, True]  # A1's chime, the start of its text
    assert {e["title"] for e in cancelled} == {"Cảnh báo lũ quét khẩn cấp", "Sạt lở đất"}
    assert all(e["reason"] == f"cancelled by CAP Cancel 'C1' from {SENDER}" for e in cancelled)


async def test_an_expired_alert_is_logged_and_not_played(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW) as rig:
        answer = await rig.svc.submit_cap(cap(expires="2025-10-07T08:00:00+07:00"))
        assert answer["outcome"] == "expired"
        [entry] = await rig.wait_logged("expired")
        await asyncio.sleep(0.2)
        assert rig.playbacks() == []
    assert entry["reason"].startswith("expired at 2025-10-07T08:00:00+07:00")


async def test_malformed_xml_gets_a_clear_error(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW) as rig:
        with pytest.raises(BroadcastError, match="CAP message refused: not XML"):
            await rig.svc.submit_cap("<alert><identifier>x</alert>")
        broken = cap().replace("<status>Actual</status>", "<status>Real</status>")
        with pytest.raises(CommandError, match=r"CAP message refused: .*status"):
            await rig.bus.call("broadcast.cap", xml=broken)
        with pytest.raises(CommandError, match="cap needs 'xml'"):
            await rig.bus.call("broadcast.cap")
        assert rig.svc.cap_errors == 2
        assert rig.playbacks() == []


async def test_the_same_alert_twice_within_the_window_plays_once(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW) as rig:
        first = await rig.svc.submit_cap(cap("D1"))
        again = await rig.svc.submit_cap(cap("D1"))
        assert (first["outcome"], again["outcome"]) == ("queued", "duplicate")
        await rig.wait_logged("played")
        # a restart does not forget it: the cloud re-sending after a crash is still a duplicate
        await rig.halt()
        await rig.boot()
        after_restart = await rig.svc.submit_cap(cap("D1"))
        assert after_restart["outcome"] == "duplicate"
        entries = await rig.wait_logged(count=3)
        assert len(rig.playbacks()) == 2  # once: the alert chime and the text
    assert sorted(e["outcome"] for e in entries) == ["duplicate", "duplicate", "played"]


async def test_test_and_exercise_messages_are_not_played(tmp_path: Path) -> None:
    async with Rig(tmp_path, NOW) as rig:
        answer = await rig.svc.submit_cap(cap(status="Exercise"))
        assert (answer["outcome"], answer["reason"]) == ("ignored", "status Exercise: only Actual alerts play")
        await rig.wait_logged("ignored")
        assert rig.playbacks() == []
