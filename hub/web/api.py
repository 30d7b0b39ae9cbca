"""The local API: the services' commands as JSON over HTTP, for a technician's script or a phone app on the
management network. Same rules as the page: a session, the CSRF token in the X-CSRF-Token header, every call
audited; "who" is always the logged-in technician, never what the body claims.

    POST /api/commands/lighting.override   {"circuit": "đèn đường", "on": true, "until": "2026-11-24T23:00"}
    GET  /api/commands                     the commands this hub answers right now
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.bus import CommandError, NoHandlerError
from hub.web.context import WebContext

# What the local API may run. Media uploads go through /broadcast/media (streamed), not through here.
ALLOWED = (
    "broadcast.upsert_programme",
    "broadcast.delete_programme",
    "broadcast.upsert_schedule",
    "broadcast.delete_schedule",
    "broadcast.list",
    "broadcast.log",
    "broadcast.play_now",
    "broadcast.cap",
    "broadcast.start_live",
    "broadcast.stop_live",
    "broadcast.stop_all",
    "broadcast.test_zone",
    "broadcast.media_list",
    "broadcast.media_remove",
    "lighting.override",
    "lighting.cancel_override",
    "irrigation.run",
    "relays.test",
    "portal.clients",
    "portal.kick",
    "portal.notices",
    "portal.set_notices",
    "camera.events",
)
READ_ONLY = {
    "broadcast.list",
    "broadcast.log",
    "broadcast.media_list",
    "portal.clients",
    "portal.notices",
    "camera.events",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def add_routes(app: web.Application, ctx: WebContext) -> None:
    async def available(request: web.Request) -> web.StreamResponse:
        return web.json_response({"commands": [c for c in ALLOWED if ctx.bus.serves(c)]}, dumps=_dumps)

    async def run(request: web.Request) -> web.StreamResponse:
        command = request.match_info["command"]
        if command not in ALLOWED:
            return web.json_response({"error": f"no command {command!r} in the local API"}, status=404)
        if request.content_type != "application/json":
            return web.json_response({"error": "send the arguments as a JSON object (application/json)"}, status=415)
        try:
            data = await request.json()
        except ValueError as exc:
            return web.json_response({"error": f"the body is not JSON: {exc}"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"error": "the body must be a JSON object of arguments"}, status=400)
        data = {k: v for k, v in data.items() if k not in ("who", "chunks", "timeout")}
        shown = {k: (v if len(str(v)) <= 300 else str(v)[:300] + "…") for k, v in data.items()}  # a CAP document
        try:
            result = await ctx.bus.call(command, **data, who=ctx.actor(request))
        except NoHandlerError as exc:
            if command not in READ_ONLY:
                await ctx.audit(request, f"api.{command}", error=str(exc))
            return web.json_response({"error": str(exc)}, status=503)
        except CommandError as exc:
            await ctx.audit(request, f"api.{command}", arguments=shown, error=str(exc))
            return web.json_response({"error": str(exc)}, status=400)
        except TypeError as exc:  # an argument name the command does not take
            return web.json_response({"error": f"bad arguments for {command}: {exc}"}, status=400)
        if command not in READ_ONLY:
            await ctx.audit(request, f"api.{command}", arguments=shown)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    app.router.add_get("/api/commands", available)
    app.router.add_post("/api/commands/{command}", run)
