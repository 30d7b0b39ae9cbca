"""The operator console in a real headless Chromium (Debian's, through Playwright) against a real `hub-cloud serve`:
log in, send an announcement, see it queued; the live view's script builds a real WebRTC offer and queues it."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cloud.conftest import CloudServer
from tests.support.browser import chromium

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

playwright_api = pytest.importorskip("playwright.sync_api")

TEXT = "Thông báo của xã: sáng mai họp thôn lúc 8 giờ"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def commands(cloud: CloudServer, hub_id: str) -> list[dict[str, Any]]:
    rows = cloud.request("GET", f"/api/v1/hubs/{hub_id}/commands", token=cloud.admin_token).json()["commands"]
    assert isinstance(rows, list)
    return rows


def test_log_in_send_an_announcement_and_open_the_live_view(browser: Any, cloud: CloudServer) -> None:
    hub_id = f"thon-{uuid.uuid4().hex[:8]}"
    cloud.register(hub_id)
    context = browser.new_context(locale="en-US")  # the English texts below; Vietnamese: the test after this one
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{cloud.base_url}/operator/hubs/{hub_id}")
    assert "/operator/login" in page.url
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == "Wrong admin token."
    page.fill("input[name=token]", cloud.admin_token)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/operator/hubs/{hub_id}")

    page.fill("#announce textarea[name=text]", TEXT)
    page.fill("#announce input[name=zones]", "khu 1")
    page.select_option("#announce select[name=level]", "priority")
    page.click("#announce button[type=submit]")
    page.wait_for_url("**?queued=*")
    assert "queued" in page.locator(".notice").inner_text()
    row = page.locator("#commands tbody tr").first
    assert "broadcast.announce" in row.inner_text()
    assert TEXT in row.inner_text()
    (command,) = commands(cloud, hub_id)
    assert command["args"] == {"text": TEXT, "zones": ["khu 1"], "level": "priority"}

    # The live view: its external script runs under the CSP, makes a recvonly offer once ICE gathering is done,
    # queues it as live.start, and shows the hub's answer (here: a refusal, posted as the hub would).
    page.click("text=Live view")
    page.wait_for_url("**/live")
    assert page.locator("#stop").is_disabled()
    page.click("#watch")
    deadline = time.monotonic() + 20
    while len(commands(cloud, hub_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    live = commands(cloud, hub_id)[-1]
    assert live["kind"] == "live.start"
    assert live["args"]["mode"] == "camera"
    sdp = live["args"]["offer"]["sdp"]
    assert "m=video" in sdp
    assert "a=recvonly" in sdp
    hub_token = cloud.register(hub_id)  # a fresh token for the hub's side of the exchange
    result = {"status": "failed", "error": "no camera named 'default'"}
    posted = cloud.request(
        "POST", f"/api/v1/commands/{live['id']}/result", body=json.dumps(result).encode(), token=hub_token
    )
    assert posted.status == 200
    playwright_api.expect(page.locator("#status")).to_contain_text("no camera", timeout=20_000)
    assert page.locator("#watch").is_enabled()
    stop = commands(cloud, hub_id)[-1]
    assert stop["kind"] == "live.stop"
    assert stop["args"] == {"session": live["args"]["session"], "who": "operator console"}
    assert not [p for p in problems if "Content Security Policy" in p], problems
    context.close()


def test_the_console_speaks_vietnamese_by_default_and_the_toggle_switches_to_english(
    browser: Any, cloud: CloudServer
) -> None:
    """A browser that asks for Vietnamese: the pages and the live view's script speak it (the script's messages
    come from data-* attributes rendered from the catalog); the toggle turns the same page English."""
    hub_id = f"thon-{uuid.uuid4().hex[:8]}"
    cloud.register(hub_id)
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{cloud.base_url}/operator/hubs/{hub_id}/live")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert page.locator("h1").inner_text() == "Đăng nhập"
    page.fill("input[name=token]", cloud.admin_token)
    page.click("button[type=submit]")
    page.wait_for_url("**/live")
    assert page.locator("#status").inner_text() == "Chưa kết nối."
    page.click("#watch")
    playwright_api.expect(page.locator("#status")).to_contain_text(
        re.compile("đang chờ hub", re.IGNORECASE), timeout=20_000
    )
    deadline = time.monotonic() + 20
    while not commands(cloud, hub_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    (live,) = commands(cloud, hub_id)
    hub_token = cloud.register(hub_id)
    result = {"status": "rejected", "error": "no camera named 'default'"}
    posted = cloud.request(
        "POST", f"/api/v1/commands/{live['id']}/result", body=json.dumps(result).encode(), token=hub_token
    )
    assert posted.status == 200
    status = page.locator("#status")
    playwright_api.expect(status).to_contain_text("Không thành công: hub trả lời bị từ chối", timeout=20_000)
    assert "no camera named 'default'" in status.inner_text()  # the hub's own words, as it sent them

    page.click("#lang-toggle")
    page.wait_for_url(f"**/operator/hubs/{hub_id}/live")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#watch").inner_text() == "Watch the camera"
    assert page.locator("#status").inner_text() == "Idle."
    page.click("#lang-toggle")
    page.wait_for_url(f"**/operator/hubs/{hub_id}/live")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert not problems, problems
    context.close()
