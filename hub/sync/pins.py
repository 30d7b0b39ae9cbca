"""Key pins and the clear-text rule for the cloud URL: pure functions, so the settings can validate with them.

A pin is the SHA-256 of the certificate's SubjectPublicKeyInfo (as in HPKP, RFC 7469): it survives certificate
renewals that keep the key, and it is what `openssl x509 -pubkey | openssl pkey -pubin -outform der |
openssl dgst -sha256 -binary | base64` prints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
from typing import Any


def parse_pin(pin: str) -> bytes:
    """The 32 bytes of a pin written in base64 (44 characters) or hex (64), optionally prefixed 'sha256/'."""
    text = pin.strip().removeprefix("sha256/")
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"pin {pin!r}: expected the SHA-256 of a public key, in base64 (44 characters) or hex (64)")
    return raw


def spki_sha256(der_certificate: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_der_x509_certificate(der_certificate)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_url_problem(url: Any, allow_insecure_http: bool) -> str | None:
    """Why this cloud URL may not be used (plain HTTP off the box), or None."""
    if url is None:
        return None
    text = str(url)
    scheme = text.partition("://")[0]
    if scheme.lower() == "https":
        return None
    if scheme.lower() != "http":
        return f"{text!r}: expected an https:// URL"
    host = getattr(url, "host", None)
    if host is None:
        from urllib.parse import urlsplit

        host = urlsplit(text).hostname
    if is_loopback(host) or allow_insecure_http:
        return None
    return (
        f"{text!r} is plain HTTP to {host}: the hub token and the village's records would travel in clear text; "
        "use https:// (or set sync.allow_insecure_http = true for a test bench)"
    )
