"""The technician page's screens and the actions on them.

Pages are rendered on the server from the same health report `/api/health` gives (one source of truth: what the
page shows is what `hub doctor` and the cloud see). Actions go to the services as bus commands, so a refusal
comes back in the service's own words and is shown to the technician; every action is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from hub import sysinfo
from hub.logbuffer import LEVELS
from hub.web import (
    api,
    audit,
    broadcast_pages,
    cloud_pages,
    diagnostics,
    live_pages,
    parts_pages,
    updates_pages,
    wizard,
)
from hub.web.context import WebContext, flash

STATIC_DIR = Path(str(resources.files("hub.web").joinpath("static")))
CHART_W, CHART_H = 600, 160


def _service(health: dict[str, Any], name: str) -> dict[str, Any] | None:
    service: dict[str, Any] | None = health.get("services", {}).get(name)
    return service


def chart(points: list[tuple[float, float]], start: float, end: float) -> dict[str, Any]:
    """An SVG polyline for the 24 h chart, computed here so the page needs no charting library."""
    if not points:
        return {"path": "", "min": None, "max": None, "last": None}
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    coords = [
        f"{(t - start) / (end - start) * CHART_W:.1f},{CHART_H - (v - low) / span * (CHART_H - 10) - 5:.1f}"
        for t, v in points
    ]
    return {"path": " ".join(coords), "min": round(low, 1), "max": round(high, 1), "last": round(values[-1], 1)}


def add_routes(app: web.Application, ctx: WebContext, closing: asyncio.Event) -> None:
    async def overview(request: web.Request) -> web.StreamResponse:
        health = await asyncio.to_thread(ctx.health)
        system = {
            "vitals": await asyncio.to_thread(sysinfo.vitals, ctx.data_dir),
            "time": await asyncio.to_thread(sysinfo.time_sync),
        }
        incidents = ctx.store.get_state("hub.incidents", []) or []
        power_events = [(i.get("at"), i.get("kind"), i.get("down_at")) for i in reversed(incidents[-10:])]
        return ctx.render(
            request,
            "overview.html",
            health=health,
            system=system,
            sync=(_service(health, "sync") or {}).get("details", {}),
            power_events=power_events,
            install=ctx.store.get_state(wizard.REPORT_KEY),
        )

    async def relays_page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        return ctx.render(request, "relays.html", relays=(_service(health, "relays") or {}).get("details", {}))

    async def relay_test(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        relay = str(form.get("relay") or "")
        _ = ctx.catalogs.gettext(ctx.language(request))
        result = await ctx.run_command(
            request,
            "relays.test",
            action="relay.test",
            details={"relay": relay},
            recorded=("on",),
            relay=relay,
            seconds=3,
        )
        if result is not None:
            state = _("on") if result["on"] else _("off")
            flash(request, "ok", _("{relay}: switched {state} for 3 s.").format(relay=relay, state=state))
        raise web.HTTPSeeOther("/relays")

    async def lighting_page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        return ctx.render(request, "lighting.html", lighting=(_service(health, "lighting") or {}).get("details", {}))

    async def lighting_override(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        circuit = str(form.get("circuit") or "")
        on = form.get("state") == "on"
        until = str(form.get("until") or "") or None
        result = await ctx.run_command(
            request,
            "lighting.override",
            details={"circuit": circuit, "on": on, "until": until},
            recorded=("until",),
            circuit=circuit,
            on=on,
            until=until,
            reason="technician page",
        )
        if result is not None:
            _ = ctx.catalogs.gettext(ctx.language(request))
            flash(request, "ok", _("{circuit}: override set.").format(circuit=circuit))
        raise web.HTTPSeeOther("/lighting")

    async def lighting_cancel(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        circuit = str(form.get("circuit") or "")
        await ctx.run_command(
            request, "lighting.cancel_override", details={"circuit": circuit}, circuit=circuit, reason="technician page"
        )
        raise web.HTTPSeeOther("/lighting")

    async def sensors_page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        end = time.time()
        start = end - 24 * 3600
        rows = ctx.store.query(
            "SELECT metric, minute, value FROM readings WHERE minute >= ? ORDER BY metric, minute", (int(start // 60),)
        )
        series: dict[str, list[tuple[float, float]]] = {}
        for metric, minute, value in rows:
            series.setdefault(metric, []).append((minute * 60.0, value))
        charts = {metric: chart(points, start, end) for metric, points in series.items()}
        return ctx.render(
            request,
            "sensors.html",
            sensors=(_service(health, "sensors") or {}).get("details", {}),
            charts=charts,
            chart_w=CHART_W,
            chart_h=CHART_H,
        )

    async def irrigation_run(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        _ = ctx.catalogs.gettext(ctx.language(request))
        text = str(form.get("seconds") or "").strip()
        try:
            seconds = int(text)
        except ValueError:
            flash(request, "error", _("seconds: {value!r} is not a whole number of seconds.").format(value=text))
            raise web.HTTPSeeOther("/sensors") from None
        if await ctx.run_command(request, "irrigation.run", seconds=seconds) is not None:
            flash(request, "ok", _("Irrigation started for {seconds} s.").format(seconds=seconds))
        raise web.HTTPSeeOther("/sensors")

    async def network_page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        interfaces = await asyncio.to_thread(sysinfo.network_interfaces)
        return ctx.render(
            request,
            "network.html",
            interfaces=interfaces,
            sync=(_service(health, "sync") or {}).get("details", {}),
            listen=(_service(health, "web") or {}).get("details", {}).get("listen"),
        )

    async def audit_page(request: web.Request) -> web.StreamResponse:
        return ctx.render(request, "audit.html", entries=audit.recent(ctx.store, 200))

    async def logs_page(request: web.Request) -> web.StreamResponse:
        service = request.query.get("service", "")
        level = request.query.get("level", "INFO")
        lines = ctx.logs.recent(300, service or None, level if level in LEVELS else "INFO")
        return ctx.render(
            request,
            "logs.html",
            lines=lines,
            services=sorted({*ctx.logs.services(), *ctx.health().get("services", {})}),
            levels=LEVELS,
            service=service,
            level=level,
        )

    async def logs_stream(request: web.Request) -> web.StreamResponse:
        """Server-sent events: each new log line that passes the filter, as JSON; a comment every 15 s keeps
        proxies and phones from closing an idle stream."""
        service = request.query.get("service") or None
        level = request.query.get("level", "INFO")
        level = level if level in LEVELS else "INFO"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        queue = ctx.logs.listen()
        try:
            after = int(request.headers.get("Last-Event-ID") or request.query.get("after") or 0)
        except ValueError:
            after = 0
        try:
            for line in ctx.logs.recent(200, service, level):
                if line.id > after:
                    await response.write(_event(line.id, line.as_dict()))
            while not closing.is_set():
                try:
                    async with asyncio.timeout(15):
                        line = await queue.get()
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if (service is None or line.service == service) and LEVELS.index(line.level) >= LEVELS.index(level):
                    await response.write(_event(line.id, line.as_dict()))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            ctx.logs.unlisten(queue)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def diagnostics_bundle(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        data = await asyncio.to_thread(
            diagnostics.build_bundle,
            health=health,
            logs=ctx.logs,
            config_path=ctx.config_path,
            store_stats={"outbox": ctx.store.stats().as_dict(), "counters": ctx.store.counters()},
            audit=audit.recent(ctx.store, 500),
            data_dir=ctx.data_dir,
            secrets=ctx.secret_values(),
        )
        await ctx.audit(request, "diagnostics.download", bytes=len(data))
        name = f"village-hub-{ctx.settings.hub.id}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
        return web.Response(
            body=data,
            content_type="application/gzip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    app.router.add_get("/", overview)
    app.router.add_get("/relays", relays_page)
    app.router.add_post("/relays/test", relay_test)
    app.router.add_get("/lighting", lighting_page)
    app.router.add_post("/lighting/override", lighting_override)
    app.router.add_post("/lighting/cancel", lighting_cancel)
    app.router.add_get("/sensors", sensors_page)
    app.router.add_post("/irrigation/run", irrigation_run)
    app.router.add_get("/network", network_page)
    app.router.add_get("/audit", audit_page)
    app.router.add_get("/logs", logs_page)
    app.router.add_get("/logs/stream", logs_stream)
    app.router.add_get("/diagnostics.tar.gz", diagnostics_bundle)
    wizard.add_routes(app, ctx)
    broadcast_pages.add_routes(app, ctx)
    parts_pages.add_routes(app, ctx)
    updates_pages.add_routes(app, ctx)
    cloud_pages.add_routes(app, ctx)
    live_pages.add_routes(app, ctx)
    api.add_routes(app, ctx)


def _event(event_id: int, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
