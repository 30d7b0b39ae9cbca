"""A broadcast cut by a crash: after the restart the relays are where "nothing is playing" puts them (the box
recomputes, it does not trust what it last said), and the broadcast log says the broadcast was interrupted.
Once in-process (the service dies, a new one starts on the same store), once with `hub run` killed with -9."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from hub.store.database import DB_NAME
from tests.broadcast.rig import AMP_PIN, VN, ZONE1_PIN, FileServer, Rig, write_tone
from tests.support.processes import HubProcess, wait_until, write_hub_config

START = dt.datetime(2025, 9, 1, 16, 59, 58, tzinfo=VN)


async def test_a_crash_mid_broadcast_is_logged_interrupted_and_the_relays_recomputed(tmp_path: Path) -> None:
    async with Rig(tmp_path, START) as rig:
        await rig.svc.upsert_programme(
            {"id": "chieu", "name": "Bản tin chiều", "zones": ["khu 1"], "items": [{"kind": "text", "text": "[5s] x"}]}
        )
        await rig.svc.upsert_schedule({"id": "chieu", "programme_id": "chieu", "kind": "daily", "times": ["17:00"]})
        await rig.wait_for(lambda: rig.svc.arbiter.current is not None and rig.svc.arbiter.current.started_at, 8)
        rows = await rig.wait_for(lambda: _outcomes(rig) == ["playing"], 5, "the log row to say playing")
        assert rows
        assert rig.pin_on(AMP_PIN)
        assert rig.pin_on(ZONE1_PIN)
        await rig.crash()  # the service dies mid-item; its relays stay as they were
        assert rig.pin_on(AMP_PIN)
        await rig.boot()  # ... and starts again on the same store
        await rig.wait_for(lambda: not rig.pin_on(AMP_PIN), 5, "the amplifier declared off")
        assert not rig.pin_on(ZONE1_PIN)
        [entry] = await rig.wait_logged("interrupted")
        assert rig.svc.health()["recovered_at_start"] == 1
        await asyncio.sleep(1.0)  # 17:00 does not play again after the restart
        assert rig.svc.arbiter.current is None
        outbox = [p for kind, p in rig.outbox() if kind == "broadcast.log"]
    assert entry["reason"].startswith("the hub stopped mid-broadcast")
    assert entry["planned_at"] == "2025-09-01T17:00:00.000+07:00"
    assert entry["started_at"] is not None
    assert entry["end_unknown"] is True
    assert [p["outcome"] for p in outbox] == ["interrupted"]


def _outcomes(rig: Rig) -> list[str]:
    assert rig.store is not None
    conn = sqlite3.connect(rig.store.path)
    try:
        return [o for (o,) in conn.execute("SELECT outcome FROM broadcast_log ORDER BY id")]
    finally:
        conn.close()


RELAYS_AND_BROADCAST = """
[relays]
stagger_ms = 5

[[relays.gpio]]
name = "ampli"
pin = 17
active_high = false

[[relays.gpio]]
name = "loa khu 1"
pin = 27
active_high = false

[[relays.gpio]]
name = "loa khu 2"
pin = 22
active_high = false

[broadcast]
amplifier_relay = "ampli"
warmup_s = 0.2
prepare_ahead_s = 0.5

[broadcast.zones]
"khu 1" = "loa khu 1"
"khu 2" = "loa khu 2"

[[broadcast.programmes]]
id = "vov"
name = "Tiếp sóng VOV"
zones = ["khu 1", "khu 2"]
items = [{{ kind = "stream", url = "{url}/vov.wav", duration_s = 60 }}]

[[broadcast.schedules]]
id = "vov-once"
programme_id = "vov"
kind = "once"
at = "{at}"
"""


def _broadcast_rows(data: Path) -> list[tuple[str, str | None]]:
    conn = sqlite3.connect(data / DB_NAME)
    try:
        return [(o, r) for o, r in conn.execute("SELECT outcome, reason FROM broadcast_log ORDER BY id")]
    finally:
        conn.close()


def _outbox(data: Path, kind: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(data / DB_NAME)
    try:
        return [
            json.loads(p) for (p,) in conn.execute("SELECT payload FROM outbox WHERE kind = ? ORDER BY seq", (kind,))
        ]
    finally:
        conn.close()


def _relays(hub: HubProcess) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in hub.health()["services"]["relays"]["details"]["relays"]}


@pytest.mark.slow
def test_kill_9_mid_broadcast_then_restart(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    write_tone(www / "vov.wav", 60.0, 400.0)
    # Far enough ahead that the hub has started before it (a start takes seconds under arm64 emulation; a one-off
    # whose time passed before the start is logged missed, never played).
    at = (dt.datetime.now(zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")) + dt.timedelta(seconds=15)).replace(microsecond=0)
    with FileServer(www) as server:
        extra = RELAYS_AND_BROADCAST.format(url=server.url, at=at.replace(tzinfo=None).isoformat())
        config = write_hub_config(tmp_path / "hub", "thon-loa", cloud_url=None, token=None, extra=extra)
        data = tmp_path / "hub" / "data"
        hub = HubProcess(config).start()
        try:
            wait_until(lambda: _broadcast_rows(data)[:1] == [("playing", None)], 40, what="the broadcast to play")
            broadcast = hub.health()["services"]["broadcast"]
            assert broadcast["state"] == "running"
            assert broadcast["details"]["now_playing"]["title"] == "Tiếp sóng VOV"
            relays = _relays(hub)
            assert relays["ampli"]["on"] is True
            assert relays["loa khu 1"]["on"] is True
            hub.kill()  # SIGKILL mid-broadcast
            hub.start()
            wait_until(lambda: _broadcast_rows(data)[:1] != [("playing", None)], 10, what="the log to be put right")
            relays = _relays(hub)
            for name in ("ampli", "loa khu 1", "loa khu 2"):
                assert relays[name]["on"] is False, relays[name]
                assert relays[name]["declared"] is False
            details = hub.health()["services"]["broadcast"]["details"]
            assert details["recovered_at_start"] == 1
            assert details["relays"]["amplifier_on"] is False
            time.sleep(2.0)  # the one-off time has passed: it is not played again after the restart
            assert hub.health()["services"]["broadcast"]["details"]["now_playing"] is None
        finally:
            hub.terminate()
    [(outcome, reason)] = _broadcast_rows(data)
    assert outcome == "interrupted"
    assert reason is not None
    assert reason.startswith("the hub stopped mid-broadcast")
    [entry] = _outbox(data, "broadcast.log")
    assert entry["outcome"] == "interrupted"
    assert entry["schedule_id"] == "vov-once"
    assert entry["zones"] == ["khu 1", "khu 2"]
    assert entry["planned_at"].startswith(at.isoformat()[:19])
