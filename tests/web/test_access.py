"""HTTP-level access rules of the technician page: first-run password, sessions, CSRF, lockout, headers."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.bus import EventBus
from hub.config.settings import ManagementSection
from hub.web import auth_routes
from hub.web.context import WebContext
from hub.web.server import ManagementServer
from tests.support.web import health_report, make_context

PASSWORD = "đèn-đường-2026"
PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/login"), ("GET", "/setup"), ("POST", "/setup")}


def health() -> dict[str, Any]:
    return health_report()


@pytest.fixture(autouse=True)
def no_login_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_routes, "FAILED_LOGIN_DELAY_S", 0.0)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], WebContext]]:
    context = make_context(tmp_path, health, EventBus())
    server = ManagementServer(ManagementSection(), context)
    context.local_token = "local-token-for-the-test"
    client = TestClient(TestServer(server.build_app()))
    await client.start_server()
    try:
        yield client, context
    finally:
        await client.close()
        context.store.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def set_password(client: TestClient[web.Request, web.Application]) -> None:
    page = await client.get("/setup")
    token = csrf_of(await page.text())
    response = await client.post(
        "/setup",
        data={"csrf_token": token, "user": "kythuat", "password": PASSWORD, "confirm": PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()


async def login(client: TestClient[web.Request, web.Application], password: str = PASSWORD) -> Any:
    page = await client.get("/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/login", data={"csrf_token": token, "user": "kythuat", "password": password}, allow_redirects=False
    )


async def test_first_visit_must_set_the_password_and_only_once(served: Any) -> None:
    client, context = served
    response = await client.get("/", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/setup"
    assert not context.credentials.is_set()
    page = await client.get("/setup")
    token = csrf_of(await page.text())
    short = await client.post(
        "/setup", data={"csrf_token": token, "user": "kythuat", "password": "abc", "confirm": "abc"}
    )
    assert short.status == 400
    assert "at least 8 characters" in await short.text()
    assert not context.credentials.is_set()
    await set_password(client)
    assert context.credentials.is_set()
    assert (context.data_dir / "technician.json").stat().st_mode & 0o777 == 0o600
    client.session.cookie_jar.clear()
    # A second visitor cannot set it again.
    page = await client.get("/setup", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/login"
    again = await client.post(
        "/setup",
        data={"csrf_token": "x", "user": "evil", "password": "x" * 12, "confirm": "x" * 12},
        cookies={"vh_pre": "x"},
    )
    assert again.status == 409
    assert context.credentials.verify("kythuat", PASSWORD) is not None


async def test_session_cookie_is_httponly_and_samesite_strict(served: Any) -> None:
    client, _ = served
    await set_password(client)
    client.session.cookie_jar.clear()
    response = await login(client)
    assert response.status == 303
    cookie = next(h for h in response.headers.getall("Set-Cookie") if h.startswith("vh_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_every_endpoint_but_login_requires_a_session(served: Any) -> None:
    client, _ = served
    await set_password(client)
    client.session.cookie_jar.clear()
    checked = 0
    for resource in client.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or ""
        if not path or path.startswith(("/static", "/lang")):
            continue
        path = path.replace("{lang}", "en")
        for route in resource:
            method = route.method
            if method == "HEAD" or (method, path) in PUBLIC:
                continue
            response = await client.request(method, path, allow_redirects=False)
            checked += 1
            if method == "GET" and not path.startswith("/api/"):
                assert response.status == 303, (method, path, response.status)
                assert response.headers["Location"].startswith("/login"), (method, path)
            else:
                assert response.status == 401, (method, path, response.status)
    assert checked >= 20
    # the local token opens /api/health and nothing else
    headers = {"Authorization": "Bearer local-token-for-the-test"}
    assert (await client.get("/api/health", headers=headers)).status == 200
    assert (await client.get("/diagnostics.tar.gz", headers=headers, allow_redirects=False)).status == 303
    assert (await client.get("/api/health", headers={"Authorization": "Bearer wrong"})).status == 401


async def test_state_changing_request_without_csrf_token_is_refused(served: Any) -> None:
    client, context = served
    await set_password(client)
    assert (await client.get("/")).status == 200  # logged in by the first-run form
    audit_before = context.store.query("SELECT COUNT(*) FROM audit")[0][0]
    missing = await client.post("/restart", data={})
    assert missing.status == 403
    assert "CSRF" in (await missing.json())["error"]
    wrong = await client.post("/restart", data={"csrf_token": "not-the-token"})
    assert wrong.status == 403
    header_wrong = await client.post("/restart", headers={"X-CSRF-Token": "nope"})
    assert header_wrong.status == 403
    assert context.store.query("SELECT COUNT(*) FROM audit")[0][0] == audit_before  # nothing happened
    # the right token, but sent from another site's page
    token = csrf_of(await (await client.get("/")).text())
    foreign = await client.post("/restart", data={"csrf_token": token}, headers={"Origin": "http://evil.example"})
    assert foreign.status == 403
    # and the login form is protected too (login CSRF)
    client.session.cookie_jar.clear()
    response = await client.post("/login", data={"user": "kythuat", "password": PASSWORD}, allow_redirects=False)
    assert response.status == 403


async def test_lockout_after_repeated_failures_even_with_the_right_password(served: Any) -> None:
    client, context = served
    await set_password(client)
    client.session.cookie_jar.clear()
    statuses = [(await login(client, "wrong-password")).status for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = await login(client)
    assert locked.status == 429
    assert "Try again in 5 min" in await locked.text() or "thử lại sau 5 phút" in await locked.text()
    assert "vh_session" not in {c.key for c in client.session.cookie_jar}
    actions = [row[0] for row in context.store.query("SELECT action FROM audit ORDER BY id")]
    assert actions.count("login.failed") == 5
    outbox = context.store.query("SELECT kind, cls FROM outbox WHERE kind = 'technician.audit'")
    assert len(outbox) == len(actions)  # every audit entry also goes to the commune
    assert context.throttle.total_lockouts == 1


async def test_password_change_logs_out_other_sessions(served: Any) -> None:
    client, context = served
    await set_password(client)
    first_token = next(c.value for c in client.session.cookie_jar if c.key == "vh_session")
    page = await client.get("/account")
    token = csrf_of(await page.text())
    new = "một-mật-khẩu-mới-2027"
    response = await client.post(
        "/account/password",
        data={"csrf_token": token, "current": PASSWORD, "password": new, "confirm": new},
        allow_redirects=False,
    )
    assert response.status == 303
    assert context.sessions.get(first_token) is None  # the old session is gone
    assert context.credentials.verify("kythuat", new) is not None
    assert context.credentials.verify("kythuat", PASSWORD) is None


async def test_diagnostics_bundle_has_the_reports_and_no_secret(served: Any, tmp_path: Path) -> None:
    client, context = served
    context.secrets = context.secrets.model_copy(update={"cloud_token": "cloud-token-abcdef0123456789"})
    await set_password(client)
    import logging

    logging.getLogger("hub.sync.uploader").addHandler(context.logs)
    logging.getLogger("hub.sync.uploader").warning("sent with Authorization: Bearer cloud-token-abcdef0123456789")
    response = await client.get("/diagnostics.tar.gz")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/gzip"
    data = await response.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {Path(m.name).name for m in tar.getmembers()}
        texts = {Path(m.name).name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert {"health.json", "config.json", "store.json", "versions.json", "logs.txt", "system.json"} <= names
    credential = context.credentials.load()
    assert credential is not None
    for text in texts.values():
        for secret in ("cloud-token-abcdef0123456789", credential.hash, "local-token-for-the-test", PASSWORD):
            assert secret not in text
    assert "sent with Authorization" in texts["logs.txt"]  # the line is there, its secret is not
