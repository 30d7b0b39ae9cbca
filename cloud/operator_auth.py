"""The operator console's login: the admin token typed once into a form, then a signed session cookie.

Nothing is stored on the server: the cookie is `<expiry>.<HMAC(admin token, expiry)>`, so a restarted cloud keeps
its operators logged in and a new admin token logs everyone out. The cookie is HttpOnly (page scripts never see
it) and SameSite=Strict; every form and every JSON call that changes something also carries a CSRF token derived
from the session (HMAC of the cookie), checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from aiohttp import web

SESSION_COOKIE = "vh_operator"
LOGIN_COOKIE = "vh_operator_login"
SESSION_S = 12 * 3600
COOKIE_PATH = "/operator"


def _mac(key: str, message: str) -> str:
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def token_matches(given: str, admin_token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), admin_token.encode("utf-8"))


def new_session(admin_token: str, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + SESSION_S)
    return f"{expires}.{_mac(admin_token, f'operator-session:{expires}')}"


def session_valid(value: str | None, admin_token: str, now: float | None = None) -> bool:
    if not value or "." not in value:
        return False
    expires, _, mac = value.partition(".")
    if not expires.isascii() or not expires.isdigit():
        return False
    if int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(
        mac.encode("ascii", "replace"), _mac(admin_token, f"operator-session:{expires}").encode()
    )


def csrf_token(session: str, admin_token: str) -> str:
    return _mac(admin_token, f"operator-csrf:{session}")


def csrf_valid(given: str | None, session: str, admin_token: str) -> bool:
    return bool(given) and hmac.compare_digest(
        str(given).encode("utf-8", "replace"), csrf_token(session, admin_token).encode()
    )


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.secure,  # plain HTTP only on loopback (demo, tests): a Secure cookie would not come back
    )


def login_nonce() -> str:
    """The login form's double-submit token (there is no session yet to derive one from)."""
    return secrets.token_urlsafe(24)
