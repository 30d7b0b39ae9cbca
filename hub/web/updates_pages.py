"""The updates panel: running and previous version, the slot, the trial, the last result, why an update waits,
and the "check now" / "install now" buttons (commands of the update service, hub/updates/service.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.web.context import WebContext, flash


def add_routes(app: web.Application, ctx: WebContext) -> None:
    async def updates_page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        service = health.get("services", {}).get("ota")
        details = (service or {}).get("details", {})
        return ctx.render(
            request,
            "updates.html",
            configured=service is not None,
            ota=details,
            problems=(service or {}).get("problems", []),
            version=health.get("version"),
        )

    def command(name: str, done: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            await request.post()
            _ = ctx.catalogs.gettext(ctx.language(request))
            if await ctx.run_command(request, name) is not None:
                flash(request, "ok", _(done))
            raise web.HTTPSeeOther("/updates")

        return handler

    app.router.add_get("/updates", updates_page)
    # msgids marked here so the catalog check sees them: _("Checking for updates.") _("Install requested.")
    app.router.add_post("/updates/check", command("ota.check_now", "Checking for updates."))
    app.router.add_post("/updates/install", command("ota.install_now", "Install requested."))
