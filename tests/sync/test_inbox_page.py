"""The technician page's Cloud link panel: link and enrollment state, recent commands, clock; the enrol form
(with its CSRF token) enrolls the box at a real reference cloud."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.bus import EventBus
from hub.config.settings import ManagementSection
from hub.store import Transaction
from hub.web import auth_routes
from hub.web.context import WebContext
from hub.web.server import ManagementServer
from tests.support.processes import CloudProcess
from tests.support.web import health_report, make_context, service_report
from tests.sync.cloud_admin import enrollment_code
from tests.web.test_access import csrf_of, login, set_password

HUB_ID = "thon-web"


def health() -> dict[str, Any]:
    return health_report(
        {
            "sync": service_report({"link": "connected", "last_success_at": time.time()}),
            "commands": service_report(
                {"link": "connected", "counts": {"applied": 2, "rejected": 1}, "duplicates_ignored": 3}
            ),
            "cloud_clock": service_report(
                {"offset_s": -3650.0, "ntp_synchronised": False, "skewed": True, "checked_at": time.time()},
                ["the hub's clock differs from the cloud's by -3650 s and NTP is not synchronised"],
            ),
        }
    )


@pytest.fixture(autouse=True)
def no_login_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_routes, "FAILED_LOGIN_DELAY_S", 0.0)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudProcess]:
    c = CloudProcess(tmp_path / "cloud").start()
    yield c
    c.stop()


@pytest.fixture
async def served(
    tmp_path: Path, cloud: CloudProcess
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], WebContext]]:
    context = make_context(tmp_path, health, EventBus(), sync={"cloud_url": cloud.url})
    server = ManagementServer(ManagementSection(), context)
    client = TestClient(TestServer(server.build_app()))
    await client.start_server()
    try:
        yield client, context
    finally:
        await client.close()
        context.store.close()


def _command_rows(tx: Transaction) -> None:
    rows = [
        (1, "broadcast.announce", "applied", '{"job_id": "j-1"}', None),
        (2, "irrigation.run", "rejected", None, "args.seconds: Input should be greater than or equal to 1"),
    ]
    for cid, kind, status, result, error in rows:
        tx.conn.execute(
            "INSERT INTO commands (id, kind, status, args, result, error, received_at, finished_at) "
            "VALUES (?, ?, ?, '{}', ?, ?, ?, ?)",
            (cid, kind, status, result, error, time.time(), time.time()),
        )


async def test_the_panel_shows_the_link_and_the_enrol_form_enrolls(
    served: tuple[TestClient[web.Request, web.Application], WebContext], cloud: CloudProcess
) -> None:
    client, context = served
    await context.store.write(_command_rows)
    await set_password(client)
    await login(client)
    page = await client.get("/cloud")
    assert page.status == 200
    html = await page.text()
    assert 'href="/cloud" aria-current="page"' in html
    assert "Chưa đăng ký" in html  # Vietnamese by default: "not enrolled"
    assert "args.seconds: Input should be greater than or equal to 1" in html
    assert "j-1" in html
    assert "-3650 s" in html
    assert "đồng bộ" in html

    refused = await client.post("/cloud/enroll", data={"code": "AAAA-BBBB-CCCC-DDDD"}, allow_redirects=False)
    assert refused.status == 403  # no CSRF token

    wrong = await client.post(
        "/cloud/enroll", data={"csrf_token": csrf_of(html), "code": "AAAA-BBBB-CCCC-DDDD"}, allow_redirects=False
    )
    assert wrong.status == 303
    after_wrong = await (await client.get("/cloud")).text()
    assert "unknown enrollment code" in after_wrong

    code = enrollment_code(cloud, HUB_ID)
    done = await client.post(
        "/cloud/enroll", data={"csrf_token": csrf_of(after_wrong), "code": code}, allow_redirects=False
    )
    assert done.status == 303
    after = await (await client.get("/cloud")).text()
    assert "Đã đăng ký: hộp nay dùng mã truy cập đám mây riêng của mình." in after
    assert (context.data_dir / "cloud-token").exists()
