"""Downloading the audio a cloud command refers to: resumable, bounded, and checked before it may play.

The file grows in `<data_dir>/media-cache/<sha256>.part`; a broken transfer (or a restart) resumes from its size
with `Range: bytes=N-`. More bytes than announced, or than the size limit, stop the download; a hash that does
not match deletes the partial file. Only a verified file is handed on (to the broadcast media library).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from hub.sync.pins import is_loopback
from hub.sync.transport import CloudTransport, InsecureURLError, describe_error

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class MediaError(Exception):
    """The media could not be fetched or did not check out; the message says which and why."""


@dataclass(frozen=True)
class MediaRef:
    url: str
    sha256: str
    size: int
    name: str

    @classmethod
    def parse(cls, data: Any, where: str = "media") -> MediaRef:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object {{url, sha256, size, name}}")
        url, sha, size, name = data.get("url"), data.get("sha256"), data.get("size"), data.get("name", "")
        if not isinstance(url, str) or not (url.startswith("/") or url.startswith(("https://", "http://"))):
            raise ValueError(f"{where}.url: expected a path on the cloud ('/api/v1/media/…') or an https:// URL")
        if not isinstance(sha, str) or not SHA256.match(sha.lower()):
            raise ValueError(f"{where}.sha256: expected 64 hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"{where}.size: expected a positive integer (bytes)")
        if not isinstance(name, str) or len(name) > 200:
            raise ValueError(f"{where}.name: expected a file name of at most 200 characters")
        return cls(url, sha.lower(), size, name or f"{sha[:12]}.audio")


@dataclass
class FetchStats:
    resumed_from: int = 0
    attempts: int = 0
    downloaded: int = 0


class MediaFetcher:
    def __init__(
        self, transport: CloudTransport, cache_dir: Path, max_bytes: int, attempts: int = 4, retry_s: float = 1.0
    ) -> None:
        self.transport = transport
        self.cache_dir = Path(cache_dir)
        self.max_bytes = max_bytes
        self.attempts = attempts
        self.retry_s = retry_s

    def part_path(self, ref: MediaRef) -> Path:
        return self.cache_dir / f"{ref.sha256}.part"

    def done_path(self, ref: MediaRef) -> Path:
        return self.cache_dir / f"{ref.sha256}.ok"

    async def fetch(self, ref: MediaRef) -> tuple[Path, FetchStats]:
        """The verified file (cached under its hash), downloading or resuming as needed."""
        if ref.size > self.max_bytes:
            raise MediaError(
                f"{ref.name}: {ref.size} bytes is over the limit of {self.max_bytes} (commands.media_max_mb)"
            )
        done = self.done_path(ref)
        stats = FetchStats()
        if done.exists():
            return done, stats
        self.cache_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        part = self.part_path(ref)
        last_error = ""
        for attempt in range(self.attempts):
            stats.attempts = attempt + 1
            try:
                if await self._transfer(ref, part, stats):
                    break
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last_error = describe_error(exc, self.transport.settings)
                log.warning("media %s: attempt %d: %s", ref.sha256[:12], attempt + 1, last_error)
                await asyncio.sleep(self.retry_s * (2**attempt))
        else:
            raise MediaError(f"{ref.name}: download failed after {self.attempts} attempts: {last_error}")
        digest = await asyncio.to_thread(_sha256_of, part)
        if digest != ref.sha256:
            part.unlink(missing_ok=True)
            raise MediaError(f"{ref.name}: sha256 mismatch (got {digest}, announced {ref.sha256}); file deleted")
        part.replace(done)
        return done, stats

    def _request(self, ref: MediaRef, headers: dict[str, str]) -> Any:
        timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=30.0)
        if ref.url.startswith("/"):
            return self.transport.request("GET", ref.url, headers=headers, timeout=timeout)
        base = urlsplit(self.transport.base_url or "")
        target = urlsplit(ref.url)
        insecure = target.scheme == "http" and not is_loopback(target.hostname)
        if insecure and not self.transport.settings.allow_insecure_http:
            raise InsecureURLError(f"media url {ref.url!r} is plain HTTP: refused")
        if (target.scheme, target.netloc) == (base.scheme, base.netloc):
            path = target.path + (f"?{target.query}" if target.query else "")
            return self.transport.request("GET", path, headers=headers, timeout=timeout)
        # Another host (a CDN): the same verified TLS, but never the hub's token.
        return self.transport.open().get(ref.url, headers=headers, timeout=timeout, allow_redirects=False)

    async def _transfer(self, ref: MediaRef, part: Path, stats: FetchStats) -> bool:
        """One request; True when the part file holds `size` bytes."""
        have = _size(part)
        if have > ref.size:
            _discard(part)
            have = 0
        if have == ref.size:
            return True
        headers = {"Range": f"bytes={have}-"} if have else {}
        if have and not stats.resumed_from:
            stats.resumed_from = have
        try:
            context = self._request(ref, headers)
        except InsecureURLError as exc:
            raise MediaError(str(exc)) from None
        async with context as response:
            if response.status == 206:
                match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != have:
                    raise MediaError(f"{ref.name}: the cloud answered a range that does not start at byte {have}")
                mode = "ab"
            elif response.status == 200:
                have, mode = 0, "wb"  # no range support: start again
            elif response.status == 416:
                _discard(part)
                raise aiohttp.ClientPayloadError("range not satisfiable; starting again")
            else:
                text = (await response.text())[:200]
                raise MediaError(f"{ref.name}: the cloud answered HTTP {response.status}: {text}")
            length = response.content_length
            if length is not None and have + length > ref.size:
                _discard(part)
                raise MediaError(f"{ref.name}: the cloud sends {have + length} bytes, {ref.size} were announced")
            with part.open(mode) as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    have += len(chunk)
                    if have > ref.size or have > self.max_bytes:
                        out.close()
                        _discard(part)
                        raise MediaError(f"{ref.name}: more bytes than the {ref.size} announced; download deleted")
                    out.write(chunk)
                    stats.downloaded += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        return have == ref.size

    def forget(self, ref: MediaRef) -> None:
        for path in (self.part_path(ref), self.done_path(ref)):
            with contextlib.suppress(OSError):
                path.unlink()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


async def file_chunks(path: Path, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """A file as the async iterable of chunks the media library's add_stream reads."""
    with path.open("rb") as f:
        while block := await asyncio.to_thread(f.read, size):
            yield block
