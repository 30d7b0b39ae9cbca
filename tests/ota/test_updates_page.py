"""The technician page's updates panel: versions, slot, last result, why it waits; buttons with CSRF that reach
the real update service's commands (here on a hub not installed in slots, which refuses and says why)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from hub.bus import EventBus
from hub.config.settings import ManagementSection
from hub.updates.service import UpdateService
from hub.updates.settings import OtaSettings
from hub.web.server import ManagementServer
from tests.support.web import health_report, make_context, service_report
from tests.web.test_access import csrf_of, login, set_password

DETAILS = {
    "mode": "slots",
    "version": "0.9.1",
    "slot": "b",
    "previous_slot": "a",
    "previous_version": "0.9.0",
    "trial": None,
    "last_result": {"result": "rolled-back", "failed_version": "0.9.2", "reason": "not healthy within 120 s", "at": 1},
    "phase": "waiting",
    "waiting": "a broadcast is playing (họp thôn)",
    "last_check": {"at": 1, "result": "available", "version": "0.9.2"},
    "staged": {"slot": "a", "version": "0.9.3"},
    "window": "01:00-04:00",
}


def health() -> dict[str, Any]:
    return health_report({"ota": service_report(DETAILS)}, version="0.9.1")


async def test_updates_panel_shows_the_slots_and_the_buttons_reach_the_service(tmp_path: Path) -> None:
    bus = EventBus()
    context = make_context(tmp_path, health, bus)
    service = UpdateService(
        OtaSettings.model_validate({"root": str(tmp_path / "root")}, strict=False),
        context.store,
        bus,
        health=health,
        request_restart=lambda why: None,
        data_dir=tmp_path,
        config_path=tmp_path / "hub.toml",
        prefix=str(tmp_path / "venv"),
    )
    task = asyncio.create_task(service.run())
    client = TestClient(TestServer(ManagementServer(ManagementSection(), context).build_app()))
    await client.start_server()
    try:
        await set_password(client)
        await login(client)
        page = await client.get("/updates")
        html = await page.text()
        assert page.status == 200
        for text in ("0.9.1", "0.9.0", "0.9.2", "not healthy within 120 s", "a broadcast is playing (họp thôn)"):
            assert text in html
        assert 'id="ota-slot">b<' in html
        assert 'href="/updates"' in html  # in the navigation
        refused = await client.post("/updates/install", data={"csrf_token": "wrong"}, allow_redirects=False)
        assert refused.status == 403
        answer = await client.post("/updates/install", data={"csrf_token": csrf_of(html)})
        assert "does not run from an update slot" in await answer.text()
        overview = await (await client.get("/")).text()
        assert '<a href="/updates">b</a>' in overview
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        context.store.close()
