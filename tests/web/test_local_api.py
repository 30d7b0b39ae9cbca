"""The local API: service commands as JSON, with a session and the CSRF header, audited, against the real
lighting service on the same bus and store."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.bus import EventBus
from hub.config.settings import ManagementSection
from hub.lighting.service import LightingService
from hub.store import Store
from hub.web import audit, auth_routes
from hub.web.server import ManagementServer
from tests.lighting.village import PLACE, STREET, lighting
from tests.support.web import make_context

PASSWORD = "đèn-đường-2026"


def health() -> dict[str, Any]:
    return {"status": "ok", "problems": [], "services": {}}


@pytest.fixture(autouse=True)
def no_login_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_routes, "FAILED_LOGIN_DELAY_S", 0.0)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Store, str]]:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    store = Store.open(tmp_path / "data")
    service = LightingService(lighting(), PLACE, store, bus)
    task = asyncio.create_task(service.run())
    context = make_context(tmp_path, health, bus, store=store)
    client = TestClient(TestServer(ManagementServer(ManagementSection(), context).build_app()))
    await client.start_server()
    page = await client.get("/setup")
    token = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert token
    await client.post(
        "/setup",
        data={"csrf_token": token.group(1), "user": "kythuat", "password": PASSWORD, "confirm": PASSWORD},
    )
    overview = await client.get("/wizard")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', await overview.text())
    assert csrf
    try:
        for _ in range(500):  # the service serves its commands once its run() has begun
            if bus.serves("lighting.override"):
                break
            await asyncio.sleep(0.01)
        yield client, store, csrf.group(1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        store.close()


async def test_a_command_runs_with_the_session_user_and_is_audited(served: Any) -> None:
    client, store, csrf = served
    listed = await (await client.get("/api/commands")).json()
    assert "lighting.override" in listed["commands"]
    assert "irrigation.run" not in listed["commands"]  # nothing serves it on this hub
    response = await client.post(
        "/api/commands/lighting.override",
        json={"circuit": STREET, "on": True, "until": "2099-01-01T23:00", "who": "somebody else"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["result"]["circuit"] == STREET
    assert answer["result"]["who"] == "kythuat"  # the session's user, not the body's claim
    rows = store.query("SELECT actor, action FROM audit WHERE action LIKE 'api.%'")
    assert rows == [("kythuat", "api.lighting.override")]


async def test_refusals_are_clear_and_change_nothing(served: Any) -> None:
    client, store, csrf = served
    headers = {"X-CSRF-Token": csrf}
    unknown = await client.post(
        "/api/commands/lighting.override", json={"circuit": "đèn ma", "on": True}, headers=headers
    )
    assert unknown.status == 400
    assert "unknown circuit 'đèn ma'" in (await unknown.json())["error"]
    missing = await client.post("/api/commands/irrigation.run", json={"seconds": 5}, headers=headers)
    assert missing.status == 503
    not_allowed = await client.post("/api/commands/relays.apply", json={"desired": {}}, headers=headers)
    assert not_allowed.status == 404
    not_json = await client.post("/api/commands/lighting.override", data="on", headers=headers)
    assert not_json.status == 415
    no_csrf = await client.post("/api/commands/lighting.override", json={"circuit": STREET, "on": True})
    assert no_csrf.status == 403
    assert store.get_state("lighting.overrides", {}) in ({}, None)


async def page_csrf(client: TestClient[web.Request, web.Application], path: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', await (await client.get(path)).text())
    assert token, path
    return token.group(1)


async def test_technician_page_buttons_run_commands_in_the_users_name_and_audit_the_outcome(served: Any) -> None:
    client, store, _ = served
    token = await page_csrf(client, "/lighting")
    done = await client.post(
        "/lighting/override", data={"csrf_token": token, "circuit": STREET, "state": "on", "until": "2099-01-01T23:00"}
    )
    assert done.status == 200  # followed the redirect back to the lighting page
    assert 'class="flash ok"' in await done.text()
    assert store.get_state("lighting.overrides", {})[STREET]["who"] == "kythuat"
    refused = await client.post("/lighting/cancel", data={"csrf_token": token, "circuit": "đèn ma"})
    assert "unknown circuit 'đèn ma'" in html.unescape(await refused.text())  # the service's words, on the page
    entries = {row["action"]: row["details"] for row in audit.recent(store, 10)}
    assert entries["lighting.override"]["circuit"] == STREET
    assert entries["lighting.override"]["until"].startswith("2099-01-01T23:00:00")  # as the service resolved it
    assert "unknown circuit 'đèn ma'" in entries["lighting.cancel_override"]["error"]


async def test_irrigation_form_names_a_duration_that_is_not_a_number(served: Any) -> None:
    client, store, _ = served
    token = await page_csrf(client, "/sensors")
    response = await client.post("/irrigation/run", data={"csrf_token": token, "seconds": "mười"})
    assert response.status == 200
    shown = html.unescape(await response.text())
    assert "Số giây: 'mười' không phải là một số giây nguyên." in shown  # the page speaks Vietnamese by default
    assert not [row for row in audit.recent(store, 10) if row["action"] == "irrigation.run"]  # nothing was run
