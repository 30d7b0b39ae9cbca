"""The management listener: the technician page, the local API, and health for systemd/Docker/`hub doctor`.

It binds only the management address (127.0.0.1 unless configured): the public Wi-Fi side never reaches it.
Every path but the login, the first-run password form, the language toggle, static files and the bare /healthz
needs a technician session (or, for /api/health, the local token that only the service user and root can read).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from hub.config.settings import ManagementSection
from hub.service import Service
from hub.web import auth_routes, pages
from hub.web.context import (
    PRE_COOKIE,
    PRE_TOKEN_KEY,
    SESSION_COOKIE,
    SESSION_KEY,
    Handler,
    WebContext,
    new_pre_token,
    tokens_match,
)
from hub.web.credentials import local_token

log = logging.getLogger(__name__)

PUBLIC_PATHS = {"/healthz", "/login", "/setup"}
PUBLIC_PREFIXES = ("/static/", "/lang/")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
MAX_BODY_BYTES = 1 * 1024 * 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


class ManagementServer(Service):
    name = "web"
    critical = True

    def __init__(self, settings: ManagementSection, context: WebContext) -> None:
        super().__init__()
        self.settings = settings
        self.ctx = context
        self._runner: web.AppRunner | None = None
        self.bound: list[str] = []
        self.requests = 0
        self.denied = 0
        self.closing = asyncio.Event()

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._headers, self._authenticate, self._csrf], client_max_size=MAX_BODY_BYTES
        )
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/api/health", self.api_health)
        app.router.add_static("/static/", pages.STATIC_DIR, show_index=False, follow_symlinks=False)
        auth_routes.add_routes(app, self.ctx)
        pages.add_routes(app, self.ctx, self.closing)
        return app

    # ---- middlewares --------------------------------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        session = self.ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            request[SESSION_KEY] = session
            return await handler(request)
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            # The pre-session CSRF token: reuse the browser's, or hand out a new one with the form.
            request[PRE_TOKEN_KEY] = request.cookies.get(PRE_COOKIE) or new_pre_token()
            return await handler(request)
        if path == "/api/health" and self._local_token_ok(request):
            return await handler(request)
        self.denied += 1
        if (
            request.method == "GET"
            and not path.startswith("/api/")
            and "text/event-stream" not in request.headers.get("Accept", "")
        ):
            target = "/login" if self.ctx.credentials.is_set() else "/setup"
            raise web.HTTPSeeOther(f"{target}?next={request.path_qs}" if path != "/" else target)
        return web.json_response({"error": "login required"}, status=401)

    def _local_token_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and tokens_match(header[7:].strip(), self.ctx.local_token)

    @web.middleware
    async def _csrf(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in UNSAFE_METHODS:
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin.split("://", 1)[-1] != request.host:
            self.denied += 1
            return web.json_response({"error": f"cross-origin request from {origin} refused"}, status=403)
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type == "multipart/form-data":
            # An upload is streamed by its handler, not read whole here: its form puts the token in the URL.
            sent = request.query.get("csrf_token")
        elif sent is None and request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
        session = self.ctx.sessions.get(request.cookies.get(SESSION_COOKIE))
        expected = session.csrf if session is not None else request.cookies.get(PRE_COOKIE)
        if not tokens_match(sent, expected):
            self.denied += 1
            log.warning(
                "web: %s %s from %s refused: CSRF token missing or wrong", request.method, request.path, request.remote
            )
            return web.json_response({"error": "CSRF token missing or wrong; reload the page"}, status=403)
        return await handler(request)

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.closing.clear()
        self.ctx.local_token = local_token(self.ctx.data_dir, create=True)
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, reuse_address=True)
        await site.start()
        self.bound = [str(s) for s in self._runner.addresses]
        state = "set" if self.ctx.credentials.is_set() else "NOT SET: the first visitor sets it"
        log.info(
            "management listener on http://%s:%d/ (technician password %s)",
            self.settings.host,
            self.settings.port,
            state,
        )

    async def run(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        self.closing.set()  # live log streams end, so the runner need not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def health(self) -> dict[str, Any]:
        return {
            "listen": f"{self.settings.host}:{self.settings.port}",
            "requests": self.requests,
            "denied": self.denied,
            "password_set": self.ctx.credentials.is_set(),
            "sessions": self.ctx.sessions.count(),
            "failed_logins": self.ctx.throttle.total_failures,
            "lockouts": self.ctx.throttle.total_lockouts,
        }

    # ---- health -------------------------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness for systemd/Docker: a word, nothing else, so it can stay open without a login."""
        report = self.ctx.health()
        if report["status"] == "failing":
            return web.Response(status=503, text="failing\n")
        return web.Response(text=f"{report['status']}\n")

    async def api_health(self, request: web.Request) -> web.Response:
        return web.json_response(self.ctx.health(), dumps=_dumps)
