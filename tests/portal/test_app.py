"""The portal listener over real HTTP on loopback (simulated hardware: the dry firewall, made-up MACs)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.bus import CommandError, EventBus
from hub.config.settings import ManagementSection
from hub.portal.service import PortalService
from hub.portal.strings import STRINGS
from hub.store import Store
from tests.portal.conftest import StepClock, make_settings, outbox
from tests.support.processes import free_port


@contextlib.asynccontextmanager
async def running(
    store: Store, tmp_path: Path, clock: StepClock | None = None, bus: EventBus | None = None, **overrides: Any
) -> AsyncIterator[tuple[PortalService, str]]:
    port = free_port()
    settings = make_settings(port=port, **overrides)
    service = PortalService(
        settings,
        store=store,
        bus=bus or EventBus(),
        data_dir=tmp_path,
        management=ManagementSection(),
        simulated=True,
        village="Thôn Đông",
        clock=clock,
    )
    await service.start()
    task = asyncio.create_task(service.run())
    for _ in range(500):  # run() has started once it serves its commands
        if service.bus.serves("portal.clients"):
            break
        await asyncio.sleep(0.01)
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.stop()


def client() -> aiohttp.ClientSession:
    # Browsers keep cookies from a bare IP address (the portal's URL); aiohttp does only when told to.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def connect(http: aiohttp.ClientSession, base: str, **form: str) -> aiohttp.ClientResponse:
    page = await (await http.get(base + "/")).text()
    token = page.split('name="token" value="')[1].split('"')[0]
    return await http.post(base + "/connect", data={"token": token, "accept": "1", **form}, allow_redirects=False)


PROBE_PATHS = [
    "/generate_204",
    "/gen_204",
    "/hotspot-detect.html",
    "/library/test/success.html",
    "/connecttest.txt",
    "/ncsi.txt",
    "/success.txt",
    "/canonical.html",
]


async def test_probes_before_and_after_admission(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path) as (_service, base), client() as http:
        for path in PROBE_PATHS:
            r = await http.get(base + path, allow_redirects=False, headers={"Host": "connectivitycheck.gstatic.com"})
            assert r.status == 302, path
            assert r.headers["Location"] == base + "/", path
        api = await http.get(base + "/api/captive", headers={"Accept": "application/captive+json"})
        assert api.headers["Content-Type"].startswith("application/captive+json")
        assert "no-store" in api.headers["Cache-Control"]
        assert json.loads(await api.text()) == {"captive": True, "user-portal-url": base + "/"}

        assert (await connect(http, base)).status == 303

        expected = {
            "/generate_204": (204, ""),
            "/hotspot-detect.html": (200, "Success"),
            "/connecttest.txt": (200, "Microsoft Connect Test"),
            "/ncsi.txt": (200, "Microsoft NCSI"),
            "/success.txt": (200, "success\n"),
        }
        for path, (status, body) in expected.items():
            r = await http.get(base + path, allow_redirects=False)
            assert r.status == status, path
            assert body in await r.text(), path
        api_body = json.loads(await (await http.get(base + "/api/captive")).text())
        assert api_body["captive"] is False
        assert 86_000 < api_body["seconds-remaining"] <= 86_400
        assert api_body["can-extend-session"] is True
        page = await (await http.get(base + "/")).text()
        assert STRINGS["vi"]["connected"] in page
        assert STRINGS["vi"]["renew"] in page
        # A request for another site that still reaches the portal (an old connection) is sent there again.
        r = await http.get(base + "/some/page", headers={"Host": "example.org"}, allow_redirects=False)
        assert r.status == 302
        assert r.headers["Location"] == "http://example.org/some/page"
        assert r.headers.get("Connection", "").lower() == "close"


async def test_splash_page_vietnamese_english_and_no_outside_assets(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path) as (_service, base), client() as http:
        r = await http.get(base + "/")
        page = await r.text()
        assert r.status == 200
        assert '<html lang="vi">' in page
        assert "Thôn Đông" in page
        assert "Kết nối" in page
        assert "Điều khoản sử dụng" in page
        assert "Content-Security-Policy" in r.headers
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        # Nothing is fetched from anywhere: no scripts, no links to stylesheets or images, no other origin.
        for needle in ("<script", "<link", "<img", "src=", "https://", "//fonts"):
            assert needle not in page, needle
        assert len(page.encode()) < 12_000  # light, for a cheap phone on a busy network
        # The one inline style is allowed by its hash: the page is styled, and nothing else inline would be.
        style = page.split("<style>")[1].split("</style>")[0]
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in r.headers["Content-Security-Policy"]
        assert "&#34;" not in style
        r = await http.get(base + "/lang/en")
        page = await r.text()
        assert '<html lang="en">' in page
        assert "Connect" in page
        assert "Terms of use" in page
        r = await http.get(base + "/lang/vi")
        assert '<html lang="vi">' in await r.text()


async def test_cannot_admit_another_device(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path) as (service, base), client() as http:
        r = await connect(http, base, ip="10.77.0.99", mac="aa:bb:cc:dd:ee:ff")
        assert r.status == 303
        r = await http.post(
            base + "/connect",
            data={"accept": "1", "token": "1.x"},
            headers={"X-Forwarded-For": "10.77.0.50", "X-Real-IP": "10.77.0.50"},
            allow_redirects=False,
        )
        assert r.status == 400  # a forged form token
        clients = (await service.bus.call("portal.clients"))["clients"]
        assert [c["ip"] for c in clients] == ["127.0.0.1"]
        assert clients[0]["mac"].count("••") == 2


async def test_must_accept_the_terms(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path) as (service, base), client() as http:
        page = await (await http.get(base + "/")).text()
        token = page.split('name="token" value="')[1].split('"')[0]
        r = await http.post(base + "/connect", data={"token": token}, allow_redirects=False)
        assert r.status == 400
        assert STRINGS["vi"]["must_accept"] in await r.text()
        assert service.admission.active() == []


async def test_abuse_limits(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path, requests_per_minute=60) as (service, base), client() as http:
        r = await http.post(base + "/connect", data={"blob": "x" * 20_000}, allow_redirects=False)
        assert r.status == 413
        r = await http.get(base + "/" + "a" * 5000, allow_redirects=False)
        assert r.status in (400, 414)
        r = await http.request("PUT", base + "/", allow_redirects=False)
        assert r.status == 405
        statuses = [(await http.get(base + "/generate_204", allow_redirects=False)).status for _ in range(40)]
        assert 429 in statuses
        assert statuses[0] == 302
        assert service.app.limiter.refused > 0


async def test_full_network_says_so(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path, max_clients=1) as (service, base), client() as http:
        await service.admission.admit("10.0.0.9", "02:00:00:00:00:09")
        r = await connect(http, base)
        assert r.status == 503
        assert "quá đông" in await r.text()


async def test_bus_commands_notices_and_announcements(store: Store, tmp_path: Path) -> None:
    bus = EventBus()

    async def recent(data: dict[str, Any]) -> dict[str, Any]:
        assert data["limit"] == 5
        return {
            "entries": [
                {"title": "Bản tin sáng", "outcome": "played", "started_at": "2026-11-24T05:00:00+07:00"},
                {"title": "Thử loa", "outcome": "failed", "started_at": "2026-11-24T06:00:00+07:00"},
            ]
        }

    bus.serve("broadcast.log", recent)
    async with running(store, tmp_path, bus=bus) as (service, base), client() as http:
        answer = await bus.call("portal.set_notices", notices=["Họp thôn 19h tối nay", {"text": "  Tiêm phòng  "}])
        assert [n["text"] for n in answer["notices"]] == ["Họp thôn 19h tối nay", "Tiêm phòng"]
        page = await (await http.get(base + "/")).text()
        assert "Họp thôn 19h tối nay" in page
        assert "Bản tin sáng" in page
        assert "05:00 24/11" in page
        assert "Thử loa" not in page  # it never played
        with pytest.raises(CommandError):
            await bus.call("portal.set_notices", notices="not a list")
        with pytest.raises(CommandError):
            await bus.call("portal.set_notices", notices=["x" * 501])
        assert outbox(store, "portal.notices_set")[0]["count"] == 2
        # Kicking by address and by id.
        assert (await connect(http, base)).status == 303
        [admitted] = (await bus.call("portal.clients"))["clients"]
        kicked = await bus.call("portal.kick", id=admitted["id"], who="tech")
        assert kicked["kicked"]["ip"] == "127.0.0.1"
        with pytest.raises(CommandError):
            await bus.call("portal.kick", ip="127.0.0.1")
        health = service.health()
        assert health["admitted"] == 0
        assert health["sessions_today"] == 1
        assert health["table_present"] is True
        assert health["listen"] == base + "/"
        assert health["firewall"]["backend"] == "dry"
    # The notices outlive the service.
    async with running(store, tmp_path) as (service, base), client() as http:
        assert "Tiêm phòng" in await (await http.get(base + "/")).text()


async def test_without_a_broadcast_service_the_page_still_shows(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path) as (service, base), client() as http:
        r = await http.get(base + "/")
        assert r.status == 200
        assert STRINGS["vi"]["no_notices"] in await r.text()
        assert service.announcements == []


async def test_generated_files(store: Store, tmp_path: Path) -> None:
    async with running(store, tmp_path, ssid="Wi-Fi Thôn Đông"):
        pass
    files = {p.name: p.read_text() for p in (tmp_path / "portal").iterdir()}
    assert set(files) == {"hostapd.conf", "dnsmasq.conf", "wifi.env", "nftables.nft"}
    assert "ssid2=" + "Wi-Fi Thôn Đông".encode().hex() in files["hostapd.conf"]
    assert 'dhcp-option=114,"http://127.0.0.1:' in files["dnsmasq.conf"]
    assert "table inet village_hub_portal" in files["nftables.nft"]
