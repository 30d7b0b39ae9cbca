"""The install wizard: the site's details, the wiring as configured, a guided test of every zone, light circuit,
camera and the sensor node with the technician confirming each, and an installation report for the commune.

The site details are kept in the store (`install.site`) and laid over hub.toml's [village] and [sync] at the
next start (hub.site.apply_site): /etc is read-only on the box, and a technician on site has no editor.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from hub import __version__
from hub.bus import CommandError
from hub.site import SITE_KEY, ZONES_KEY, SiteSettings, apply_zones
from hub.store import RecordClass, Transaction
from hub.web.context import WebContext, flash

CHECKS_KEY = "install.checks"
REPORT_KEY = "install.report"
ENROLLMENT_KEY = "install.enrollment"


def checklist(ctx: WebContext, health: dict[str, Any]) -> list[dict[str, Any]]:
    """What must be tried on site, from the configuration and what the services report."""
    items: list[dict[str, Any]] = []
    services = health.get("services", {})
    broadcast = services.get("broadcast", {}).get("details", {})
    zones = broadcast.get("zones") or {}
    for zone, relay in zones.items():
        items.append({"kind": "zone", "name": zone, "detail": relay, "testable": True})
    lighting = services.get("lighting", {}).get("details", {})
    for circuit in lighting.get("circuits", []):
        name = circuit.get("name") if isinstance(circuit, dict) else str(circuit)
        relays = circuit.get("relays", []) if isinstance(circuit, dict) else []
        items.append({"kind": "circuit", "name": name, "detail": ", ".join(relays), "testable": bool(relays)})
    for name, camera in (services.get("camera", {}).get("details", {}).get("cameras") or {}).items():
        # No test button: the snapshot next to it is the test (is the gate in the picture, is it sharp).
        items.append({"kind": "camera", "name": name, "detail": camera.get("url", ""), "testable": False})
    sensors = services.get("sensors", {}).get("details", {})
    if ctx.settings.sensor_node is not None:
        node = sensors.get("node") or {}
        items.append({"kind": "node", "name": "sensor node", "detail": str(node.get("state", "")), "testable": True})
    results = ctx.store.get_state(CHECKS_KEY, {}) or {}
    for item in items:
        item["result"] = results.get(f"{item['kind']}:{item['name']}")
    return items


def add_routes(app: web.Application, ctx: WebContext) -> None:
    async def page(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        site = ctx.store.get_state(SITE_KEY) or {
            "village_name": ctx.settings.village.name,
            "village_code": ctx.settings.village.code,
            "latitude": ctx.settings.village.latitude,
            "longitude": ctx.settings.village.longitude,
            "cloud_url": str(ctx.settings.sync.cloud_url or ""),
        }
        relays = health.get("services", {}).get("relays", {}).get("details", {}).get("relays", [])
        return ctx.render(
            request,
            "wizard.html",
            site=site,
            relays=relays,
            checks=checklist(ctx, health),
            report=ctx.store.get_state(REPORT_KEY),
            zones=ctx.store.get_state(ZONES_KEY) or dict(ctx.settings.broadcast.zones),
            amplifier=ctx.settings.broadcast.amplifier_relay,
            enrollment_set=bool(ctx.store.get_state(ENROLLMENT_KEY)),
        )

    async def save_site(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        raw = {key: str(form.get(key) or "").strip() for key in SiteSettings.model_fields}
        try:
            site = SiteSettings.model_validate({k: v for k, v in raw.items() if v != ""})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            flash(request, "error", problems)
            await ctx.audit(request, "install.site_rejected", problems=problems)
            raise web.HTTPSeeOther("/wizard#site") from None
        enrollment = str(form.get("enrollment_code") or "").strip()

        def op(tx: Transaction) -> None:
            tx.set_state(SITE_KEY, site.model_dump(mode="json"))
            if enrollment:
                tx.set_state(ENROLLMENT_KEY, {"code": enrollment, "at": time.time()})

        await ctx.store.write(op)
        await ctx.audit(request, "install.site", **site.model_dump(mode="json"), enrollment_code_set=bool(enrollment))
        _ = ctx.catalogs.gettext(ctx.language(request))
        flash(request, "ok", _("Site details saved. They take effect when the hub restarts."))
        raise web.HTTPSeeOther("/wizard#wiring")

    async def save_zones(request: web.Request) -> web.StreamResponse:
        """Which relay switches which loudspeaker zone, as wired on site; checked against the relays the box has
        and the rest of [broadcast] (a programme naming a zone that disappears is refused, with its name)."""
        _ = ctx.catalogs.gettext(ctx.language(request))
        form = await request.post()
        names = [str(v).strip() for v in form.getall("zone_name", [])]
        relays = [str(v).strip() for v in form.getall("zone_relay", [])]
        mapping = {name: relay for name, relay in zip(names, relays, strict=False) if name}
        known = {
            r["name"] for r in ctx.health().get("services", {}).get("relays", {}).get("details", {}).get("relays", [])
        }
        problems = [f"{zone}: relay {relay!r} does not exist" for zone, relay in mapping.items() if relay not in known]
        if len(set(mapping.values())) != len(mapping):
            problems.append(_("Two zones cannot share one relay."))
        if not problems:
            checked = apply_zones(ctx.settings, mapping)
            if checked.broadcast.zones != mapping:
                problems.append(_("This wiring does not fit the programmes in hub.toml (see the log)."))
        if problems:
            flash(request, "error", "; ".join(problems))
            await ctx.audit(request, "install.zones_rejected", zones=mapping, problems=problems)
            raise web.HTTPSeeOther("/wizard#wiring")
        await ctx.store.write(lambda tx: tx.set_state(ZONES_KEY, mapping))
        await ctx.audit(request, "install.zones", zones=mapping)
        flash(request, "ok", _("Zone wiring saved. It takes effect when the hub restarts."))
        raise web.HTTPSeeOther("/wizard#wiring")

    async def run_test(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        kind, name = str(form.get("kind") or ""), str(form.get("name") or "")
        who = ctx.actor(request)
        _ = ctx.catalogs.gettext(ctx.language(request))
        try:
            if kind == "zone":
                if ctx.bus.serves("broadcast.test_zone"):
                    await ctx.bus.call("broadcast.test_zone", zone=name, who=who)
                else:
                    raise CommandError("the broadcast service is not running")
                flash(request, "ok", _("{name}: a test tone is playing. Did you hear it?").format(name=name))
            elif kind == "circuit":
                circuit = next(
                    (c for c in checklist(ctx, ctx.health()) if c["kind"] == "circuit" and c["name"] == name), None
                )
                if circuit is None:
                    raise CommandError(f"unknown circuit {name!r}")
                for relay in [r.strip() for r in circuit["detail"].split(",") if r.strip()]:
                    await ctx.bus.call("relays.test", relay=relay, seconds=5, who=who)
                flash(request, "ok", _("{name}: switched for 5 s. Did the lights change?").format(name=name))
            elif kind == "node":
                health = ctx.health().get("services", {}).get("sensors", {}).get("details", {})
                node = health.get("node") or {}
                if not node.get("ok", node.get("state") == "ok"):
                    raise CommandError(f"the sensor node does not answer ({node.get('state', 'unknown')})")
                flash(request, "ok", _("The sensor node answers."))
            else:
                raise CommandError(f"nothing to test for {kind!r}")
        except CommandError as exc:
            flash(request, "error", str(exc))
            await ctx.audit(request, "install.test", kind=kind, name=name, error=str(exc))
        else:
            await ctx.audit(request, "install.test", kind=kind, name=name)
        raise web.HTTPSeeOther("/wizard#checks")

    async def confirm(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        kind, name = str(form.get("kind") or ""), str(form.get("name") or "")
        ok = form.get("ok") == "yes"
        note = str(form.get("note") or "")[:500]
        if not any(c["kind"] == kind and c["name"] == name for c in checklist(ctx, ctx.health())):
            flash(request, "error", f"unknown check {kind}:{name}")
            raise web.HTTPSeeOther("/wizard#checks")
        results = dict(ctx.store.get_state(CHECKS_KEY, {}) or {})
        results[f"{kind}:{name}"] = {"ok": ok, "note": note, "by": ctx.actor(request), "at": time.time()}
        await ctx.store.write(lambda tx: tx.set_state(CHECKS_KEY, results))
        await ctx.audit(request, "install.confirm", kind=kind, name=name, ok=ok, note=note)
        raise web.HTTPSeeOther("/wizard#checks")

    async def finish(request: web.Request) -> web.StreamResponse:
        health = ctx.health()
        checks = checklist(ctx, health)
        report = {
            "hub_id": ctx.settings.hub.id,
            "version": __version__,
            "technician": ctx.actor(request),
            "at": time.time(),
            "site": ctx.store.get_state(SITE_KEY),
            "checks": [{k: c[k] for k in ("kind", "name", "detail", "result")} for c in checks],
            "passed": sum(1 for c in checks if c["result"] and c["result"]["ok"]),
            "failed": sum(1 for c in checks if c["result"] and not c["result"]["ok"]),
            "untested": sum(1 for c in checks if not c["result"]),
            "health": {"status": health.get("status"), "problems": health.get("problems", [])},
        }

        def op(tx: Transaction) -> None:
            tx.set_state(REPORT_KEY, report)
            tx.append(RecordClass.OPERATIONS, "installation.report", report)

        await ctx.store.write(op)
        await ctx.audit(request, "install.report", passed=report["passed"], failed=report["failed"])
        _ = ctx.catalogs.gettext(ctx.language(request))
        flash(request, "ok", _("Installation report saved and queued for the commune."))
        raise web.HTTPSeeOther("/wizard#report")

    async def restart(request: web.Request) -> web.StreamResponse:
        await ctx.audit(request, "hub.restart")
        if ctx.request_restart is None:
            flash(request, "error", "restart is not available here")
        else:
            ctx.request_restart(f"restart asked by {ctx.actor(request)} on the technician page")
        raise web.HTTPSeeOther("/")

    app.router.add_get("/wizard", page)
    app.router.add_post("/wizard/site", save_site)
    app.router.add_post("/wizard/zones", save_zones)
    app.router.add_post("/wizard/test", run_test)
    app.router.add_post("/wizard/confirm", confirm)
    app.router.add_post("/wizard/finish", finish)
    app.router.add_post("/restart", restart)
