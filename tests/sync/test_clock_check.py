"""Clock sanity: the hub's clock against the Date header of real HTTP responses (a server whose clock is set
ahead or behind), one warning record per episode, none while NTP keeps the clock."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hub.bus import EventBus
from hub.config.settings import SyncSection
from hub.store import Store
from hub.sync.clock_check import ClockCheck, parse_http_date
from hub.sync.transport import CloudTransport
from tests.support.processes import free_port


class SkewedServer:
    def __init__(self) -> None:
        self.skew_s = 0.0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        date = email.utils.formatdate(time.time() + self.skew_s, usegmt=True)
        return web.json_response({"ack_seq": 0}, headers={"Date": date})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/ingest/state", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[SkewedServer, CloudTransport, Store, EventBus]]:
    server = SkewedServer()
    await server.start()
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    store = Store.open(tmp_path)
    transport = CloudTransport(SyncSection.model_validate({"cloud_url": f"http://127.0.0.1:{server.port}"}), "t", bus)
    yield server, transport, store, bus
    await transport.close()
    store.close()
    await server.stop()


async def exchange(transport: CloudTransport) -> None:
    async with transport.request("GET", "/api/v1/ingest/state") as response:
        await response.read()


def records(store: Store) -> list[tuple[str, dict[str, Any]]]:
    return [(k, json.loads(p)) for k, p in store.query("SELECT kind, payload FROM outbox ORDER BY seq")]


async def settle(check: ClockCheck, expected: float) -> None:
    for _ in range(1000):
        if check.offset_s is not None and abs(check.offset_s - expected) < 5:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"offset {check.offset_s}, expected about {expected}")


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(round(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_a_skew_over_a_minute_warns_once_per_episode(
    rig: tuple[SkewedServer, CloudTransport, Store, EventBus],
) -> None:
    server, transport, store, bus = rig
    check = ClockCheck(store, bus, synchronised=lambda: False)
    offsets = bus.subscribe("clock.cloud_offset")
    task = asyncio.create_task(check.run())
    try:
        server.skew_s = 30.0  # under a minute: no warning
        await exchange(transport)
        await settle(check, 30)
        server.skew_s = 3600.0  # the box booted an hour behind
        for _ in range(3):
            await exchange(transport)
        await settle(check, 3600)
        await until(lambda: len(records(store)) == 1)
        [problem] = check.problems()
        assert re.search(r"differs from the cloud's by \+3[56]\d\d s and NTP is not synchronised", problem)
        server.skew_s = 0.0
        await exchange(transport)
        await settle(check, 0)
        server.skew_s = -300.0
        await exchange(transport)
        await settle(check, -300)
        await until(lambda: len(records(store)) == 3)
    finally:
        task.cancel()
    kinds = [k for k, _ in records(store)]
    assert kinds == ["clock.skew", "clock.skew_cleared", "clock.skew"]
    skew = records(store)[0][1]
    assert 3590 < skew["skew_s"] < 3610
    assert skew["trusted_tls"] is False  # plain HTTP on loopback: not a trusted time source
    published = []
    while not offsets.queue.empty():
        published.append(offsets.queue.get_nowait().data)
    assert [round(p["offset_s"], -1) for p in published][:2] == [30, 3600]
    assert check.health()["trusted_time_offset"] is None
    assert check.episodes == 2


async def test_no_warning_while_ntp_keeps_the_clock(rig: tuple[SkewedServer, CloudTransport, Store, EventBus]) -> None:
    server, transport, store, bus = rig
    check = ClockCheck(store, bus, synchronised=lambda: True)
    task = asyncio.create_task(check.run())
    try:
        server.skew_s = 600.0
        await exchange(transport)
        await settle(check, 600)
        await asyncio.sleep(0.2)  # what a warning would take to be written
    finally:
        task.cancel()
    assert records(store) == []
    assert check.problems() == []


def test_http_dates_parse_and_garbage_does_not() -> None:
    assert parse_http_date("Tue, 24 Nov 2026 16:11:30 GMT") == 1795536690.0
    assert parse_http_date("yesterday") is None
    assert parse_http_date("") is None
