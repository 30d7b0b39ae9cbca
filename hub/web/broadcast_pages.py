"""The loudspeakers panel: now playing, the queue and the next programmes, test a zone, stop all, read a text
aloud, play a programme now, upload audio, and the broadcast log — all through the broadcast service's commands."""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from hub.bus import CommandError
from hub.web.context import WebContext, flash

LEVELS = ("normal", "priority", "emergency")
MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def add_routes(app: web.Application, ctx: WebContext) -> None:
    async def call(request: web.Request, command: str, audit: str, **data: Any) -> dict[str, Any] | None:
        """Run a broadcast command for the technician; a refusal is shown on the page in the service's words."""
        details = {k: v for k, v in data.items() if k != "items"}
        return await ctx.run_command(request, f"broadcast.{command}", action=audit, details=details, **data)

    async def page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        service = health.get("services", {}).get("broadcast")
        catalog: dict[str, Any] = {}
        log: list[dict[str, Any]] = []
        media: list[dict[str, Any]] = []
        if service is not None and ctx.bus.serves("broadcast.list"):
            try:
                catalog = await ctx.bus.call("broadcast.list")
                log = (await ctx.bus.call("broadcast.log", limit=20)).get("entries", [])
                if ctx.bus.serves("broadcast.media_list"):
                    media = (await ctx.bus.call("broadcast.media_list")).get("media", [])
            except CommandError as exc:
                flash(request, "error", str(exc))
        return ctx.render(
            request,
            "broadcast.html",
            broadcast=(service or {}).get("details", {}),
            configured=service is not None,
            catalog=catalog,
            log=log,
            media=media,
            levels=LEVELS,
        )

    async def stop_all(request: web.Request) -> web.StreamResponse:
        if await call(request, "stop_all", "broadcast.stop_all", reason="technician page") is not None:
            _ = ctx.catalogs.gettext(ctx.language(request))
            flash(request, "ok", _("All loudspeakers stopped."))
        raise web.HTTPSeeOther("/broadcast")

    async def test_zone(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        zone = str(form.get("zone") or "")
        if await call(request, "test_zone", "broadcast.test_zone", zone=zone) is not None:
            _ = ctx.catalogs.gettext(ctx.language(request))
            flash(request, "ok", _("{name}: a test tone is playing. Did you hear it?").format(name=zone))
        raise web.HTTPSeeOther("/broadcast")

    async def announce(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        text = str(form.get("text") or "")
        level = str(form.get("level") or "normal")
        zones = [str(z) for z in form.getall("zones", [])] or None
        items = [{"kind": "chime", "chime": "start"}, {"kind": "text", "text": text}]
        result = await call(
            request, "play_now", "broadcast.announce", items=items, zones=zones, level=level, title=text[:60]
        )
        if result is not None:
            _ = ctx.catalogs.gettext(ctx.language(request))
            flash(request, "ok", _("Announcement queued: {outcome}.").format(outcome=result.get("outcome", "queued")))
        raise web.HTTPSeeOther("/broadcast")

    async def play_programme(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        programme = str(form.get("programme_id") or "")
        result = await call(request, "play_now", "broadcast.play_now", programme_id=programme)
        if result is not None:
            _ = ctx.catalogs.gettext(ctx.language(request))
            flash(request, "ok", _("Announcement queued: {outcome}.").format(outcome=result.get("outcome", "queued")))
        raise web.HTTPSeeOther("/broadcast")

    async def upload(request: web.Request) -> web.StreamResponse:
        """Multipart upload streamed to the media library: a file is never held whole in memory, and its UTF-8
        (Vietnamese) name is kept for display while the library stores it under an id."""
        _ = ctx.catalogs.gettext(ctx.language(request))
        if not ctx.bus.serves("broadcast.media_add"):
            flash(request, "error", _("The loudspeaker service is not running."))
            raise web.HTTPSeeOther("/broadcast")
        reader = await request.multipart()
        name = ""
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            name = part.filename or ""

            async def chunks(part: BodyPartReader = part) -> Any:
                while chunk := await part.read_chunk(64 * 1024):
                    yield chunk

            try:
                info = await ctx.bus.call(
                    "broadcast.media_add",
                    timeout=600,
                    filename=name,
                    chunks=chunks(),
                    declared_size=request.content_length,
                    who=ctx.actor(request),
                )
            except CommandError as exc:
                flash(request, "error", str(exc))
                await ctx.audit(request, "broadcast.upload", name=name, error=str(exc))
            else:
                flash(request, "ok", _("{name}: uploaded.").format(name=info.get("name", name)))
                await ctx.audit(request, "broadcast.upload", name=name, media_id=info.get("id"))
            break
        else:
            flash(request, "error", _("Choose a file to upload."))
        raise web.HTTPSeeOther("/broadcast")

    app.router.add_get("/broadcast", page)
    app.router.add_post("/broadcast/stop", stop_all)
    app.router.add_post("/broadcast/test-zone", test_zone)
    app.router.add_post("/broadcast/announce", announce)
    app.router.add_post("/broadcast/play", play_programme)
    app.router.add_post("/broadcast/media", upload)
