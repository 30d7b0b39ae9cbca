"""The live-sessions panel: who is watching a camera or speaking on the loudspeakers right now, and a way to
end it (a technician on site may need the loudspeakers back, or a camera view to stop)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.bus import CommandError
from hub.web.context import WebContext, flash


def add_routes(app: web.Application, ctx: WebContext) -> None:
    async def live_page(request: web.Request) -> web.StreamResponse:
        service = ctx.health().get("services", {}).get("live")
        listing: dict[str, Any] = {}
        if ctx.bus.serves("live.list"):
            try:
                listing = await ctx.bus.call("live.list")
            except CommandError as exc:
                flash(request, "error", str(exc))
        return ctx.render(
            request,
            "live.html",
            configured=service is not None,
            live=(service or {}).get("details", {}),
            sessions=listing.get("sessions", []),
            ended=listing.get("ended", []),
        )

    async def live_stop(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        session = str(form.get("session") or "")
        if await ctx.run_command(request, "live.stop", session=session) is not None:
            _ = ctx.catalogs.gettext(ctx.language(request))
            flash(request, "ok", _("Live session stopped."))
        raise web.HTTPSeeOther("/live")

    app.router.add_get("/live", live_page)
    app.router.add_post("/live/stop", live_stop)
