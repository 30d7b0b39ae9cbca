"""Routes of enrollment, the command inbox, media and diagnostics uploads (docs/protocol.md, "Command inbox").

Long polls (a hub waiting for commands, an operator waiting for a result) wait on an asyncio.Event per hub or
per command that the handler answering the other side sets: no polling of the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from cloud.command_store import DEFAULT_COMMAND_TTL_S, DEFAULT_ENROLL_TTL_S, FINAL, CommandStore, EnrollError
from cloud.server import STORE_KEY, _hub_of, _json_error, _require_admin

COMMANDS_KEY = web.AppKey("commands", CommandStore)
MAX_WAIT_S = 30.0
MAX_ARGS_BYTES = 256 * 1024
MAX_MEDIA_BYTES = 200 * 1024 * 1024
MAX_DIAGNOSTICS_BYTES = 64 * 1024 * 1024
MAX_TTL_S = 30 * 86_400.0
KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
N = TypeVar("N", int, float)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
RESULT_STATUSES = FINAL


class Waker:
    """One event per key (a hub's inbox, one command's result), replaced each time it fires."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, key: str) -> asyncio.Event:
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        return event

    def wake(self, key: str) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()


WAKER_KEY = web.AppKey("waker", Waker)


def _inbox_key(hub_id: str) -> str:
    return f"inbox:{hub_id}"


def _result_key(hub_id: str, command_id: int) -> str:
    return f"result:{hub_id}:{command_id}"


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _query_number(request: web.Request, name: str, default: N, low: N, high: N) -> N:
    """A bounded number from the query string, of the default's type; anything else is a 400 naming the parameter."""
    raw = request.query.get(name)
    if raw is None:
        return default
    noun = "an integer" if isinstance(default, int) else "a number"
    try:
        value = type(default)(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: expected {noun}"}), content_type="application/json"
        ) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: expected {noun} from {low} to {high}"}),
            content_type="application/json",
        )
    return value


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (ValueError, RecursionError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body: not valid JSON"}), content_type="application/json"
        ) from None


def _command_id(request: web.Request, name: str = "id") -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"{name}: expected an integer"}), content_type="application/json"
        ) from None
    return value


# ---- enrollment ---------------------------------------------------------------------------------------------------


async def add_enrollment(request: web.Request) -> web.Response:
    _require_admin(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _json_error(400, "body: expected a JSON object")
    hub_id = body.get("hub_id")
    if not isinstance(hub_id, str) or not hub_id:
        return _json_error(400, "hub_id: expected a non-empty string")
    ttl = body.get("ttl_s", DEFAULT_ENROLL_TTL_S)
    if not _number(ttl) or not 60 <= ttl <= 90 * 86_400:
        return _json_error(400, "ttl_s: expected seconds from 60 to 7776000")
    enrollment = await asyncio.to_thread(request.app[COMMANDS_KEY].add_enrollment, hub_id, float(ttl))
    return web.json_response(
        {"hub_id": enrollment.hub_id, "code": enrollment.code, "expires_at": enrollment.expires_at}, status=201
    )


async def enroll(request: web.Request) -> web.Response:
    """A hub trades its one-time code for its token (no bearer: the code is the credential)."""
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    hub_id = body.get("hub_id") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip():
        return _json_error(401, "code: missing enrollment code")
    if hub_id is not None and not isinstance(hub_id, str):
        return _json_error(400, "hub_id: expected a string")
    token = secrets.token_urlsafe(32)
    try:
        owner = await asyncio.to_thread(request.app[COMMANDS_KEY].consume_enrollment, code, hub_id or "", token)
    except EnrollError as exc:
        return _json_error(exc.status, str(exc))
    return web.json_response({"hub_id": owner, "token": token})


# ---- commands: the admin side -------------------------------------------------------------------------------------


async def queue_command(request: web.Request) -> web.Response:
    _require_admin(request)
    hub_id = request.match_info["hub_id"]
    raw = await request.read()
    if len(raw) > MAX_ARGS_BYTES:
        return _json_error(413, f"body: larger than {MAX_ARGS_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return _json_error(400, "body: not valid JSON")
    if not isinstance(body, dict):
        return _json_error(400, "body: expected a JSON object")
    kind = body.get("kind")
    if not isinstance(kind, str) or not KIND.match(kind):
        return _json_error(400, "kind: expected a dotted command name, e.g. 'broadcast.announce'")
    args = body.get("args", {})
    if not isinstance(args, dict):
        return _json_error(400, "args: expected a JSON object")
    now = time.time()
    if body.get("expires_at") is not None:
        expires = body["expires_at"]
        if not _number(expires) or expires > now + MAX_TTL_S:
            return _json_error(400, "expires_at: expected Unix seconds, at most 30 days ahead")
    else:
        ttl = body.get("ttl_s", DEFAULT_COMMAND_TTL_S)
        if not _number(ttl) or not 1 <= ttl <= MAX_TTL_S:
            return _json_error(400, "ttl_s: expected seconds from 1 to 2592000")
        expires = now + ttl
    command = await asyncio.to_thread(request.app[COMMANDS_KEY].queue, hub_id, kind, args, float(expires))
    request.app[WAKER_KEY].wake(_inbox_key(hub_id))
    return web.json_response(command, status=201)


async def list_commands(request: web.Request) -> web.Response:
    _require_admin(request)
    hub_id = request.match_info["hub_id"]
    after = _query_number(request, "after", 0, 0, 2**63 - 1)
    limit = _query_number(request, "limit", 100, 1, 1000)
    rows = await asyncio.to_thread(request.app[COMMANDS_KEY].commands, hub_id, after, limit)
    return web.json_response({"hub_id": hub_id, "commands": rows})


async def get_command(request: web.Request) -> web.Response:
    """One command; with ?wait=S, held until its status is final or S seconds pass (an operator's live session)."""
    _require_admin(request)
    hub_id = request.match_info["hub_id"]
    command_id = _command_id(request)
    wait = _query_number(request, "wait", 0.0, 0.0, MAX_WAIT_S)
    store = request.app[COMMANDS_KEY]
    deadline = time.monotonic() + wait
    while True:
        event = request.app[WAKER_KEY].event(_result_key(hub_id, command_id))
        command = await asyncio.to_thread(store.command, hub_id, command_id)
        if command is None:
            return _json_error(404, f"id: no command {command_id} for hub {hub_id!r}")
        remaining = deadline - time.monotonic()
        if command["status"] in FINAL or remaining <= 0:
            return web.json_response(command)
        await _wait(event, remaining)


# ---- commands: the hub side ---------------------------------------------------------------------------------------


async def fetch_commands(request: web.Request) -> web.Response:
    """The hub's long poll: at once when it has commands above its cursor, else held up to `wait` seconds."""
    hub_id = _hub_of(request)
    after = _query_number(request, "after", 0, 0, 2**63 - 1)
    wait = _query_number(request, "wait", 0.0, 0.0, MAX_WAIT_S)
    limit = _query_number(request, "limit", 100, 1, 1000)
    store = request.app[COMMANDS_KEY]
    await asyncio.to_thread(request.app[STORE_KEY].touch, hub_id)  # a durable write: not on the event loop
    deadline = time.monotonic() + wait
    while True:
        event = request.app[WAKER_KEY].event(_inbox_key(hub_id))
        rows = await asyncio.to_thread(store.deliver, hub_id, after, limit)
        remaining = deadline - time.monotonic()
        if rows or remaining <= 0:
            return web.json_response({"commands": rows, "server_time": time.time()})
        await _wait(event, remaining)


def check_result(body: Any) -> tuple[str, Any, str | None]:
    if not isinstance(body, dict):
        raise ValueError("body: expected a JSON object")
    status = body.get("status")
    if status not in RESULT_STATUSES:
        raise ValueError(f"status: expected one of {', '.join(RESULT_STATUSES)}")
    error = body.get("error")
    if error is not None and not isinstance(error, str):
        raise ValueError("error: expected a string")
    return str(status), body.get("result"), error


async def post_result(request: web.Request) -> web.Response:
    hub_id = _hub_of(request)
    command_id = _command_id(request)
    try:
        status, result, error = check_result(await _json_body(request))
    except ValueError as exc:
        return _json_error(400, str(exc))
    changed, command = await asyncio.to_thread(
        request.app[COMMANDS_KEY].finish, hub_id, command_id, status, result, error
    )
    if command is None:
        return _json_error(404, f"id: no command {command_id} for hub {hub_id!r}")
    if changed:
        request.app[WAKER_KEY].wake(_result_key(hub_id, command_id))
    return web.json_response({"id": command_id, "status": command["status"], "changed": changed})


async def apply_result_records(app: web.Application, hub_id: str, records: list[dict[str, Any]]) -> None:
    """The durable path: `command.result` outbox records arriving by ingest, applied like the direct POST."""
    store = app.get(COMMANDS_KEY)
    if store is None:
        return
    for record in records:
        if record.get("kind") != "command.result":
            continue
        payload = record.get("payload") or {}
        command_id = payload.get("id")
        if not isinstance(command_id, int) or isinstance(command_id, bool):
            continue
        try:
            status, result, error = check_result(payload)
        except ValueError:
            continue
        changed, _ = await asyncio.to_thread(store.finish, hub_id, command_id, status, result, error)
        if changed:
            app[WAKER_KEY].wake(_result_key(hub_id, command_id))


# ---- media --------------------------------------------------------------------------------------------------------


async def _receive(request: web.Request, target: Path, limit: int) -> tuple[int, str]:
    """Stream a request body to target (atomically), refusing more than limit bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}-{id(request)}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        with partial.open("wb") as out:
            async for chunk in request.content.iter_chunked(256 * 1024):
                size += len(chunk)
                if size > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return size, digest.hexdigest()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        if partial.exists():
            partial.replace(target)


async def upload_media(request: web.Request) -> web.Response:
    _require_admin(request)
    store = request.app[COMMANDS_KEY]
    raw_name = request.headers.get("X-File-Name", "")
    name = urllib.parse.unquote(raw_name, encoding="utf-8", errors="strict") if raw_name else "audio"
    incoming = store.media_dir / f"incoming-{os.getpid()}-{id(request)}"
    size, sha = await _receive(request, incoming, MAX_MEDIA_BYTES)
    if size == 0:
        incoming.unlink(missing_ok=True)
        return _json_error(400, "body: empty file")
    incoming.replace(store.media_path(sha))
    await asyncio.to_thread(store.add_media, sha, name, size)
    return web.json_response({"sha256": sha, "size": size, "name": name, "url": f"/api/v1/media/{sha}"}, status=201)


async def get_media(request: web.Request) -> web.StreamResponse:
    """A hub (or an admin) downloads media; aiohttp's FileResponse answers Range requests with 206."""
    if not _is_admin(request):
        _hub_of(request)
    sha = request.match_info["sha256"]
    store = request.app[COMMANDS_KEY]
    if not SHA256.match(sha) or await asyncio.to_thread(store.media, sha) is None:
        return _json_error(404, f"sha256: no media {sha[:80]!r}")
    return web.FileResponse(store.media_path(sha), headers={"Content-Type": "application/octet-stream"})


def _is_admin(request: web.Request) -> bool:
    try:
        _require_admin(request)
    except web.HTTPUnauthorized:
        return False
    return True


# ---- diagnostics --------------------------------------------------------------------------------------------------


async def upload_diagnostics(request: web.Request) -> web.Response:
    hub_id = _hub_of(request)
    command_id = _command_id(request, "command_id")
    store = request.app[COMMANDS_KEY]
    command = await asyncio.to_thread(store.command, hub_id, command_id)
    if command is None or command["kind"] != "diagnostics.request":
        return _json_error(404, f"command_id: no diagnostics.request {command_id} for hub {hub_id!r}")
    size, sha = await _receive(request, store.diagnostics_path(hub_id, command_id), MAX_DIAGNOSTICS_BYTES)
    await asyncio.to_thread(store.add_diagnostics, hub_id, command_id, size, sha)
    return web.json_response({"bytes": size, "sha256": sha})


async def get_diagnostics(request: web.Request) -> web.StreamResponse:
    _require_admin(request)
    hub_id = request.match_info["hub_id"]
    command_id = _command_id(request, "command_id")
    path = request.app[COMMANDS_KEY].diagnostics_path(hub_id, command_id)
    if not path.exists():
        return _json_error(404, f"command_id: no diagnostics bundle {command_id} from hub {hub_id!r}")
    return web.FileResponse(path, headers={"Content-Type": "application/gzip"})


def add_routes(app: web.Application, db_path: Path) -> None:
    store = CommandStore(db_path)
    app[COMMANDS_KEY] = store
    app[WAKER_KEY] = Waker()

    async def close_store(_: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    app.router.add_post("/api/v1/enrollments", add_enrollment)
    app.router.add_post("/api/v1/enroll", enroll)
    app.router.add_post("/api/v1/hubs/{hub_id}/commands", queue_command)
    app.router.add_get("/api/v1/hubs/{hub_id}/commands", list_commands)
    app.router.add_get("/api/v1/hubs/{hub_id}/commands/{id}", get_command)
    app.router.add_get("/api/v1/hubs/{hub_id}/diagnostics/{command_id}", get_diagnostics)
    app.router.add_get("/api/v1/commands", fetch_commands)
    app.router.add_post("/api/v1/commands/{id}/result", post_result)
    app.router.add_post("/api/v1/media", upload_media)
    app.router.add_get("/api/v1/media/{sha256}", get_media)
    app.router.add_put("/api/v1/diagnostics/{command_id}", upload_diagnostics)


__all__ = ["DEFAULT_ENROLL_TTL_S", "add_routes", "apply_result_records"]
