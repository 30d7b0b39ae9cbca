"""The command inbox between real processes: `hub run` (simulated relays and audio) and `hub-cloud serve`.

Commands queued while the hub is down are applied once each, in id order, when it comes back; one that expired
meanwhile is acknowledged as expired, never run; bad ones are rejected with the field named; commands delivered
again (here: a proxy that replays the cloud's last answer) are not applied again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import sqlite3
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hub.store.database import DB_NAME
from tests.support.processes import CloudProcess, HubProcess, free_port, wait_until, write_hub_config
from tests.sync.cloud_admin import FINAL, admin_request, command, commands, queue

HUB_ID = "thon-lenh-1"

BROADCAST = """
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

[broadcast]
amplifier_relay = "ampli"
warmup_s = 0.1

[broadcast.zones]
"khu 1" = "loa khu 1"

[commands]
poll_wait_s = 2.0
"""

PROGRAMME = {"id": "sang", "name": "Bản tin sáng", "zones": ["khu 1"], "items": [{"kind": "text", "text": "Chào"}]}
SCHEDULE = {"id": "sang-5h", "programme_id": "sang", "kind": "daily", "times": ["05:00"]}


class ReplayingProxy:
    """Forwards to the cloud, but answers a poll that found nothing with the last commands it handed out: a
    cloud (or a middlebox) that delivers again what the hub already applied."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_port()
        self.replayed = 0
        self._last: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.target + request.path,
                params=dict(request.query),
                data=await request.read(),
                headers=headers,
            ) as answer,
        ):
            body = await answer.read()
            status, content_type = answer.status, answer.content_type
        if request.path == "/api/v1/commands" and status == 200:
            if json.loads(body)["commands"]:
                self._last = body
            elif self._last is not None:
                body = self._last
                self.replayed += 1
        return web.Response(status=status, body=body, content_type=content_type)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> ReplayingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudProcess]:
    c = CloudProcess(tmp_path / "cloud").start()
    yield c
    c.stop()


def hub_commands(data: Path) -> list[tuple[int, str, str, float, float]]:
    conn = sqlite3.connect(data / DB_NAME)
    try:
        rows = conn.execute("SELECT id, kind, status, received_at, finished_at FROM commands ORDER BY id")
        return [tuple(r) for r in rows]
    finally:
        conn.close()


def cloud_announcements(data: Path) -> list[str]:
    conn = sqlite3.connect(data / DB_NAME)
    try:
        rows = conn.execute("SELECT title FROM broadcast_log WHERE origin = 'play_now' ORDER BY id").fetchall()
        return [r[0] for r in rows]
    finally:
        conn.close()


def alerts(data: Path) -> list[str]:
    conn = sqlite3.connect(data / DB_NAME)
    try:
        return [r[0] for r in conn.execute("SELECT title FROM broadcast_log WHERE origin = 'cap' ORDER BY id")]
    finally:
        conn.close()


def all_final(cloud: CloudProcess, upto: int) -> bool:
    rows = commands(cloud, HUB_ID)
    return len(rows) >= upto and all(r["status"] in FINAL for r in rows[:upto])


def test_commands_queued_while_the_hub_is_down_are_applied_once_in_order(cloud: CloudProcess, tmp_path: Path) -> None:
    token = cloud.add_hub(HUB_ID)
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token, extra=BROADCAST)
    data = tmp_path / "hub" / "data"
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: hub.health()["services"]["commands"]["details"]["link"] == "connected", 20, what="a poll")
    finally:
        assert hub.terminate() == 0

    # The hub is down: the commune queues work for it.
    first = queue(cloud, HUB_ID, "broadcast.announce", {"text": "Xin chào bà con thôn Lợi", "zones": ["khu 1"]})
    stale = queue(cloud, HUB_ID, "broadcast.announce", {"text": "Quá hạn"}, ttl_s=1)
    replace = queue(cloud, HUB_ID, "broadcast.schedule.replace", {"programmes": [PROGRAMME], "schedules": [SCHEDULE]})
    unknown = queue(cloud, HUB_ID, "door.open", {})
    bad = queue(cloud, HUB_ID, "broadcast.announce", {"text": "Âm lượng sai", "volume": 500})
    stop = queue(cloud, HUB_ID, "broadcast.stop_all", {"reason": "thử"})
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    alert = {"event": "Lũ quét", "severity": "Extreme", "area": "Thôn Lợi", "expires": expires, "text": "Lên cao ngay."}
    emergency = queue(cloud, HUB_ID, "broadcast.emergency", alert)
    time.sleep(1.2)  # the one with a 1 s lifetime expires before the hub is back
    # (the stopped hub's abandoned long poll may have marked some "delivered": not final, so not applied)
    assert all(c["status"] in ("queued", "delivered") for c in commands(cloud, HUB_ID))

    hub.start()
    try:
        wait_until(lambda: all_final(cloud, 7), 40, what="every command to be final")
        rows = {c["id"]: c for c in commands(cloud, HUB_ID)}
        assert rows[first]["status"] == "applied", rows[first]
        assert rows[first]["result"]["job_id"]
        assert rows[stale]["status"] == "expired"
        assert "expired" in rows[stale]["error"]
        assert rows[replace]["status"] == "applied", rows[replace]
        assert rows[replace]["result"]["programmes"] == ["sang"]
        assert rows[replace]["result"]["schedules"] == ["sang-5h"]
        assert rows[unknown]["status"] == "rejected"
        assert rows[unknown]["error"].startswith("kind: 'door.open' is not a command this hub takes")
        assert rows[bad]["status"] == "rejected"
        assert "args.volume" in rows[bad]["error"]
        assert rows[stop]["status"] == "applied", rows[stop]
        assert rows[emergency]["status"] == "applied", rows[emergency]
        assert rows[emergency]["result"]["alert"] == f"cloud,{HUB_ID}-command-{emergency}"
        details = hub.health()["services"]["commands"]["details"]
        assert details["counts"] == {"applied": 4, "rejected": 2, "expired": 1, "failed": 0}
        assert details["cursor"] == emergency
        broadcast = hub.health()["services"]["broadcast"]["details"]
        assert broadcast["programmes"] == 1
        assert broadcast["schedules"] == 1
    finally:
        assert hub.terminate() == 0

    stored = hub_commands(data)
    assert [r[0] for r in stored] == [first, stale, replace, unknown, bad, stop, emergency]
    assert [r[2] for r in stored] == ["applied", "expired", "applied", "rejected", "rejected", "applied", "applied"]
    finished = [r[4] for r in stored]
    assert finished == sorted(finished), "applied out of id order"
    assert cloud_announcements(data) == ["Xin chào bà con thôn Lợi"]
    assert alerts(data) == ["Lũ quét"]

    # The durable path: each result also reached the cloud as exactly one outbox record.
    results = [r["payload"] for r in cloud.all_records(HUB_ID) if r["kind"] == "command.result"]
    assert sorted(r["id"] for r in results) == [first, stale, replace, unknown, bad, stop, emergency]

    # A cloud that delivers commands again: each runs once.
    again = queue(cloud, HUB_ID, "broadcast.announce", {"text": "Lần thứ hai"})
    with ReplayingProxy(cloud.url) as proxy:
        text = config.read_text().replace(f'cloud_url = "{cloud.url}"', f'cloud_url = "{proxy.url}"')
        config.write_text(text)
        hub.start()
        try:
            wait_until(lambda: command(cloud, HUB_ID, again)["status"] in FINAL, 30, what="the new command")
            wait_until(lambda: proxy.replayed >= 2, 30, what="two re-deliveries")
            wait_until(
                lambda: hub.health()["services"]["commands"]["details"]["duplicates_ignored"] >= 2,
                30,
                what="re-deliveries to be ignored",
            )
        finally:
            assert hub.terminate() == 0
    assert command(cloud, HUB_ID, again)["status"] == "applied"
    assert [r[0] for r in hub_commands(data)] == [first, stale, replace, unknown, bad, stop, emergency, again]
    assert cloud_announcements(data) == ["Xin chào bà con thôn Lợi", "Lần thứ hai"]


class TricklingServer:
    """Serves a media file one byte a second: a download that is still running when the hub is killed."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _media(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        for _ in range(1000):
            await response.write(b"x")
            await asyncio.sleep(1.0)
        return response

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/slow.mp3", self._media)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> TricklingServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_a_command_interrupted_by_a_kill_is_reported_failed_not_run_again(cloud: CloudProcess, tmp_path: Path) -> None:
    """At most once: the hub is killed (SIGKILL) while it applies a command (downloading its audio); after the
    restart that command is reported failed, not run again, and the next one runs."""
    token = cloud.add_hub(HUB_ID)
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token, extra=BROADCAST)
    data = tmp_path / "hub" / "data"
    with TricklingServer() as slow:
        media = {"url": f"http://127.0.0.1:{slow.port}/slow.mp3", "sha256": "0" * 64, "size": 1000, "name": "a.mp3"}
        first = queue(cloud, HUB_ID, "broadcast.announce", {"media": media})
        hub = HubProcess(config).start()
        try:
            wait_until(lambda: slow.requests == 1, 30, what="the download to start")
            assert [r[2] for r in hub_commands(data)] == ["applying"]
        finally:
            hub.kill()
        second = queue(cloud, HUB_ID, "broadcast.announce", {"text": "Sau khi khởi động lại"})
        hub.start()
        try:
            wait_until(lambda: all_final(cloud, 2), 30, what="both commands final")
            assert slow.requests == 1, "the interrupted command ran again"
            interrupted = command(cloud, HUB_ID, first)
            assert interrupted["status"] == "failed"
            assert "interrupted by a restart" in interrupted["error"]
            assert command(cloud, HUB_ID, second)["status"] == "applied"
            assert hub.health()["services"]["commands"]["details"]["interrupted_by_restart"] == 1
        finally:
            hub.terminate()
    assert [(r[0], r[2]) for r in hub_commands(data)] == [(first, "failed"), (second, "applied")]


def test_settings_patch_restarts_the_hub_into_them_and_diagnostics_reach_the_cloud(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    token = cloud.add_hub(HUB_ID)
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token, extra=BROADCAST)
    site = {"village_name": "Thôn Mới", "village_code": "TM-01", "latitude": 19.8, "longitude": 105.7}
    bad = queue(cloud, HUB_ID, "settings.patch", {"site": {**site, "latitude": 123.0}})
    patch = queue(cloud, HUB_ID, "settings.patch", {"site": site})
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: all_final(cloud, 2), 30, what="the patches")
        refused = command(cloud, HUB_ID, bad)
        assert refused["status"] == "rejected"
        assert "args.site.latitude" in refused["error"]
        assert command(cloud, HUB_ID, patch)["status"] == "applied"

        def renamed() -> bool:
            try:
                return bool(hub.health()["village"] == "Thôn Mới")
            except (AssertionError, OSError, ValueError):
                return False  # restarting

        wait_until(renamed, 30, what="the hub to restart with the patched site")
        diagnostics = queue(cloud, HUB_ID, "diagnostics.request")
        wait_until(lambda: command(cloud, HUB_ID, diagnostics)["status"] in FINAL, 60, what="the diagnostics")
        answer = command(cloud, HUB_ID, diagnostics)
        assert answer["status"] == "applied", answer
    finally:
        hub.terminate()
    status, bundle = admin_request(cloud, "GET", f"/api/v1/hubs/{HUB_ID}/diagnostics/{diagnostics}")
    assert status == 200
    assert isinstance(bundle, bytes)
    assert hashlib.sha256(bundle).hexdigest() == answer["result"]["sha256"]
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        names = [Path(n).name for n in tar.getnames()]
        health = json.loads(next(tar.extractfile(m) for m in tar.getmembers() if m.name.endswith("health.json")).read())  # type: ignore[union-attr]
        everything = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]
    assert "logs.txt" in names
    assert health["village"] == "Thôn Mới"
    assert token.encode() not in everything  # redacted like the technician page's bundle
