"""The operator console of the reference cloud: server-rendered pages under /operator/.

Hubs with their last contact and backlog, one hub's records (filtered, paged) and command queue, forms that
queue commands (announcement by text or audio file, CAP-like emergency alert, light override), and a live view
whose browser script (static/operator-live.js) signals WebRTC through the command inbox (docs/protocol.md,
"WebRTC live sessions"). Login: the admin token, once, for a signed HttpOnly cookie (cloud/operator_auth.py).

Vietnamese by default, English on request (the browser's Accept-Language, or the toggle's cookie): the technician
page's catalog code (hub/web/i18n.py) with this package's templates/ and locale/vi/LC_MESSAGES/operator.po.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from cloud import metrics
from cloud import operator_auth as auth
from cloud.command_store import FINAL, CommandStore
from cloud.commands import COMMANDS_KEY, MAX_MEDIA_BYTES, MAX_WAIT_S, WAKER_KEY, _inbox_key, _result_key
from cloud.console_store import PAGE, ConsoleStore
from cloud.server import ADMIN_KEY, CLASSES, STORE_KEY, _require_admin
from hub.web.i18n import LANGUAGES, Catalogs, pick_language

CONSOLE_KEY = web.AppKey("console", ConsoleStore)
CATALOGS_KEY = web.AppKey("operator_catalogs", Catalogs)
LANG_COOKIE = "vh_operator_lang"
LANG_COOKIE_S = 365 * 86400
Gettext = Callable[[str], str]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
LEVELS = ("normal", "priority", "emergency")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
LIVE_TTL_S = 60.0
SESSION = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")  # what the hub's live service takes (hub/live/service.py)
WHO = "operator console"  # the hub's live.started / live.ended records name who opened and closed a session
DEFAULT_TTL_MIN = 60
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def N_(message: str) -> str:
    """A msgid raised before the operator's language is known, translated where it is shown (the name is the one
    gettext's extractors know for "translate later")."""
    return message


class FormError(ValueError):
    """A form entry the operator must fix: the field's name as the form sends it (never translated, so the
    operator finds it in the form) and what is wrong with it (a msgid with {placeholders})."""

    def __init__(self, field: str | None, message: str, **params: object) -> None:
        self.field, self.message, self.params = field, message, params
        super().__init__(self.translated(str))

    def translated(self, gettext: Gettext) -> str:
        text = gettext(self.message).format(**self.params)
        return f"{self.field}: {text}" if self.field else text


REQUIRED = N_("required")
EXPECTED_ONE_OF = N_("expected one of {choices}")
MINUTES_ERRORS = {  # the form field: (not a number, out of range)
    "ttl_min": (N_("Expires in: a number of minutes."), N_("Expires in: from 1 minute to 7 days.")),
    "valid_min": (N_("Valid for: a number of minutes."), N_("Valid for: from 1 minute to 7 days.")),
}


# ---- rendering and sessions ---------------------------------------------------------------------------------------


def _catalogs() -> Catalogs:
    catalogs = Catalogs(
        {
            "when": _when,
            "compact": lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")),
            "pretty": lambda v: json.dumps(v, ensure_ascii=False, indent=2),
        },
        package="cloud",
    )
    for lang, env in catalogs.environments.items():
        env.filters["age"] = partial(_age, catalogs.gettext(lang))
    return catalogs


def _when(value: float | None) -> str:
    """ISO order with the zone named: unambiguous in both languages, and what the hubs' logs show."""
    if value is None:
        return "—"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(_: Gettext, value: float | None) -> str:
    if value is None:
        return _("never")
    seconds = max(0, int(time.time() - value))
    if seconds < 120:
        return _("{n} s ago").format(n=seconds)
    if seconds < 7200:
        return _("{n} min ago").format(n=seconds // 60)
    if seconds < 172_800:
        return _("{n} h ago").format(n=seconds // 3600)
    return _("{n} days ago").format(n=seconds // 86_400)


def _language(request: web.Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"))


def _gettext(request: web.Request) -> Gettext:
    return request.app[CATALOGS_KEY].gettext(_language(request))


def _session(request: web.Request) -> str | None:
    value = request.cookies.get(auth.SESSION_COOKIE)
    return value if auth.session_valid(value, request.app[ADMIN_KEY]) else None


def _render(
    request: web.Request, name: str, status: int = 200, back: str | None = None, **context: Any
) -> web.Response:
    """`back`: where the language toggle returns to, when this page answers a POST (a form with an error)."""
    session = _session(request)
    page = request.app[CATALOGS_KEY].render(
        _language(request),
        name,
        csrf=auth.csrf_token(session, request.app[ADMIN_KEY]) if session else "",
        logged_in=session is not None,
        here=urllib.parse.quote(back or request.path_qs, safe=""),
        **context,
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8", headers=_page_headers())


def _page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _login_redirect(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/operator/login?" + urllib.parse.urlencode({"next": request.path_qs}))


def page(handler: Handler) -> Handler:
    """A console page: a logged-in operator, or off to the login form."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if _session(request) is None:
            raise _login_redirect(request)
        return await handler(request)

    return guarded


def _check_csrf(request: web.Request, given: str | None) -> None:
    session = _session(request)
    _ = _gettext(request)
    if session is None:
        raise web.HTTPUnauthorized(text=_("Log in first."), headers=_page_headers())
    if not auth.csrf_valid(given, session, request.app[ADMIN_KEY]):
        raise web.HTTPForbidden(text=_csrf_refused(request))


def _csrf_refused(request: web.Request) -> str:
    _ = _gettext(request)
    return _("The form's security token is missing or wrong: reload the page and try again.")


def _json_error(status: int, field: str, message: str, gettext: Gettext, **params: object) -> web.Response:
    """A refusal of the live view's calls, in the operator's language: the live view shows it as it comes."""
    error = FormError(field, message, **params).translated(gettext)
    return web.json_response({"error": error}, status=status, dumps=partial(json.dumps, ensure_ascii=False))


def _api_session(request: web.Request) -> None:
    """The live view's JSON calls: the session cookie, and for writes the CSRF header."""
    _ = _gettext(request)
    if _session(request) is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": _("Log in first.")}, ensure_ascii=False), content_type="application/json"
        )
    if request.method != "GET":
        session = _session(request)
        assert session is not None
        if not auth.csrf_valid(request.headers.get("X-CSRF-Token"), session, request.app[ADMIN_KEY]):
            error = "X-CSRF-Token: " + _("missing or wrong")
            raise web.HTTPForbidden(
                text=json.dumps({"error": error}, ensure_ascii=False), content_type="application/json"
            )


# ---- login ----------------------------------------------------------------------------------------------------------


async def login_form(
    request: web.Request, error: str | None = None, status: int = 200, next_path: str | None = None
) -> web.Response:
    nonce = auth.login_nonce()
    target = _safe_next(next_path or request.query.get("next"))
    back = "/operator/login?" + urllib.parse.urlencode({"next": target})
    response = _render(request, "operator/login.html", status, back, nonce=nonce, next=target, error=error)
    auth.set_cookie(response, request, auth.LOGIN_COOKIE, nonce, max_age=3600)
    return response


def _safe_next(value: str | None) -> str:
    """Only a path inside the console: never an open redirect."""
    if value and value.startswith("/operator/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/operator/hubs"


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    nonce = request.cookies.get(auth.LOGIN_COOKIE, "")
    given_nonce = str(form.get("nonce", ""))
    next_path = str(form.get("next", ""))
    _ = _gettext(request)
    if not nonce or not auth.token_matches(given_nonce, nonce):
        return await login_form(request, _("The login form expired: try again."), 403, next_path)
    if not auth.token_matches(str(form.get("token", "")), request.app[ADMIN_KEY]):
        return await login_form(request, _("Wrong admin token."), 401, next_path)
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))
    auth.set_cookie(response, request, auth.SESSION_COOKIE, auth.new_session(request.app[ADMIN_KEY]), auth.SESSION_S)
    response.del_cookie(auth.LOGIN_COOKIE, path=auth.COOKIE_PATH)
    raise response


async def logout(request: web.Request) -> web.Response:
    form = await request.post()
    _check_csrf(request, str(form.get("csrf", "")))
    response = web.HTTPSeeOther("/operator/login")
    response.del_cookie(auth.SESSION_COOKIE, path=auth.COOKIE_PATH)
    raise response


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/operator/hubs")


async def language(request: web.Request) -> web.Response:
    """The toggle on every page: a cookie for a year, then back to the page (inside the console only)."""
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound(text=f"{lang}: not one of {', '.join(LANGUAGES)}")
    response = web.HTTPSeeOther(_safe_next(request.query.get("next")))
    auth.set_cookie(response, request, LANG_COOKIE, lang, LANG_COOKIE_S)
    raise response


# ---- pages ----------------------------------------------------------------------------------------------------------


@page
async def hubs_page(request: web.Request) -> web.Response:
    hubs = await asyncio.to_thread(request.app[STORE_KEY].hubs)
    open_commands = await asyncio.to_thread(request.app[CONSOLE_KEY].open_commands)
    load = request.app[metrics.COUNTER_KEY].snapshot("hub", since=time.time() - 60)
    return _render(request, "operator/hubs.html", hubs=hubs, open_commands=open_commands, load=load)


async def _hub_or_404(request: web.Request) -> dict[str, Any]:
    hub_id = request.match_info["hub_id"]
    for hub in await asyncio.to_thread(request.app[STORE_KEY].hubs):
        if hub["hub_id"] == hub_id:
            return dict(hub)
    _ = _gettext(request)
    raise web.HTTPNotFound(text=_("No hub named {hub_id}.").format(hub_id=repr(hub_id)), headers=_page_headers())


def _browse_query(request: web.Request) -> tuple[str | None, str | None, int | None]:
    cls = request.query.get("class") or None
    if cls is not None and cls not in CLASSES:
        raise web.HTTPBadRequest(
            text=FormError("class", EXPECTED_ONE_OF, choices=", ".join(CLASSES)).translated(_gettext(request))
        )
    kind = (request.query.get("kind") or "").strip()[:200] or None
    raw = request.query.get("before")
    before = int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) <= 18 else None
    return cls, kind, before


async def _hub_context(request: web.Request) -> dict[str, Any]:
    hub = await _hub_or_404(request)
    cls, kind, before = _browse_query(request)
    console = request.app[CONSOLE_KEY]
    records = await asyncio.to_thread(console.records, hub["hub_id"], cls, kind, before, PAGE)
    kinds = await asyncio.to_thread(console.kinds, hub["hub_id"])
    latest = await asyncio.to_thread(console.latest_command_id, hub["hub_id"])
    commands = await asyncio.to_thread(request.app[COMMANDS_KEY].commands, hub["hub_id"], max(0, latest - 30), 30)
    older_query = None
    if records.older is not None:
        older_query = urllib.parse.urlencode(
            {k: v for k, v in (("class", cls), ("kind", kind), ("before", records.older)) if v}
        )
    return {
        "hub": hub,
        "records": records.records,
        "older_query": older_query,
        "filters": {"class": cls or "", "kind": kind or "", "before": before},
        "classes": CLASSES,
        "kinds": kinds,
        "commands": list(reversed(commands)),
        "levels": LEVELS,
        "severities": SEVERITIES,
        "urgencies": URGENCIES,
        "notice": request.query.get("queued"),
        "error": None,
    }


@page
async def hub_page(request: web.Request) -> web.Response:
    return _render(request, "operator/hub.html", **(await _hub_context(request)))


@page
async def live_page(request: web.Request) -> web.Response:
    hub = await _hub_or_404(request)
    return _render(request, "operator/live.html", hub=hub)


# ---- forms that queue commands --------------------------------------------------------------------------------------


async def _queue(request: web.Request, hub_id: str, kind: str, args: dict[str, Any], ttl_s: float) -> dict[str, Any]:
    """Queue exactly as POST /api/v1/hubs/{hub_id}/commands does, and wake the hub's long poll."""
    command: dict[str, Any] = await asyncio.to_thread(
        request.app[COMMANDS_KEY].queue, hub_id, kind, args, time.time() + ttl_s
    )
    request.app[WAKER_KEY].wake(_inbox_key(hub_id))
    return command


def _ttl(form: dict[str, str], field: str = "ttl_min") -> float:
    raw = form.get(field, "").strip() or str(DEFAULT_TTL_MIN)
    not_minutes, out_of_range = MINUTES_ERRORS[field]
    try:
        minutes = float(raw)
    except ValueError:
        raise FormError(None, not_minutes) from None
    if not 1 <= minutes <= 7 * 24 * 60:
        raise FormError(None, out_of_range)
    return minutes * 60


def _zones(form: dict[str, str]) -> list[str] | None:
    zones = [z.strip() for z in form.get("zones", "").split(",") if z.strip()]
    return zones or None


async def _read_form(request: web.Request) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The fields of a form, and an uploaded audio file stored as cloud media ({url, sha256, size, name}).

    Streamed part by part: an audio file may be far larger than what request.post() would hold in memory, and
    the CSRF field (first in every form) is checked before a single byte of a file is accepted.
    """
    fields: dict[str, str] = {}
    media: dict[str, Any] | None = None
    if not request.content_type.startswith("multipart/"):
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        _check_csrf(request, fields.get("csrf"))
        return fields, None
    reader = await request.multipart()
    checked = False
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is not None:
            if not checked:
                raise web.HTTPForbidden(text=_csrf_refused(request))
            if part.filename:
                media = await _store_media(request, part)
            continue
        fields[part.name] = (await part.read(decode=True)).decode("utf-8", "replace")[:20_000]
        if part.name == "csrf":
            _check_csrf(request, fields["csrf"])
            checked = True
    if not checked:
        _check_csrf(request, None)
    return fields, media


async def _store_media(request: web.Request, part: BodyPartReader) -> dict[str, Any] | None:
    store: CommandStore = request.app[COMMANDS_KEY]
    store.media_dir.mkdir(parents=True, exist_ok=True)
    incoming = store.media_dir / f"incoming-{os.getpid()}-{uuid.uuid4().hex}"
    digest = hashlib.sha256()
    size = 0
    try:
        with incoming.open("wb") as out:
            while chunk := await part.read_chunk(256 * 1024):
                size += len(chunk)
                if size > MAX_MEDIA_BYTES:
                    raise FormError(None, N_("The audio file is larger than {mib} MiB."), mib=MAX_MEDIA_BYTES // 2**20)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            incoming.unlink()
            return None
        sha = digest.hexdigest()
        incoming.replace(store.media_path(sha))
    finally:
        incoming.unlink(missing_ok=True)
    name = (part.filename or "audio")[:200]
    await asyncio.to_thread(store.add_media, sha, name, size)
    return {"url": f"/api/v1/media/{sha}", "sha256": sha, "size": size, "name": name}


def _announce_args(form: dict[str, str], media: dict[str, Any] | None) -> dict[str, Any]:
    text = form.get("text", "").strip()
    if bool(text) == bool(media):
        raise FormError(None, N_("Announcement: give either a text to read aloud or an audio file, not both."))
    args: dict[str, Any] = {"text": text} if text else {"media": media}
    if zones := _zones(form):
        args["zones"] = zones
    level = form.get("level", "normal")
    if level not in LEVELS:
        raise FormError("level", EXPECTED_ONE_OF, choices=", ".join(LEVELS))
    args["level"] = level
    if volume := form.get("volume", "").strip():
        if not volume.isdigit() or not 0 <= int(volume) <= 100:
            raise FormError("volume", N_("expected a number from 0 to 100"))
        args["volume"] = int(volume)
    return args


def _emergency_args(form: dict[str, str], media: dict[str, Any] | None) -> tuple[dict[str, Any], float]:
    text = form.get("text", "").strip()
    args: dict[str, Any] = {}
    for name in ("event", "area"):
        value = form.get(name, "").strip()
        if not value:
            raise FormError(name, REQUIRED)
        args[name] = value
    if form.get("severity") not in SEVERITIES:
        raise FormError("severity", EXPECTED_ONE_OF, choices=", ".join(SEVERITIES))
    args["severity"] = form["severity"]
    if form.get("urgency", "Immediate") not in URGENCIES:
        raise FormError("urgency", EXPECTED_ONE_OF, choices=", ".join(URGENCIES))
    args["urgency"] = form.get("urgency", "Immediate")
    if headline := form.get("headline", "").strip():
        args["headline"] = headline
    if bool(text) == bool(media):
        raise FormError(None, N_("Alert: give either a text to read aloud or an audio file, not both."))
    if text:
        args["text"] = text
    else:
        args["media"] = media
    if zones := _zones(form):
        args["zones"] = zones
    valid_s = _ttl(form, "valid_min")
    args["expires"] = dt.datetime.fromtimestamp(time.time() + valid_s, dt.UTC).isoformat(timespec="seconds")
    return args, valid_s


def _lighting(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    circuit = form.get("circuit", "").strip()
    if not circuit:
        raise FormError("circuit", REQUIRED)
    state = form.get("state", "")
    if state == "cancel":
        return "lighting.cancel_override", {"circuit": circuit}
    if state not in ("on", "off"):
        raise FormError("state", EXPECTED_ONE_OF, choices="on, off, cancel")
    args: dict[str, Any] = {"circuit": circuit, "state": state}
    if until := form.get("until", "").strip():
        try:
            dt.datetime.fromisoformat(until)
        except ValueError:
            raise FormError("until", N_("{value} is not a date and time"), value=repr(until)) from None
        args["until"] = until
    return "lighting.override", args


async def _form_command(request: web.Request, build: str) -> web.Response:
    hub = await _hub_or_404(request)
    try:
        fields, media = await _read_form(request)
        if build == "announce":
            kind, args, ttl = "broadcast.announce", _announce_args(fields, media), _ttl(fields)
        elif build == "emergency":
            args, ttl = _emergency_args(fields, media)
            kind = "broadcast.emergency"
        elif build == "lighting":
            kind, args = _lighting(fields)
            ttl = _ttl(fields)
        else:
            kind, args, ttl = "broadcast.stop_all", {"reason": "operator console"}, 600.0
    except FormError as exc:
        context = await _hub_context(request)
        context["error"] = exc.translated(_gettext(request))
        back = f"/operator/hubs/{urllib.parse.quote(hub['hub_id'], safe='')}"
        return _render(request, "operator/hub.html", 400, back, **context)
    command = await _queue(request, hub["hub_id"], kind, args, ttl)
    raise web.HTTPSeeOther(f"/operator/hubs/{urllib.parse.quote(hub['hub_id'], safe='')}?queued={command['id']}")


@page
async def announce(request: web.Request) -> web.Response:
    return await _form_command(request, "announce")


@page
async def emergency(request: web.Request) -> web.Response:
    return await _form_command(request, "emergency")


@page
async def lighting(request: web.Request) -> web.Response:
    return await _form_command(request, "lighting")


@page
async def stop_all(request: web.Request) -> web.Response:
    return await _form_command(request, "stop")


# ---- the live view's JSON calls (session cookie + CSRF header) ------------------------------------------------------


async def live_start(request: web.Request) -> web.Response:
    _api_session(request)
    hub = await _hub_or_404(request)
    _ = _gettext(request)
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        return _json_error(400, "body", N_("not valid JSON"), _)
    offer = body.get("offer") if isinstance(body, dict) else None
    if not isinstance(offer, dict) or offer.get("type") != "offer" or not isinstance(offer.get("sdp"), str):
        return _json_error(400, "offer", N_("expected an object with sdp and type 'offer'"), _)
    mode = body.get("mode", "camera")
    if mode not in ("camera", "announce"):
        return _json_error(400, "mode", EXPECTED_ONE_OF, _, choices="camera, announce")
    session = str(body.get("session") or uuid.uuid4())
    if not SESSION.match(session):
        return _json_error(400, "session", N_("1 to 80 letters, digits and . _ : -"), _)
    args: dict[str, Any] = {
        "session": session,
        "mode": mode,
        "offer": {"sdp": offer["sdp"], "type": "offer"},
        "who": WHO,
    }
    for name in ("camera", "zones", "ice_servers", "max_s"):
        if body.get(name) not in (None, "", []):
            args[name] = body[name]
    command = await _queue(request, hub["hub_id"], "live.start", args, LIVE_TTL_S)
    return web.json_response({"id": command["id"], "session": session}, status=201)


async def live_stop(request: web.Request) -> web.Response:
    _api_session(request)
    hub = await _hub_or_404(request)
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        body = None
    session = body.get("session") if isinstance(body, dict) else None
    if not isinstance(session, str) or not session:
        return _json_error(400, "session", N_("expected a string"), _gettext(request))
    command = await _queue(request, hub["hub_id"], "live.stop", {"session": session, "who": WHO}, LIVE_TTL_S)
    return web.json_response({"id": command["id"]}, status=201)


async def command_wait(request: web.Request) -> web.Response:
    """One command for the live view: held until final or `wait` seconds, like the admin API's long poll."""
    _api_session(request)
    hub_id = request.match_info["hub_id"]
    try:
        command_id = int(request.match_info["id"])
        wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT_S)
    except ValueError:
        return _json_error(400, "id, wait", N_("expected numbers"), _gettext(request))
    store = request.app[COMMANDS_KEY]
    deadline = time.monotonic() + wait
    while True:
        event = request.app[WAKER_KEY].event(_result_key(hub_id, command_id))
        command = await asyncio.to_thread(store.command, hub_id, command_id)
        if command is None:
            no_command = N_("no command {id} for hub {hub_id}")
            return _json_error(404, "id", no_command, _gettext(request), id=command_id, hub_id=repr(hub_id))
        remaining = deadline - time.monotonic()
        if command["status"] in FINAL or remaining <= 0:
            return web.json_response(command)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=remaining)


# ---- metrics (admin API) --------------------------------------------------------------------------------------------


async def get_metrics(request: web.Request) -> web.Response:
    _require_admin(request)
    scope = request.query.get("scope", "hub")
    if scope not in ("hub", "other"):
        return web.json_response({"error": "scope: expected 'hub' or 'other'"}, status=400)
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        return web.json_response({"error": "since: expected Unix seconds"}, status=400)
    return web.json_response(request.app[metrics.COUNTER_KEY].snapshot(scope, since))


# ---- wiring ---------------------------------------------------------------------------------------------------------


def add_routes(app: web.Application, db_path: Path) -> None:
    """The console and the metrics endpoint; call after cloud.commands.add_routes (it uses the command store)."""
    metrics.install(app)
    console = ConsoleStore(db_path)
    app[CONSOLE_KEY] = console
    app[CATALOGS_KEY] = _catalogs()

    async def close_console(_: web.Application) -> None:
        console.close()

    app.on_cleanup.append(close_console)
    app.router.add_get("/api/v1/metrics", get_metrics)
    app.router.add_get("/operator", index)
    app.router.add_get("/operator/", index)
    app.router.add_get("/operator/login", login_form)
    app.router.add_post("/operator/login", login)
    app.router.add_post("/operator/logout", logout)
    app.router.add_get("/operator/lang/{lang}", language)
    app.router.add_get("/operator/hubs", hubs_page)
    app.router.add_get("/operator/hubs/{hub_id}", hub_page)
    app.router.add_get("/operator/hubs/{hub_id}/live", live_page)
    app.router.add_post("/operator/hubs/{hub_id}/announce", announce)
    app.router.add_post("/operator/hubs/{hub_id}/emergency", emergency)
    app.router.add_post("/operator/hubs/{hub_id}/lighting", lighting)
    app.router.add_post("/operator/hubs/{hub_id}/stop", stop_all)
    app.router.add_post("/operator/hubs/{hub_id}/live/start", live_start)
    app.router.add_post("/operator/hubs/{hub_id}/live/stop", live_stop)
    app.router.add_get("/operator/hubs/{hub_id}/commands/{id}", command_wait)
    static = resources.files("cloud").joinpath("static")
    app.router.add_static("/operator/static", Path(str(static)), append_version=False)
