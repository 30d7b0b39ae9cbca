"""The reference commune cloud: the other end of docs/protocol.md, as a real HTTP server."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from cloud.store import CloudStore

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
MAX_RECORDS = 1000
CLASSES = ("safety", "security", "operations", "telemetry")
MAX_SEQ = 2**63 - 1  # the largest SQLite INTEGER
STORE_KEY = web.AppKey("store", CloudStore)
ADMIN_KEY = web.AppKey("admin_token", str)


class BadRequest(ValueError):
    pass


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _encodable(value: Any) -> bool:
    """False if a string in value holds a lone surrogate (a JSON `\\ud800` escape), which UTF-8 cannot store."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_batch(body: Any) -> tuple[str, list[dict[str, Any]], dict[str, int]]:
    """Check an ingest body against docs/protocol.md; the error names the offending field."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    hub_id = body.get("hub_id")
    if not isinstance(hub_id, str) or not hub_id:
        raise BadRequest("hub_id: expected a non-empty string")
    records = body.get("records")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
        raise BadRequest(f"records: expected an array of 1 to {MAX_RECORDS} records")
    previous = 0
    for i, r in enumerate(records):
        where = f"records[{i}]"
        if not isinstance(r, dict):
            raise BadRequest(f"{where}: expected an object")
        seq = r.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
            raise BadRequest(f"{where}.seq: expected an integer from 1 to {MAX_SEQ}")
        if seq <= previous:
            raise BadRequest(f"{where}.seq: {seq} not above the previous record's {previous}; sort by seq")
        previous = seq
        if r.get("class") not in CLASSES:
            raise BadRequest(f"{where}.class: expected one of {', '.join(CLASSES)}")
        if not isinstance(r.get("kind"), str) or not r["kind"]:
            raise BadRequest(f"{where}.kind: expected a non-empty string")
        for name in ("created_at", "uptime"):
            value = r.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not _finite(value):
                raise BadRequest(f"{where}.{name}: expected a number")
        if not isinstance(r.get("boot_id"), str):
            raise BadRequest(f"{where}.boot_id: expected a string")
        if not isinstance(r.get("payload"), dict):
            raise BadRequest(f"{where}.payload: expected an object")
        for name in ("kind", "boot_id", "payload"):
            if not _encodable(r[name]):
                raise BadRequest(f"{where}.{name}: not valid Unicode (lone surrogate escape)")
    dropped_raw = body.get("dropped", {})
    if not isinstance(dropped_raw, dict) or not all(
        k in CLASSES and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in dropped_raw.items()
    ):
        raise BadRequest("dropped: expected an object of class name to count ≥ 0")
    return hub_id, records, dict(dropped_raw)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _hub_of(request: web.Request) -> str:
    token = _bearer(request)
    if token is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "missing bearer token"}),
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )
    hub_id = request.app[STORE_KEY].hub_for_token(token)
    if hub_id is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "unknown token"}),
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return hub_id


def _require_admin(request: web.Request) -> None:
    token = _bearer(request) or ""
    if not hmac.compare_digest(token.encode(), request.app[ADMIN_KEY].encode()):
        raise web.HTTPUnauthorized(text=json.dumps({"error": "admin token required"}), content_type="application/json")


def _pending(request: web.Request) -> int | None:
    """X-Hub-Pending: the records still waiting on the hub once this batch is acknowledged (its backlog)."""
    raw = request.headers.get("X-Hub-Pending", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


async def ingest(request: web.Request) -> web.Response:
    hub_id = _hub_of(request)
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        return _json_error(400, f"body: not valid JSON ({exc})")
    try:
        claimed, records, dropped = validate_batch(body)
    except BadRequest as exc:
        return _json_error(400, str(exc))
    if claimed != hub_id:
        return _json_error(403, f"hub_id: token belongs to {hub_id!r}, not {claimed!r}")
    store = request.app[STORE_KEY]
    result = await asyncio.to_thread(store.ingest, hub_id, records, dropped, _pending(request))
    from cloud.commands import apply_result_records  # the command inbox's durable result path

    await apply_result_records(request.app, hub_id, records)
    return web.json_response(
        {
            "hub_id": hub_id,
            "ack_seq": result.ack_seq,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
        }
    )


async def ingest_state(request: web.Request) -> web.Response:
    hub_id = _hub_of(request)
    store = request.app[STORE_KEY]
    store.touch(hub_id)
    return web.json_response({"hub_id": hub_id, "ack_seq": store.ack_seq(hub_id)})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def openapi(request: web.Request) -> web.Response:
    text = resources.files("cloud").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/yaml", charset="utf-8")


async def list_hubs(request: web.Request) -> web.Response:
    _require_admin(request)
    return web.json_response({"hubs": await asyncio.to_thread(request.app[STORE_KEY].hubs)})


async def add_hub(request: web.Request) -> web.Response:
    _require_admin(request)
    try:
        body = await request.json()
    except ValueError:
        return _json_error(400, "body: not valid JSON")
    hub_id = body.get("hub_id") if isinstance(body, dict) else None
    if not isinstance(hub_id, str) or not hub_id:
        return _json_error(400, "hub_id: expected a non-empty string")
    token = await asyncio.to_thread(request.app[STORE_KEY].add_hub, hub_id)
    return web.json_response({"hub_id": hub_id, "token": token}, status=201)


async def hub_records(request: web.Request) -> web.Response:
    _require_admin(request)
    try:
        after = int(request.query.get("after", "0"))
        limit = min(int(request.query.get("limit", "1000")), 10_000)
    except ValueError:
        return _json_error(400, "after, limit: expected integers")
    if limit < 1:  # SQLite reads LIMIT -1 as "no limit"
        return _json_error(400, "limit: expected an integer ≥ 1")
    hub_id = request.match_info["hub_id"]
    rows = await asyncio.to_thread(request.app[STORE_KEY].records, hub_id, after, limit)
    return web.json_response({"hub_id": hub_id, "records": rows})


async def dashboard(request: web.Request) -> web.Response:
    text = resources.files("cloud").joinpath("static/index.html").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def build_app(
    db_path: Path, admin_token: str, ota_repo: Path | None = None, ota_keys: Path | None = None
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    store = CloudStore(db_path)
    app[STORE_KEY] = store
    app[ADMIN_KEY] = admin_token

    async def close_store(_: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    app.router.add_post("/api/v1/ingest", ingest)
    app.router.add_get("/api/v1/ingest/state", ingest_state)
    app.router.add_get("/api/v1/hubs", list_hubs)
    app.router.add_post("/api/v1/hubs", add_hub)
    app.router.add_get("/api/v1/hubs/{hub_id}/records", hub_records)
    from cloud import commands  # enrollment, command inbox, media, diagnostics (imports this module)

    commands.add_routes(app, db_path)
    from cloud import operator  # the operator console (/operator/) and GET /api/v1/metrics

    operator.add_routes(app, db_path)
    if ota_repo is not None:
        from cloud import ota_repo as ota_routes  # signed hub releases (TUF repository), static files

        ota_routes.add_routes(app, ota_repo, ota_keys)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.yaml", openapi)
    app.router.add_get("/", dashboard)
    return app
