"""The technician page's Cloud link panel: is the box enrolled and connected, what did the cloud ask of it lately
and what came of it, and does its clock agree with the cloud's. The enrol form takes the commune's one-time code."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.enroll import EnrollError, TokenSource, enroll
from hub.web.context import WebContext, flash

RECENT = 30


def _summary(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def add_routes(app: web.Application, ctx: WebContext) -> None:
    def recent_commands() -> list[dict[str, Any]]:
        try:
            rows = ctx.store.query(
                "SELECT id, kind, status, result, error, received_at, finished_at FROM commands ORDER BY id DESC "
                "LIMIT ?",
                (RECENT,),
            )
        except Exception:  # a store older than migration 5 is migrated at start; nothing to show before that
            return []
        return [
            {
                "id": cid,
                "kind": kind,
                "status": status,
                "outcome": error or _summary(json.loads(result) if result else None),
                "received_at": received,
                "finished_at": finished,
            }
            for cid, kind, status, result, error, received, finished in rows
        ]

    async def page(request: web.Request) -> web.StreamResponse:
        services = ctx.health().get("services", {})
        details = {name: (services.get(name) or {}).get("details", {}) for name in ("sync", "commands", "cloud_clock")}
        tokens = TokenSource(ctx.data_dir, ctx.secrets.cloud_token)
        return ctx.render(
            request,
            "cloud.html",
            cloud_url=ctx.settings.sync.cloud_url,
            sync=details["sync"],
            inbox=details["commands"],
            clock=details["cloud_clock"],
            problems=[
                p
                for name in ("sync", "commands", "cloud_clock")
                for p in (services.get(name) or {}).get("problems", [])
            ],
            enrollment=tokens.origin,
            pins=len(ctx.settings.sync.pin_sha256),
            ca_bundle=ctx.settings.sync.ca_bundle,
            commands=recent_commands(),
        )

    async def enrol(request: web.Request) -> web.StreamResponse:
        _ = ctx.catalogs.gettext(ctx.language(request))
        form = await request.post()
        code = str(form.get("code") or "").strip()
        try:
            done = await enroll(ctx.settings, code)
        except EnrollError as exc:
            flash(request, "error", str(exc))
            await ctx.audit(request, "cloud.enroll", error=str(exc))
        except OSError as exc:
            flash(request, "error", f"{ctx.data_dir}: {exc}")
            await ctx.audit(request, "cloud.enroll", error=str(exc))
        else:
            flash(request, "ok", _("Enrolled: the box now uses its own cloud token."))
            await ctx.audit(request, "cloud.enroll", hub_id=done.hub_id, cloud_url=done.cloud_url)
        raise web.HTTPSeeOther("/cloud")

    app.router.add_get("/cloud", page)
    app.router.add_post("/cloud/enroll", enrol)
