"""A browser-like HTTP client for the operator console: a cookie jar, redirects shown rather than followed, forms
(urlencoded or multipart) sent as a browser sends them."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from tests.cloud.conftest import CloudServer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    text: str
    set_cookies: list[str]

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def hidden(self, name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]*)"', self.text)
        assert match, f"no hidden field {name!r} in the page"
        return match.group(1)


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """Fields first, then files, as a browser sends a form whose hidden CSRF field comes first."""
    boundary = "----vh" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode("utf-8") + b"\r\n"
    for name, filename, data in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class OperatorClient:
    """`language`: the Accept-Language it sends (None: none, as a browser with no preference); English by default,
    so the tests that check the console's behaviour read its English texts."""

    def __init__(self, cloud: CloudServer, language: str | None = "en") -> None:
        self.cloud = cloud
        self.language = language
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Page:
        sent = {"Accept-Language": self.language} if self.language else {}
        sent.update(headers or {})
        req = urllib.request.Request(self.cloud.base_url + path, data=body, method=method, headers=sent)
        try:
            with self.opener.open(req, timeout=30) as resp:
                cookies = resp.headers.get_all("Set-Cookie") or []
                return Page(resp.status, dict(resp.headers.items()), resp.read().decode("utf-8"), cookies)
        except urllib.error.HTTPError as exc:
            with exc:
                cookies = exc.headers.get_all("Set-Cookie") or []
                text = exc.read().decode("utf-8", "replace")
                return Page(exc.code, dict(exc.headers.items()), text, cookies)

    def get(self, path: str) -> Page:
        return self.request("GET", path)

    def post_form(self, path: str, fields: dict[str, str]) -> Page:
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def post_multipart(
        self, path: str, fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]] | None = None
    ) -> Page:
        body, content_type = multipart(fields, files or [])
        return self.request("POST", path, body, {"Content-Type": content_type})

    def login(self, token: str | None = None) -> Page:
        form = self.get("/operator/login")
        assert form.status == 200, form
        return self.post_form(
            "/operator/login",
            {"nonce": form.hidden("nonce"), "token": token or self.cloud.admin_token, "next": "/operator/hubs"},
        )

    def csrf(self, hub_id: str) -> str:
        page = self.get(f"/operator/hubs/{urllib.parse.quote(hub_id, safe='')}")
        assert page.status == 200, page
        return page.hidden("csrf")

    def cookie(self, name: str) -> http.cookiejar.Cookie | None:
        return next((c for c in self.jar if c.name == name), None)
