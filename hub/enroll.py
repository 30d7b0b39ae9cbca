"""Enrollment: a box trades the one-time code the commune gave the technician for its own cloud token.

`hub enroll CODE` (or the technician page's Cloud panel) posts the code to the cloud over the same verified TLS
as everything else, and writes the token to `<data_dir>/cloud-token` (mode 0600, atomically): /etc is read-only
under systemd's hardening. The token file wins over the secrets file's cloud_token, and is read again whenever it
changes, so a running hub uses a new enrollment at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hub.config.settings import Settings
from hub.ownership import service_owner
from hub.sync.transport import CloudTransport, InsecureURLError, describe_error

TOKEN_FILE = "cloud-token"  # noqa: S105 - a file name, not a secret
ENROLL_PATH = "/api/v1/enroll"


class EnrollError(Exception):
    """Enrollment failed; the message says why (and what to do). `status`: the cloud's HTTP answer, if any (a 4xx
    means the code itself was refused: trying it again will not help)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def token_path(data_dir: Path) -> Path:
    return Path(data_dir) / TOKEN_FILE


def read_token(data_dir: Path) -> str | None:
    try:
        token = token_path(data_dir).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def write_token(data_dir: Path, token: str) -> Path:
    """Atomically (temporary file, fsync, rename, fsync of the directory), readable by the service user only."""
    data_dir = Path(data_dir)
    created = not data_dir.exists()
    data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    owner = service_owner(data_dir)
    if owner is not None and created:
        os.chown(data_dir, *owner)
    target = token_path(data_dir)
    fd, tmp = tempfile.mkstemp(prefix=".cloud-token.", dir=data_dir)
    try:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


class TokenSource:
    """The hub's cloud token: the enrolled token file if there is one, else the secrets file's. The file is read
    again only when its modification time or size changes (a stat per request)."""

    def __init__(self, data_dir: Path, fallback: str | None) -> None:
        self.path = token_path(data_dir)
        self.fallback = fallback
        self._seen: tuple[int, int] | None = None
        self._token: str | None = None

    def __call__(self) -> str | None:
        try:
            st = self.path.stat()
        except OSError:
            self._seen, self._token = None, None
            return self.fallback
        key = (st.st_mtime_ns, st.st_size)
        if key != self._seen:
            self._seen = key
            self._token = read_token(self.path.parent)
        return self._token or self.fallback

    @property
    def origin(self) -> str:
        """Where the token in use comes from: 'enrolled', 'secrets' or 'none'."""
        if read_token(self.path.parent):
            return "enrolled"
        return "secrets" if self.fallback else "none"


@dataclass(frozen=True)
class Enrolled:
    hub_id: str
    token_file: Path
    cloud_url: str


async def enroll(settings: Settings, code: str) -> Enrolled:
    """Post the code; on success write the token file. EnrollError (naming the cause) otherwise."""
    code = code.strip()
    if not code:
        raise EnrollError("no enrollment code given")
    if settings.sync.cloud_url is None:
        raise EnrollError("no sync.cloud_url configured: set the commune cloud's address first")
    transport = CloudTransport(settings.sync, None)
    body = json.dumps({"code": code, "hub_id": settings.hub.id}).encode()
    try:
        async with transport.request("POST", ENROLL_PATH, data=body) as response:
            text = await response.text()
            status = response.status
    except InsecureURLError as exc:
        raise EnrollError(str(exc)) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise EnrollError(describe_error(exc, settings.sync)) from None
    finally:
        await transport.close()
    answer: Any
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {}
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        raise EnrollError(f"the cloud refused the code (HTTP {status}): {error or text[:200]}", status)
    if not isinstance(answer, dict) or not isinstance(answer.get("token"), str) or not answer["token"]:
        raise EnrollError(f"the cloud's answer has no token: {text[:200]}")
    if answer.get("hub_id") not in (None, settings.hub.id):
        raise EnrollError(f"the cloud enrolled this box as {answer['hub_id']!r}, but hub.id is {settings.hub.id!r}")
    path = await asyncio.to_thread(write_token, Path(settings.hub.data_dir), answer["token"])
    return Enrolled(settings.hub.id, path, str(settings.sync.cloud_url))
