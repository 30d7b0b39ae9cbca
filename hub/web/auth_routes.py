"""First-run password, login with throttle and lockout, logout, password change, language toggle."""

from __future__ import annotations

import asyncio
import logging
import math

from aiohttp import web

from hub.web.context import LANG_COOKIE, PRE_COOKIE, SESSION_COOKIE, SESSION_KEY, WebContext, flash, safe_next
from hub.web.credentials import PasswordRejected

log = logging.getLogger(__name__)

FAILED_LOGIN_DELAY_S = 0.5  # each wrong password costs the guesser this much more


def _start_session(ctx: WebContext, request: web.Request, user: str, target: str) -> web.HTTPSeeOther:
    token, session = ctx.sessions.create(user, request.remote or "?")
    request[SESSION_KEY] = session
    response = web.HTTPSeeOther(target)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure)
    response.del_cookie(PRE_COOKIE, path="/")
    return response


def add_routes(app: web.Application, ctx: WebContext) -> None:
    async def setup_form(request: web.Request) -> web.StreamResponse:
        if ctx.credentials.is_set():
            raise web.HTTPSeeOther("/login")
        return ctx.render(request, "setup.html", error=None, user="technician")

    async def setup_submit(request: web.Request) -> web.StreamResponse:
        if ctx.credentials.is_set():
            # Only the very first visitor sets it; afterwards this form is gone (a password change needs a login).
            return web.json_response({"error": "the technician password is already set"}, status=409)
        form = await request.post()
        user = str(form.get("user") or "").strip()
        password = str(form.get("password") or "")
        if password != str(form.get("confirm") or ""):
            _ = ctx.catalogs.gettext(ctx.language(request))
            return ctx.render(request, "setup.html", status=400, error=_("The two passwords differ."), user=user)
        try:
            await asyncio.to_thread(ctx.credentials.set, user, password, ctx.settings.hub.id)
        except PasswordRejected as exc:
            return ctx.render(request, "setup.html", status=400, error=str(exc), user=user)
        response = _start_session(ctx, request, user, "/wizard")
        await ctx.audit(request, "password.set", first_run=True)
        log.info("technician password set by the first visitor from %s", request.remote)
        return response

    async def login_form(request: web.Request) -> web.StreamResponse:
        if not ctx.credentials.is_set():
            raise web.HTTPSeeOther("/setup")
        if ctx.session(request) is not None:
            raise web.HTTPSeeOther(safe_next(request.query.get("next")))
        return ctx.render(request, "login.html", error=None, next=safe_next(request.query.get("next")), user="")

    async def login_submit(request: web.Request) -> web.StreamResponse:
        _ = ctx.catalogs.gettext(ctx.language(request))
        form = await request.post()
        user = str(form.get("user") or "")[:64]
        target = safe_next(str(form.get("next") or "/"))
        address = request.remote or "?"
        locked = ctx.throttle.locked_for(address)
        if locked > 0:
            minutes = math.ceil(locked / 60)
            error = _("Too many wrong passwords. Try again in {minutes} min.").format(minutes=minutes)
            return ctx.render(request, "login.html", status=429, error=error, next=target, user=user)
        credential = await asyncio.to_thread(ctx.credentials.verify, user, str(form.get("password") or ""))
        if credential is None:
            lockout = ctx.throttle.failed(address)
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            await ctx.audit(request, "login.failed", user=user, locked_out_s=lockout)
            if lockout:
                log.warning("web: %s locked out for %.0f s after repeated wrong passwords", address, lockout)
                minutes = math.ceil(lockout / 60)
                error = _("Too many wrong passwords. Try again in {minutes} min.").format(minutes=minutes)
                return ctx.render(request, "login.html", status=429, error=error, next=target, user=user)
            error = _("Wrong user name or password ({left} tries left).").format(left=ctx.throttle.remaining(address))
            return ctx.render(request, "login.html", status=401, error=error, next=target, user=user)
        ctx.throttle.succeeded(address)
        response = _start_session(ctx, request, credential.user, target)
        await ctx.audit(request, "login")
        return response

    async def logout(request: web.Request) -> web.StreamResponse:
        await ctx.audit(request, "logout")
        ctx.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def change_password(request: web.Request) -> web.StreamResponse:
        _ = ctx.catalogs.gettext(ctx.language(request))
        form = await request.post()
        session = ctx.session(request)
        assert session is not None
        current = str(form.get("current") or "")
        new = str(form.get("password") or "")
        if await asyncio.to_thread(ctx.credentials.verify, session.user, current) is None:
            await ctx.audit(request, "password.change_failed", why="wrong current password")
            flash(request, "error", _("The current password is wrong."))
            raise web.HTTPSeeOther("/account")
        if new != str(form.get("confirm") or ""):
            flash(request, "error", _("The two passwords differ."))
            raise web.HTTPSeeOther("/account")
        try:
            await asyncio.to_thread(ctx.credentials.set, session.user, new, ctx.settings.hub.id)
        except PasswordRejected as exc:
            flash(request, "error", str(exc))
            raise web.HTTPSeeOther("/account") from None
        await ctx.audit(request, "password.changed")
        ctx.sessions.end_all()  # every browser logged in with the old password is out
        response = _start_session(ctx, request, session.user, "/account")
        flash(request, "ok", _("Password changed. Other sessions were logged out."))
        return response

    async def account(request: web.Request) -> web.StreamResponse:
        return ctx.render(request, "account.html")

    async def language(request: web.Request) -> web.StreamResponse:
        lang = request.match_info["lang"]
        if lang not in ("vi", "en"):
            raise web.HTTPNotFound()
        response = web.HTTPSeeOther(safe_next(request.query.get("next")))
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Strict", path="/")
        return response

    app.router.add_get("/setup", setup_form)
    app.router.add_post("/setup", setup_submit)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/account", account)
    app.router.add_post("/account/password", change_password)
    app.router.add_get("/lang/{lang}", language)
