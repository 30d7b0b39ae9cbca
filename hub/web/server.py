"""The management listener: health for systemd/Docker/`hub doctor`, and the home of the technician page.

It binds only the management address (127.0.0.1 unless configured): the public Wi-Fi side never reaches it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from hub.config.settings import ManagementSection
from hub.service import Service

log = logging.getLogger(__name__)

HealthProvider = Callable[[], dict[str, Any]]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


class ManagementServer(Service):
    name = "web"
    critical = True

    def __init__(self, settings: ManagementSection, health: HealthProvider) -> None:
        super().__init__()
        self.settings = settings
        self._health = health
        self._runner: web.AppRunner | None = None
        self.bound: list[str] = []
        self.requests = 0

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/api/health", self.api_health)
        app.router.add_get("/", self.index)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        self.requests += 1
        response: web.StreamResponse = await handler(request)
        return response

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, reuse_address=True)
        await site.start()
        self.bound = [str(s) for s in self._runner.addresses]
        log.info("management listener on http://%s:%d/", self.settings.host, self.settings.port)

    async def run(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def health(self) -> dict[str, Any]:
        return {"listen": f"{self.settings.host}:{self.settings.port}", "requests": self.requests}

    async def healthz(self, request: web.Request) -> web.Response:
        report = self._health()
        if report["status"] == "failing":
            return web.Response(status=503, text="failing: " + "; ".join(report["problems"]) + "\n")
        return web.Response(text=f"{report['status']}\n")

    async def api_health(self, request: web.Request) -> web.Response:
        return web.json_response(self._health(), dumps=_dumps)

    async def index(self, request: web.Request) -> web.Response:
        page = resources.files("hub.web").joinpath("static/index.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html", charset="utf-8")
