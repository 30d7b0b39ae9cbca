"""The captive portal's web app: the splash page, the OS probes, the RFC 8908 API — and nothing else.

It runs on its own listener, bound to the hub's Wi-Fi address only. Every path that is not the portal's answers
with the portal (a redirect to it), so the listener can never show anything of the technician page or the
local API. Who a visitor is comes from the connection (its source address) and the kernel's neighbour table
(its MAC), never from what the visitor sends: nobody can admit another device.

Captive-portal detection, per operating system (probe -> what "no portal" looks like):
  Android, Chrome OS, Chrome   /generate_204, /gen_204         -> 204 No Content
  Apple (iOS, macOS)           /hotspot-detect.html,            -> 200 "<HTML>…Success…</HTML>"
                               /library/test/success.html
  Windows                      /connecttest.txt, /ncsi.txt     -> 200 "Microsoft Connect Test" / "Microsoft NCSI"
                               /redirect                        -> (its "open the browser" URL) the portal
  Firefox                      /success.txt, /canonical.html   -> 200 "success\\n" / its canonical page
Before admission each of them gets a 302 to the portal, which every one of those systems takes as "captive",
and opens the portal in its sign-in window. After admission, port 80 is no longer redirected so the probes reach
their real servers; the answers above are for a probe that still reaches the portal (a reused connection).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from drivers.wifi import Neighbours
from hub.portal.admission import Admission, Refused, Session
from hub.portal.settings import PortalSettings
from hub.portal.strings import DEFAULT_LANGUAGE, LANGUAGES, duration, speed, strings

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
CSS = (TEMPLATES / "portal.css").read_text(encoding="utf-8").strip()
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; img-src data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
LANG_COOKIE = "portal_lang"
MAX_BODY_BYTES = 8 * 1024
TOKEN_TTL_S = 6 * 3600
CAPTIVE_JSON = "application/captive+json"
BUCKETS_KEPT = 4096
POST_COST = 4.0

APPLE_SUCCESS = "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
FIREFOX_CANONICAL = '<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>'
# path -> (status, body, content type) when the visitor is admitted; every one is a redirect when not.
PROBES: dict[str, tuple[int, str, str]] = {
    "/generate_204": (204, "", "text/plain"),
    "/gen_204": (204, "", "text/plain"),
    "/hotspot-detect.html": (200, APPLE_SUCCESS, "text/html"),
    "/library/test/success.html": (200, APPLE_SUCCESS, "text/html"),
    "/connecttest.txt": (200, "Microsoft Connect Test", "text/plain"),
    "/ncsi.txt": (200, "Microsoft NCSI", "text/plain"),
    "/success.txt": (200, "success\n", "text/plain"),
    "/canonical.html": (200, FIREFOX_CANONICAL, "text/html"),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Notice:
    text: str


class RateLimiter:
    """A token bucket per client address: `per_minute` sustained, a quarter of it at once."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(10.0, per_minute / 4)
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def allow(self, key: str, cost: float = 1.0) -> bool:
        now = self.clock()
        tokens, at = self.buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        ok = tokens >= cost
        if ok:
            tokens -= cost
        else:
            self.refused += 1
        self.buckets[key] = (tokens, now)
        while len(self.buckets) > BUCKETS_KEPT:
            self.buckets.popitem(last=False)
        return ok


class PortalApp:
    def __init__(
        self,
        settings: PortalSettings,
        admission: Admission,
        neighbours: Neighbours,
        *,
        village: str = "",
        notices: Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = lambda: ([], []),
    ) -> None:
        self.settings = settings
        self.admission = admission
        self.neighbours = neighbours
        self.village = village
        self.notices = notices
        self.limiter = RateLimiter(settings.requests_per_minute)
        self.key = secrets.token_bytes(32)
        self.requests = 0
        self.admissions = 0
        self.refusals: dict[str, int] = {}
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True
        )
        self.hosts = {settings.host, "portal.wifi"}

    # ---- the app ------------------------------------------------------------------------------------------------

    def build(self) -> web.Application:
        app = web.Application(
            middlewares=[self._guard],
            client_max_size=MAX_BODY_BYTES,
            # Oversized requests are refused by the parser itself: a 2 KiB request line, 4 KiB per header,
            # and idle keep-alive connections closed after 15 s (a phone keeps a few open).
            handler_args={"max_line_size": 2048, "max_field_size": 4096, "keepalive_timeout": 15.0},
        )
        for path in PROBES:
            app.router.add_get(path, self.probe)
        app.router.add_get("/", self.index)
        app.router.add_post("/connect", self.connect)
        app.router.add_post("/renew", self.connect)
        app.router.add_get("/lang/{lang}", self.language)
        app.router.add_get("/api/captive", self.captive_api)
        app.router.add_route("*", "/{tail:.*}", self.elsewhere)
        app.on_response_prepare.append(self._headers)
        return app

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = "village-hub-portal"
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        if request.method not in ("GET", "HEAD", "POST"):
            return web.Response(status=405, text="method not allowed", headers={"Allow": "GET, HEAD, POST"})
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return web.Response(status=413, text="request too large")
        cost = POST_COST if request.method == "POST" else 1.0
        if not self.limiter.allow(request.remote or "?", cost):
            lang = self._lang(request)
            return web.Response(
                status=429, text=strings(lang)["too_many"], headers={"Retry-After": "10"}, charset="utf-8"
            )
        return await handler(request)

    # ---- who is asking ------------------------------------------------------------------------------------------

    def _visitor(self, request: web.Request) -> tuple[str, str | None, Session | None]:
        ip = request.remote or ""
        mac = self.neighbours.mac_for(ip)
        session = self.admission.session_for(ip, mac) if mac else None
        return ip, mac, session

    def _lang(self, request: web.Request) -> str:
        lang = request.cookies.get(LANG_COOKIE, DEFAULT_LANGUAGE)
        return lang if lang in LANGUAGES else DEFAULT_LANGUAGE

    def _ours(self, request: web.Request) -> bool:
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") else request.host
        return host in self.hosts

    def _to_portal(self) -> web.Response:
        url = self.settings.url
        return web.Response(
            status=302,
            headers={"Location": url},
            text=f'<!doctype html><a href="{url}">{url}</a>',
            content_type="text/html",
        )

    # ---- form tokens: the form must come from this portal, for this address -------------------------------------

    def _token(self, ip: str) -> str:
        stamp = str(int(time.time()))
        mac = hmac.new(self.key, f"{stamp}|{ip}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{stamp}.{mac}"

    def _token_ok(self, token: str, ip: str) -> bool:
        stamp, _, mac = token.partition(".")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOKEN_TTL_S:
            return False
        expected = hmac.new(self.key, f"{stamp}|{ip}".encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(mac, expected)

    # ---- pages --------------------------------------------------------------------------------------------------

    def _page(
        self, request: web.Request, session: Session | None, message: str = "", status: int = 200
    ) -> web.Response:
        lang = self._lang(request)
        s = strings(lang)
        notices, announcements = self.notices()
        ip = request.remote or ""
        terms = (self.settings.terms_en if lang == "en" else self.settings.terms_vi) or s["terms"].format(
            hours=f"{self.settings.session_s / 3600:g}"
        )
        quota_left = self.admission.quota_left(session.mac) if session else None
        html = self.env.get_template("splash.html").render(
            lang=lang,
            other_lang="en" if lang == "vi" else "vi",
            s=s,
            css=CSS,
            village=self.village,
            session=session,
            remaining=duration(self.admission.remaining_s(session), lang) if session else "",
            quota_left=None if quota_left is None else f"{quota_left / 1_000_000:.0f}",
            notices=notices,
            announcements=announcements,
            terms=terms,
            token=self._token(ip),
            message=message,
            down=speed(self.settings.download_kbps, lang),
            up=speed(self.settings.upload_kbps, lang),
        )
        return web.Response(status=status, text=html, content_type="text/html", charset="utf-8")

    async def index(self, request: web.Request) -> web.StreamResponse:
        if not self._ours(request):
            return await self.elsewhere(request)
        _, _, session = self._visitor(request)
        return self._page(request, session)

    async def elsewhere(self, request: web.Request) -> web.StreamResponse:
        """Any other path or host: the portal. An admitted visitor whose request still arrived here (a connection
        opened before admission) is sent to the same URL again on a new connection, which now goes out."""
        _, _, session = self._visitor(request)
        if session is not None and not self._ours(request) and request.method in ("GET", "HEAD"):
            url = f"http://{request.host}{request.path_qs}"
            return web.Response(status=302, headers={"Location": url, "Connection": "close"})
        return self._to_portal()

    async def probe(self, request: web.Request) -> web.StreamResponse:
        _, _, session = self._visitor(request)
        if session is None:
            return self._to_portal()
        status, body, content_type = PROBES[request.path]
        if status == 204:
            return web.Response(status=204)
        return web.Response(status=status, text=body, content_type=content_type)

    async def language(self, request: web.Request) -> web.StreamResponse:
        lang = request.match_info["lang"]
        response = web.HTTPSeeOther("/")
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Lax")
        raise response

    async def connect(self, request: web.Request) -> web.StreamResponse:
        lang = self._lang(request)
        s = strings(lang)
        ip, mac, session = self._visitor(request)
        try:
            form = await request.post()
        except ValueError:
            return web.Response(status=400, text="bad form")
        if form.get("accept") != "1":
            return self._page(request, session, s["must_accept"], status=400)
        if not self._token_ok(str(form.get("token") or ""), ip):
            return self._page(request, session, s["expired_form"], status=400)
        try:
            await self.admission.admit(ip, mac, lang)
        except Refused as exc:
            self.refusals[exc.code] = self.refusals.get(exc.code, 0) + 1
            log.info("portal: refused %s (%s)", ip, exc)
            text = s[f"refused_{exc.code}"].format(max=self.settings.max_clients)
            return self._page(request, session, text, status=503 if exc.code in ("full", "firewall") else 403)
        self.admissions += 1
        raise web.HTTPSeeOther("/")

    async def captive_api(self, request: web.Request) -> web.StreamResponse:
        """RFC 8908 section 5: the client's captive state, as JSON, never cached by anyone but the client."""
        _, _mac, session = self._visitor(request)
        body: dict[str, Any] = {"captive": session is None, "user-portal-url": self.settings.url}
        if session is not None:
            body["seconds-remaining"] = int(self.admission.remaining_s(session))
            body["can-extend-session"] = True
            left = self.admission.quota_left(session.mac)
            if left is not None:
                body["bytes-remaining"] = left
        return web.Response(
            text=json.dumps(body),
            content_type=CAPTIVE_JSON,
            headers={"Cache-Control": "private, no-store"},
        )
