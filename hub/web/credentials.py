"""The technician's password: set at the first visit or by `hub provision`, never shipped as a default.

Kept in the data directory (mode 0600, the service user's), not in /etc: the service must be able to write it
under systemd's ProtectSystem=strict, and a password changed on site must survive updates of the image. Hashed
with scrypt from the standard library (memory-hard; no extra dependency on the box).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "technician.json"
MIN_LENGTH = 8
MAX_LENGTH = 256
# scrypt cost: ~50 ms and 16 MiB on a Pi 4; the login rate limit does the rest.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class PasswordRejected(ValueError):
    """The new password does not meet the rules; the message says which."""


@dataclass(frozen=True, slots=True)
class Credential:
    user: str
    hash: str
    set_at: float


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 2**20)
    enc = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${enc(salt).decode()}${enc(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 2**20
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def check_new_password(password: str, user: str, hub_id: str) -> None:
    """NIST SP 800-63B's rules: a minimum length, no composition rules, refuse the obvious ones."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"the password must have at most {MAX_LENGTH} characters")
    lowered = password.casefold()
    if lowered in {user.casefold(), hub_id.casefold()} or len(set(password)) < 3:
        raise PasswordRejected("the password is too easy to guess (it repeats the user name, the hub id or one letter)")
    if lowered in {"password", "12345678", "123456789", "1234567890", "matkhau123", "admin123", "11111111"}:
        raise PasswordRejected("the password is one of the most common passwords")


class CredentialFile:
    """One technician account (the box has one technician page and one installer at a time)."""

    def __init__(self, data_dir: Path, preset_hash: str | None = None) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._preset = preset_hash  # from the secrets file, for images provisioned before shipping

    def load(self) -> Credential | None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return Credential(str(raw["user"]), str(raw["hash"]), float(raw["set_at"]))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"{self.path}: unreadable technician credential ({exc}); run `hub provision`") from exc
        if self._preset:
            return Credential("technician", self._preset, 0.0)
        return None

    def is_set(self) -> bool:
        return self.load() is not None

    def verify(self, user: str, password: str) -> Credential | None:
        credential = self.load()
        if credential is None:
            return None
        # Always hash, even for a wrong user name, so timing does not tell which part was wrong.
        ok = verify_password(password, credential.hash)
        return credential if ok and hmac.compare_digest(user.casefold(), credential.user.casefold()) else None

    def set(self, user: str, password: str, hub_id: str) -> Credential:
        user = user.strip()
        if not user or len(user) > 64 or any(c.isspace() for c in user):
            raise PasswordRejected("the user name must be 1-64 characters without spaces")
        check_new_password(password, user, hub_id)
        credential = Credential(user, hash_password(password), time.time())
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)  # village data: not for others
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"user": credential.user, "hash": credential.hash, "set_at": credential.set_at}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return credential


LOCAL_TOKEN_FILE = "local-api.token"  # noqa: S105 - a file name, not a token


def local_token(data_dir: Path, create: bool = False) -> str | None:
    """The bearer token for programs on the box itself (`hub doctor`): whoever can read this 0600 file in the
    service's data directory is root or the service user, and may read /api/health without a browser login."""
    path = Path(data_dir) / LOCAL_TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    except OSError:
        return None
    if not create:
        return None
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    path.with_suffix(".tmp").replace(path)
    return token
