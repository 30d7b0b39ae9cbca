"""Resumable, size-bounded, hash-checked download of one blob (HTTP Range, fsynced `.part` files).

A download writes `<dest>.part`, fsyncing every few MiB, so after a kill or power cut the next attempt asks
for `Range: bytes=<part size>-` and transfers only the rest. Never more than the declared size is read: a
server that sends more (endless data) is cut off at the bound. The finished file is hashed before it is
renamed into place; a mismatch after a resume restarts once from zero (a power cut can leave garbage at the
tail of a file whose length was already extended), then fails.

`python -m ota.fetch URL DEST --size N --sha256 HEX [--rate BYTES_PER_S]` runs one download (tests kill it).
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

from ota.errors import TargetError, TransportError
from ota.manifest import sha256_file

CHUNK = 64 * 1024
FSYNC_EVERY = 4 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass
class FetchStats:
    """Counters across downloads: what crossed the network, and how much of it was a resumed tail."""

    bytes_transferred: int = 0
    files_completed: int = 0
    resumed: int = 0
    restarted: int = 0
    ranges: list[int] = field(default_factory=list)


class Fetcher:
    def __init__(
        self,
        ca_bundle: Path | None = None,
        timeout: float = 30.0,
        rate_limit: int | None = None,
        stats: FetchStats | None = None,
        connections: int = 1,
    ) -> None:
        kwargs: dict[str, object] = {
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "retries": False,
            "maxsize": connections,  # one kept-alive connection per parallel download
        }
        if ca_bundle is not None:
            kwargs["ca_certs"] = str(ca_bundle)
        self._pool = urllib3.PoolManager(**kwargs)  # type: ignore[arg-type]
        self.rate_limit = rate_limit
        # Batch mode (UpdateClient.fetch, thousands of small blobs): no fsync per small file nor per rename, one
        # os.sync() at the end. A power cut before it can only cost re-downloading a blob, never accept a wrong
        # one: a finished blob is re-hashed before it is reused (fetch() below, and the installer).
        self.batch = False
        self.stats = stats or FetchStats()
        self._lock = threading.Lock()  # downloads may run in parallel threads; the counters are shared

    def fetch(
        self,
        url: str,
        dest: Path,
        size: int,
        sha256: str,
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Download `url` to `dest` (resuming `dest.part`); returns `dest` once its size and hash match."""
        if dest.exists():
            if dest.stat().st_size == size and sha256_file(dest) == sha256:
                return dest
            dest.unlink()
        part = dest.with_name(dest.name + ".part")
        for attempt in (1, 2):
            resumed = part.exists() and part.stat().st_size > 0
            self._download(url, part, size, progress)
            if sha256_file(part) == sha256:
                part.replace(dest)
                if not self.batch:
                    fsync_dir(dest.parent)
                with self._lock:
                    self.stats.files_completed += 1
                return dest
            part.unlink()
            if not resumed or attempt == 2:
                raise TargetError(f"{url}: content does not match the sha256 in the signed manifest (tampered blob)")
            with self._lock:
                self.stats.restarted += 1
        raise AssertionError("unreachable")  # pragma: no cover

    def _download(self, url: str, part: Path, size: int, progress: Callable[[int], None] | None) -> None:
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have == size:
            part.touch()  # an empty file needs no request
            return None
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            response = self._pool.request("GET", url, headers=headers, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"{url}: {exc}") from exc
        try:
            if response.status == 416 and have:
                # Our part is not a prefix the server can extend: start again.
                part.unlink()
                response.drain_conn()
                response.release_conn()
                return self._download(url, part, size, progress)
            if response.status == 206 and have:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != have:
                    raise TransportError(
                        f"{url}: server answered Range {have}- with {response.headers.get('Content-Range')!r}"
                    )
                with self._lock:
                    self.stats.resumed += 1
                    self.stats.ranges.append(have)
                mode = "ab"
            elif response.status == 200:
                have, mode = 0, "wb"
            else:
                raise TransportError(f"{url}: HTTP {response.status}")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and have + int(declared) > size:
                raise TargetError(
                    f"{url}: server announces {have + int(declared)} bytes, the signed manifest says {size} "
                    "(endless data refused)"
                )
            self._copy(response, part, mode, have, size, url, progress)
        except BaseException:
            # Unread body (refused, interrupted): the connection cannot be reused; close it rather than leave
            # the server blocked sending the rest.
            response.close()
            raise
        response.release_conn()
        return None

    def _copy(
        self,
        response: urllib3.BaseHTTPResponse,
        part: Path,
        mode: str,
        have: int,
        size: int,
        url: str,
        progress: Callable[[int], None] | None,
    ) -> None:
        started, start_have = time.monotonic(), have
        since_sync = 0
        with part.open(mode) as f:
            while have < size:
                try:
                    chunk = response.read(min(CHUNK, size - have))
                except urllib3.exceptions.HTTPError as exc:
                    f.flush()
                    os.fsync(f.fileno())
                    raise TransportError(f"{url}: interrupted after {have} of {size} bytes: {exc}") from exc
                if not chunk:
                    break
                f.write(chunk)
                have += len(chunk)
                since_sync += len(chunk)
                with self._lock:
                    self.stats.bytes_transferred += len(chunk)
                if since_sync >= FSYNC_EVERY:
                    f.flush()
                    os.fsync(f.fileno())
                    since_sync = 0
                if progress is not None:
                    progress(len(chunk))
                if self.rate_limit:
                    ahead = (have - start_have) / self.rate_limit - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            f.flush()
            if not self.batch or size >= FSYNC_EVERY:
                os.fsync(f.fileno())
        if have < size:
            raise TransportError(f"{url}: connection closed after {have} of {size} bytes (will resume)")
        # Bounded read: we stopped at the declared size; one more byte means the server lies about it.
        if response.read(1):
            raise TargetError(f"{url}: server sent more than the {size} bytes of the signed manifest (endless data)")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ota.fetch", description="resumable download of one blob")
    parser.add_argument("url")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--rate", type=int, help="bandwidth limit in bytes per second")
    parser.add_argument("--ca-bundle", type=Path)
    args = parser.parse_args(argv)
    fetcher = Fetcher(ca_bundle=args.ca_bundle, rate_limit=args.rate)
    fetcher.fetch(args.url, args.dest, args.size, args.sha256)
    print(f"fetched {fetcher.stats.bytes_transferred} bytes (resumed {fetcher.stats.resumed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
