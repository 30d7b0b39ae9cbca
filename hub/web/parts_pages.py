"""Panels of the parts that answer through bus commands: the Wi-Fi portal (clients, sessions, notices) and the
cameras (fresh snapshots for framing, recent events, the detector's rate)."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from hub.bus import CommandError
from hub.web.context import WebContext, flash

MAX_NOTICES = 10


def add_routes(app: web.Application, ctx: WebContext) -> None:
    async def ask(request: web.Request, command: str, **data: Any) -> dict[str, Any]:
        if not ctx.bus.serves(command):
            return {}
        try:
            return await ctx.bus.call(command, **data)
        except CommandError as exc:
            flash(request, "error", str(exc))
            return {}

    async def portal_page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        service = health.get("services", {}).get("portal")
        clients = await ask(request, "portal.clients")
        notices = await ask(request, "portal.notices")
        return ctx.render(
            request,
            "portal.html",
            configured=service is not None,
            portal=(service or {}).get("details", {}),
            clients=clients.get("clients", []),
            notices=notices.get("notices", []),
            announcements=notices.get("announcements", []),
        )

    async def portal_kick(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        client = str(form.get("id") or "")
        await ctx.run_command(request, "portal.kick", details={"client": client}, id=client)
        raise web.HTTPSeeOther("/portal")

    async def portal_notices(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        lines = [line.strip() for line in str(form.get("notices") or "").splitlines() if line.strip()]
        notices = lines[:MAX_NOTICES]
        saved = await ctx.run_command(request, "portal.set_notices", details={"count": len(notices)}, notices=notices)
        if saved is not None:
            _ = ctx.catalogs.gettext(ctx.language(request))
            flash(request, "ok", _("Notices saved."))
        raise web.HTTPSeeOther("/portal")

    async def cameras_page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        service = health.get("services", {}).get("camera")
        events = await ask(request, "camera.events", limit=20)
        return ctx.render(
            request,
            "cameras.html",
            configured=service is not None,
            camera=(service or {}).get("details", {}),
            events=events.get("events", []),
        )

    async def snapshot(request: web.Request) -> web.StreamResponse:
        """A fresh frame with the privacy masks applied, for framing the camera during installation."""
        name = request.match_info["camera"]
        try:
            request_data: dict[str, Any] = {"camera": name, "as": "base64"}  # "as" is a keyword in Python
            shot = await ctx.bus.call("camera.snapshot", **request_data)
        except CommandError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.Response(
            body=base64.b64decode(shot["jpeg_base64"]), content_type="image/jpeg", headers={"Cache-Control": "no-store"}
        )

    app.router.add_get("/portal", portal_page)
    app.router.add_post("/portal/kick", portal_kick)
    app.router.add_post("/portal/notices", portal_notices)
    app.router.add_get("/cameras", cameras_page)
    app.router.add_get("/cameras/{camera}/snapshot.jpg", snapshot)
