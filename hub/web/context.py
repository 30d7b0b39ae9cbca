"""What the technician page's handlers share: the hub's parts they read, and the request helpers they all use."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets as pysecrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from hub.bus import CommandError, EventBus
from hub.config.settings import Secrets, Settings
from hub.logbuffer import LogBuffer
from hub.store import Store
from hub.web import audit
from hub.web.credentials import CredentialFile
from hub.web.i18n import Catalogs, pick_language
from hub.web.sessions import LoginThrottle, Session, Sessions

HealthProvider = Callable[[], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "vh_session"
PRE_COOKIE = "vh_pre"  # double-submit CSRF token for the two forms used before a session exists
LANG_COOKIE = "vh_lang"
SESSION_KEY = web.RequestKey("session", Session)
PRE_TOKEN_KEY = web.RequestKey("pre_token", str)


@dataclass
class WebContext:
    settings: Settings
    secrets: Secrets
    store: Store
    bus: EventBus
    health: HealthProvider
    config_path: Path
    logs: LogBuffer
    catalogs: Catalogs = field(default_factory=lambda: Catalogs(FILTERS))
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    request_restart: Callable[[str], None] | None = None
    credentials: CredentialFile = field(init=False)
    local_token: str | None = None

    def __post_init__(self) -> None:
        self.credentials = CredentialFile(self.settings.hub.data_dir, self.secrets.technician_password_hash)

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.hub.data_dir)

    def secret_values(self) -> list[str]:
        values = [self.secrets.cloud_token or "", self.secrets.technician_password_hash or "", self.local_token or ""]
        credential = self.credentials.load()
        if credential is not None:
            values.append(credential.hash)
        return [v for v in values if v]

    # ---- requests ------------------------------------------------------------------------------------------------

    def language(self, request: web.Request) -> str:
        return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"))

    def session(self, request: web.Request) -> Session | None:
        session: Session | None = request.get(SESSION_KEY)
        return session

    def actor(self, request: web.Request) -> str:
        session = self.session(request)
        return session.user if session else "anonymous"

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        lang = self.language(request)
        session = self.session(request)
        pre = request.get(PRE_TOKEN_KEY)
        flash = session_flash(request)
        body = self.catalogs.render(
            lang,
            template,
            request_path=request.path,
            path_quoted=quote(request.path_qs, safe=""),
            session=session,
            csrf=session.csrf if session else pre,
            village=self.settings.village.name or self.settings.hub.id,
            hub_id=self.settings.hub.id,
            flash=flash,
            **context,
        )
        response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
        if pre and not session:
            response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="Strict", path="/")
        return response

    async def audit(self, request: web.Request, action: str, **details: Any) -> None:
        await audit.record(self.store, self.actor(request), request.remote or "?", action, **details)

    async def run_command(
        self,
        request: web.Request,
        command: str,
        *,
        action: str | None = None,
        details: dict[str, Any] | None = None,
        recorded: tuple[str, ...] = (),
        **data: Any,
    ) -> dict[str, Any] | None:
        """Run a service's bus command for the technician, in their name, and audit it either way.

        A refusal is flashed in the service's own words (it names what is wrong) and gives None. The audit entry
        holds `details` (default: the command's arguments) and, on success, the `recorded` fields of the result
        (what the service actually did, e.g. the resolved end of an override).
        """
        action = action or command
        details = dict(data if details is None else details)
        try:
            result: dict[str, Any] = await self.bus.call(command, who=self.actor(request), **data)
        except CommandError as exc:
            flash(request, "error", str(exc))
            await self.audit(request, action, **details, error=str(exc))
            return None
        details.update({key: result.get(key) for key in recorded})
        await self.audit(request, action, **details)
        return result


def session_flash(request: web.Request) -> list[tuple[str, str]]:
    session: Session | None = request.get(SESSION_KEY)
    if session is None:
        return []
    messages = list(session.flash)
    session.flash.clear()
    return messages


def flash(request: web.Request, kind: str, message: str) -> None:
    session: Session | None = request.get(SESSION_KEY)
    if session is not None:
        session.flash.append((kind, message))


def safe_next(value: str | None) -> str:
    """Only a path on this page: an open redirect would let a link log a technician into someone else's page."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def new_pre_token() -> str:
    return pysecrets.token_urlsafe(24)


def tokens_match(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


# ---- template filters ---------------------------------------------------------------------------------------------


def _when(value: float | None) -> str:
    if not value:
        return "—"
    return dt.datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _ago(value: float | None) -> str:
    if not value:
        return "—"
    seconds = max(0, int(time.time() - value))
    return _duration(seconds)


def _duration(value: float | None) -> str:
    if value is None:
        return "—"
    seconds = int(value)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _bytes(value: float | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


FILTERS: dict[str, Callable[..., Any]] = {"when": _when, "ago": _ago, "duration": _duration, "bytes": _bytes}
