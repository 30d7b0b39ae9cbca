"""The one place that builds the hub's TLS context and HTTP session for every exchange with the commune cloud.

The uploader, the command inbox, media downloads, enrollment and `hub doctor` all come through here, so the
rules hold everywhere: certificates verified against `sync.ca_bundle` (or the system's CAs), optional key pins
checked inside the TLS handshake (before a single byte of the request, token included, is sent), no plain HTTP
off the box, and never a fallback from https to http. Each response's `Date` header is published on the bus as
`cloud.date` for the clock check.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp

from hub.bus import EventBus
from hub.config.settings import SyncSection
from hub.sync.pins import insecure_url_problem, parse_pin, spki_sha256

TokenLike = str | None | Callable[[], str | None]
USER_AGENT = "village-hub"


class PinMismatchError(ssl.SSLCertVerificationError):
    """The cloud's certificate chains to a trusted CA but its key is not one of sync.pin_sha256."""


def _check_pin(der: bytes | None, pins: frozenset[bytes]) -> None:
    if der is None:
        raise PinMismatchError("cloud certificate pin check: the server sent no certificate")
    seen = spki_sha256(der)
    if seen not in pins:
        raise PinMismatchError(
            "cloud certificate key does not match sync.pin_sha256 (its pin is "
            f"{base64.b64encode(seen).decode()}); refusing the connection"
        )


def _pinned(context: ssl.SSLContext, pins: frozenset[bytes]) -> None:
    """Check the pin as the last step of the handshake: asyncio (SSLObject) and blocking sockets (urllib) alike."""

    class PinnedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            _check_pin(self.getpeercert(binary_form=True), pins)

    class PinnedSSLSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            _check_pin(self.getpeercert(binary_form=True), pins)

    context.sslobject_class = PinnedSSLObject
    context.sslsocket_class = PinnedSSLSocket


def build_ssl_context(settings: SyncSection) -> ssl.SSLContext:
    """Verification on (hostname and chain), TLS 1.2 or newer, the configured CA bundle and pins."""
    cafile = str(settings.ca_bundle) if settings.ca_bundle is not None else None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.pin_sha256:
        _pinned(context, frozenset(parse_pin(p) for p in settings.pin_sha256))
    return context


class InsecureURLError(ValueError):
    pass


def check_url(settings: SyncSection) -> None:
    """Refuse a plain-HTTP cloud URL off the box (the install wizard's URL bypasses the settings' own check)."""
    problem = insecure_url_problem(settings.cloud_url, settings.allow_insecure_http)
    if problem:
        raise InsecureURLError(f"sync.cloud_url {problem}")


def describe_error(exc: BaseException, settings: SyncSection | None = None) -> str:
    """A failed exchange as a technician should read it: certificate problems named as such."""
    cert_error: BaseException | None = None
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
    elif isinstance(exc, ssl.SSLCertVerificationError):
        cert_error = exc
    else:
        reason = getattr(exc, "reason", None)
        if isinstance(reason, ssl.SSLCertVerificationError):
            cert_error = reason
    if cert_error is not None:
        detail = getattr(cert_error, "verify_message", None) or str(cert_error)
        if isinstance(cert_error, PinMismatchError):
            return f"TLS certificate verification failed: {cert_error.args[0]}"
        where = f"sync.ca_bundle = {settings.ca_bundle}" if settings and settings.ca_bundle else "the system's CAs"
        return f"TLS certificate verification failed ({detail}); the cloud's certificate checked against {where}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return f"TLS handshake with the cloud failed: {exc}"
    if isinstance(exc, TimeoutError):
        return "cloud unreachable (TimeoutError: timeout)"
    return f"cloud unreachable ({type(exc).__name__}: {exc or 'timeout'})"


class CloudTransport:
    """A session to the cloud: base URL, TLS, the hub's bearer token (read at each request: enrolling while the
    hub runs takes effect at once), and the Date observer."""

    def __init__(
        self,
        settings: SyncSection,
        token: TokenLike,
        bus: EventBus | None = None,
        *,
        limit: int = 2,
        timeout_s: float | None = None,
        content_type: str | None = "application/json",
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.cloud_url).rstrip("/") if settings.cloud_url else None
        self._token = token
        self.bus = bus
        self.limit = limit
        self.timeout_s = timeout_s if timeout_s is not None else settings.timeout_s
        self.content_type = content_type
        self._session: aiohttp.ClientSession | None = None

    @property
    def token(self) -> str | None:
        return self._token() if callable(self._token) else self._token

    def auth_headers(self) -> dict[str, str]:
        token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def secure(self) -> bool:
        return bool(self.base_url and self.base_url.startswith("https://"))

    def url(self, path: str) -> str:
        assert self.base_url is not None
        return self.base_url + path

    def open(self) -> aiohttp.ClientSession:
        """The session (made on first use, in the running event loop). InsecureURLError for plain HTTP off the box;
        an ssl/OSError for an unreadable CA bundle."""
        if self._session is not None and not self._session.closed:
            return self._session
        check_url(self.settings)
        ssl_context: ssl.SSLContext | bool = build_ssl_context(self.settings) if self.secure else False
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, connect=min(10.0, self.timeout_s))
        headers = {"User-Agent": USER_AGENT}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._observed)
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            headers=headers,
            # ssl=False only for http:// URLs, which never negotiate TLS anyway; https always verifies.
            connector=aiohttp.TCPConnector(ssl=ssl_context, limit=self.limit),
            trace_configs=[trace],
            # No proxy from the environment: the cloud's certificate, not a proxy's, is what is checked.
            trust_env=False,
        )
        return self._session

    async def _observed(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if self.bus is None:
            return
        date = params.response.headers.get("Date")
        if date:
            self.bus.publish("cloud.date", date=date, at=time.time(), tls=params.url.scheme == "https")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """session.request with the bearer token; use as `async with transport.request(...) as response`."""
        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        return self.open().request(method, self.url(path), headers=headers, allow_redirects=False, **kwargs)
