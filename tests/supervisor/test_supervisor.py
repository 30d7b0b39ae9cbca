"""The supervisor restarts a crashing service with growing delays while the others keep working."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from hub.bus import EventBus
from hub.config.settings import ManagementSection, SupervisorSection
from hub.service import Service
from hub.supervisor import Supervisor
from hub.web.server import ManagementServer
from tests.support.processes import free_port
from tests.support.web import make_context


class Flaky(Service):
    """Crashes a little after every start; recovers after `crashes` crashes."""

    name = "flaky"

    def __init__(self, crashes: int) -> None:
        super().__init__()
        self.crashes_left = crashes
        self.starts: list[float] = []
        self.stops = 0

    async def start(self) -> None:
        self.starts.append(time.monotonic())

    async def run(self) -> None:
        await asyncio.sleep(0.02)
        if self.crashes_left > 0:
            self.crashes_left -= 1
            raise RuntimeError(f"relay board not answering ({self.crashes_left} left)")
        while True:
            self.beat()
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.stops += 1


class Ticker(Service):
    name = "ticker"
    critical = True

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            self.beat()
            await asyncio.sleep(0.02)

    def health(self) -> dict[str, Any]:
        return {"ticks": self.ticks}


async def test_crashing_service_restarts_with_backoff_while_health_keeps_serving(tmp_path: Path) -> None:
    settings = SupervisorSection(restart_initial_s=0.1, restart_max_s=0.8, stable_after_s=30, heartbeat_timeout_s=5)
    flaky = Flaky(crashes=5)
    ticker = Ticker()
    supervisor: Supervisor

    def health() -> dict[str, Any]:
        return {"status": "ok", "problems": [], "services": supervisor.health()}

    port = free_port()
    bus = EventBus()
    context = make_context(tmp_path, health, bus)
    web = ManagementServer(ManagementSection(host="127.0.0.1", port=port), context)
    crashes = bus.subscribe("supervisor.service_crashed")
    supervisor = Supervisor([web, ticker, flaky], settings, bus)
    supervisor.start()
    assert await supervisor.wait_running(5)
    seen_states = set()
    answers = 0
    try:
        headers = {"Authorization": f"Bearer {context.local_token}"}
        async with aiohttp.ClientSession(headers=headers) as client:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                async with client.get(f"http://127.0.0.1:{port}/api/health") as response:
                    assert response.status == 200
                    report = await response.json()
                answers += 1
                seen_states.add(report["services"]["flaky"]["state"])
                assert report["services"]["ticker"]["state"] == "running"
                if report["services"]["flaky"]["state"] == "running" and report["services"]["flaky"]["restarts"] == 5:
                    break
                await asyncio.sleep(0.03)
            else:
                raise AssertionError(f"flaky never recovered: {report['services']['flaky']}")
        flaky_report = report["services"]["flaky"]
        assert flaky_report["restarts"] == 5
        assert "relay board not answering" in flaky_report["last_error"]
        assert "backoff" in seen_states
        assert answers > 20  # the web service answered all along
        gaps = [b - a for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)]
        # each delay doubles from 0.1 s up to the 0.8 s cap (plus the ~0.02 s the service ran)
        expected = [0.1, 0.2, 0.4, 0.8, 0.8]
        for gap, want in zip(gaps, expected, strict=True):
            assert want <= gap < want + 0.25, (gaps, expected)
        assert flaky.stops == 5  # stop() was called after each crash to release resources
        messages = [crashes.queue.get_nowait() for _ in range(crashes.queue.qsize())]
        assert [m.data["delay"] for m in messages] == expected
        assert ticker.ticks > 100
        ok, _ = supervisor.watchdog_ok()
        assert ok  # flaky is not critical: its crashes never stopped the watchdog
    finally:
        await supervisor.stop(timeout=2)
        context.store.close()
    assert supervisor.status("web").state == "stopped"


class Silent(Service):
    name = "silent"
    critical = True

    async def run(self) -> None:
        await asyncio.sleep(3600)  # never beats


async def test_silent_critical_service_stops_the_watchdog() -> None:
    settings = SupervisorSection(heartbeat_timeout_s=0.3)
    supervisor = Supervisor([Silent(), Ticker()], settings, EventBus())
    supervisor.start()
    try:
        await supervisor.wait_running(2)
        assert supervisor.watchdog_ok()[0]
        await asyncio.sleep(0.5)
        ok, reason = supervisor.watchdog_ok()
        assert not ok
        assert "silent" in reason
        assert "no heartbeat" in supervisor.health()["silent"]["problems"][0]
        assert supervisor.health()["ticker"]["ok"]
    finally:
        await supervisor.stop(timeout=1)


class Stubborn(Service):
    name = "stubborn"

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(0.05)  # cleans up, then lets the cancellation through
                raise


async def test_stop_is_prompt() -> None:
    supervisor = Supervisor([Ticker(), Stubborn()], SupervisorSection(), EventBus())
    supervisor.start()
    await supervisor.wait_running(2)
    started = time.monotonic()
    await supervisor.stop(timeout=1)
    assert time.monotonic() - started < 1.0
    assert all(h["state"] == "stopped" for h in supervisor.health().values())


class SlowToRelease(Service):
    """Crashes once; its stop() (releasing the hardware) takes until the test lets it finish."""

    name = "slow_release"

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False
        self.releasing = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self) -> None:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("amplifier relay stuck")
        while True:
            self.beat()
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if not self.release.is_set():
            self.releasing.set()
            await self.release.wait()


async def test_a_crashed_service_is_not_reported_running_while_it_releases_its_resources() -> None:
    service = SlowToRelease()
    bus = EventBus()
    supervisor = Supervisor([service], SupervisorSection(restart_initial_s=0.05), bus)
    supervisor.start()
    try:
        await asyncio.wait_for(service.releasing.wait(), 2)
        running = bus.subscribe("supervisor.service_running")  # the first start came before: only the restart counts
        report = supervisor.health()["slow_release"]
        assert report["restarts"] == 1
        assert report["state"] != "running", report
        assert "amplifier relay stuck" in report["last_error"]
        service.release.set()
        await asyncio.wait_for(running.queue.get(), 2)
        assert supervisor.health()["slow_release"]["state"] == "running"
    finally:
        service.release.set()
        await supervisor.stop(timeout=1)
