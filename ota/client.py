"""The update client: TUF-verified check for a newer release, incremental plan, resumable fetch of blobs.

Interface (agreed in /work/prompts/ota9.md; used by `hub/updates/`):
  client = UpdateClient(metadata_dir, repo_url, bootstrap_root, arch, ca_bundle=..., max_blob_bytes=..., now=...)
  release = client.check(installed_version)      # Release | None; raises OtaError subclasses
  plan = client.plan(release, have)              # have(sha256) -> Path of a local copy, or None
  client.fetch(plan, staging_dir, progress)      # blobs land in staging_dir/blobs/<sha256>, verified
Additions (compatible): `release(version)` fetches one listed release by version (TargetError if not listed);
`cloud_time()` reads the repository's `Date` over verified HTTPS for `ota.timetrust`; `stats` counts bytes.

TUF (python-tuf 7 ngclient) protects the metadata: signatures and thresholds of every role, expiry against
the trusted reference time (freeze), version rollback of metadata, snapshot/targets consistency
(mix-and-match), bounded metadata sizes (endless data). The manifest is a TUF target (length + sha256 from
signed targets); each blob is checked against the manifest's sha256 and size and never read beyond that size.

Reference time: ngclient reads the clock once, in `TrustedMetadataSet.__init__` (`reference_time`); we
overwrite `updater._trusted_set.reference_time` with `now()` (see ota.timetrust) before `refresh()`.
The list of releases is read from the verified top-level targets (`updater._trusted_set.targets`): ngclient
has no public "list targets" call.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from tuf.api import exceptions as tuf_errors
from tuf.api._payload import TargetFile  # the defining module (strict mypy: no implicit re-exports)
from tuf.api.serialization import DeserializationError
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from ota.errors import (
    DiskSpaceError,
    MetadataError,
    OtaError,
    RollbackError,
    TargetError,
    TransportError,
)
from ota.fetch import Fetcher, FetchStats
from ota.manifest import MANIFEST_NAME, blobs, is_newer, parse_manifest, version_key
from ota.timetrust import parse_http_date

DEFAULT_MAX_BLOB = 256 * 1024 * 1024
DEFAULT_RESERVE = 32 * 1024 * 1024


@dataclass(frozen=True)
class Release:
    version: str
    manifest: dict[str, Any]
    manifest_bytes: bytes
    target_path: str


@dataclass(frozen=True)
class Plan:
    release: Release
    missing: dict[str, int]  # sha256 → size, to download
    reused: dict[str, Path] = field(default_factory=dict)  # sha256 → a local file with those bytes
    fetch_bytes: int = 0
    reuse_bytes: int = 0
    total_bytes: int = 0


class _TufFetcher(FetcherInterface):
    """ngclient's fetcher with our CA bundle (the default one only knows the system store)."""

    def __init__(self, ca_bundle: Path | None, timeout: float) -> None:
        kwargs: dict[str, Any] = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False}
        if ca_bundle is not None:
            kwargs["ca_certs"] = str(ca_bundle)
        self._pool = urllib3.PoolManager(**kwargs)

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            response = self._pool.request("GET", url, preload_content=False)
        except urllib3.exceptions.TimeoutError as exc:
            raise tuf_errors.SlowRetrievalError from exc
        if response.status >= 400:
            response.release_conn()
            raise tuf_errors.DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
        return self._chunks(response)

    @staticmethod
    def _chunks(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from response.stream(64 * 1024)
        except urllib3.exceptions.TimeoutError as exc:
            raise tuf_errors.SlowRetrievalError from exc
        finally:
            # ngclient stops reading at its length bound (endless data): never pool a half-read connection.
            response.close()


def _metadata_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return f"metadata expired (freeze attack or the repository stopped refreshing it): {text}"
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return f"metadata not signed by the trusted keys (wrong key or forged): {text}"
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return f"metadata version rollback or mix-and-match: {text}"
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return f"metadata does not match the snapshot/timestamp that names it (mix-and-match): {text}"
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        return f"metadata larger than allowed (endless data): {text}"
    return f"metadata refused: {type(exc).__name__}: {text}"


class UpdateClient:
    def __init__(
        self,
        metadata_dir: Path,
        repo_url: str,
        bootstrap_root: bytes,
        arch: str,
        *,
        ca_bundle: Path | None = None,
        max_blob_bytes: int = DEFAULT_MAX_BLOB,
        now: Callable[[], datetime] | None = None,
        reserve_bytes: int = DEFAULT_RESERVE,
        timeout: float = 30.0,
        rate_limit: int | None = None,
        parallel: int = 4,
    ) -> None:
        self.metadata_dir = metadata_dir
        self.repo_url = repo_url.rstrip("/")
        self.bootstrap_root = bootstrap_root
        self.arch = arch
        self.ca_bundle = ca_bundle
        self.max_blob_bytes = max_blob_bytes
        self.now = now or (lambda: datetime.now(UTC))
        self.reserve_bytes = reserve_bytes
        self.timeout = timeout
        self.stats = FetchStats()
        self.parallel = parallel
        self._fetcher = Fetcher(
            ca_bundle=ca_bundle, timeout=timeout, rate_limit=rate_limit, stats=self.stats, connections=parallel
        )

    @property
    def metadata_url(self) -> str:
        return f"{self.repo_url}/ota/metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.repo_url}/ota/targets/"

    def blob_url(self, sha256: str) -> str:
        return f"{self.targets_url}blobs/{sha256}"

    # -- TUF ------------------------------------------------------------------------------------------

    def _refresh(self) -> Updater:
        reference = self.now()  # ClockUntrustedError propagates: no check without a trusted time
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        try:
            updater = Updater(
                str(self.metadata_dir),
                self.metadata_url,
                target_base_url=self.targets_url,
                fetcher=_TufFetcher(self.ca_bundle, self.timeout),
                config=UpdaterConfig(app_user_agent="village-hub-ota"),
                bootstrap=self.bootstrap_root,
            )
        except (tuf_errors.RepositoryError, DeserializationError, ValueError) as exc:
            raise MetadataError(f"the bootstrap root is not valid TUF root metadata: {exc}") from exc
        updater._trusted_set.reference_time = reference
        try:
            updater.refresh()
        except (tuf_errors.RepositoryError, DeserializationError) as exc:
            raise MetadataError(_metadata_reason(exc)) from exc
        except tuf_errors.DownloadLengthMismatchError as exc:
            raise MetadataError(_metadata_reason(exc)) from exc
        except (tuf_errors.DownloadError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(f"cannot fetch metadata from {self.metadata_url}: {exc}") from exc
        return updater

    def _listed(self, updater: Updater) -> dict[str, str]:
        """version → target path of every release for our arch in the verified targets."""
        out: dict[str, str] = {}
        for name in updater._trusted_set.targets.targets:
            parts = name.split("/")
            if len(parts) != 4 or parts[0] != "releases" or parts[1] != self.arch or parts[3] != MANIFEST_NAME:
                continue
            try:
                version_key(parts[2])
            except OtaError:
                continue
            out[parts[2]] = name
        return out

    def check(self, installed_version: str) -> Release | None:
        """The newest release for our arch if newer than `installed_version`, else None."""
        updater = self._refresh()
        listed = self._listed(updater)
        if not listed:
            return None
        newest = max(listed, key=version_key)
        if version_key(newest) == version_key(installed_version):
            return None
        if not is_newer(newest, installed_version):
            raise RollbackError(
                f"the repository's newest release {newest} is older than the installed {installed_version}: refused"
            )
        return self._load_release(updater, listed[newest], newest, installed_version)

    def release(self, version: str, installed_version: str | None = None) -> Release:
        """One release by version (e.g. an operator asked for it); it must be listed in signed targets."""
        updater = self._refresh()
        name = f"releases/{self.arch}/{version}/{MANIFEST_NAME}"
        if updater.get_targetinfo(name) is None:
            raise TargetError(f"release {version} for {self.arch} is not listed in the signed targets metadata")
        return self._load_release(updater, name, version, installed_version)

    def _load_release(self, updater: Updater, name: str, version: str, installed: str | None) -> Release:
        info: TargetFile | None = updater.get_targetinfo(name)
        if info is None:
            raise TargetError(f"{name} is not listed in the signed targets metadata")
        with tempfile.TemporaryDirectory(dir=self.metadata_dir) as tmp:
            path = Path(tmp) / MANIFEST_NAME
            try:
                updater.download_target(info, filepath=str(path))
            except tuf_errors.LengthOrHashMismatchError as exc:
                raise TargetError(f"manifest of {version} does not match the signed targets (tampered): {exc}") from exc
            except tuf_errors.DownloadLengthMismatchError as exc:
                raise TargetError(f"manifest of {version} is longer than signed (endless data): {exc}") from exc
            except (tuf_errors.DownloadError, urllib3.exceptions.HTTPError) as exc:
                raise TransportError(f"cannot fetch the manifest of {version}: {exc}") from exc
            data = path.read_bytes()
        manifest = parse_manifest(data)
        if manifest["version"] != version or manifest["arch"] != self.arch:
            raise TargetError(
                f"manifest at {name} says version {manifest['version']} for {manifest['arch']}: does not match its path"
            )
        if installed is not None and not is_newer(version, installed):
            raise RollbackError(f"release {version} is not newer than the installed {installed}: refused")
        for digest, size in blobs(manifest).items():
            if size > self.max_blob_bytes:
                raise TargetError(f"release {version}: file {digest[:12]}… of {size} bytes exceeds the blob limit")
        return Release(version=version, manifest=manifest, manifest_bytes=data, target_path=name)

    # -- incremental download -------------------------------------------------------------------------

    def plan(self, release: Release, have: Callable[[str], Path | None]) -> Plan:
        missing: dict[str, int] = {}
        reused: dict[str, Path] = {}
        for digest, size in blobs(release.manifest).items():
            local = have(digest)
            if local is not None:
                reused[digest] = local
            else:
                missing[digest] = size
        wanted = blobs(release.manifest)
        return Plan(
            release=release,
            missing=missing,
            reused=reused,
            fetch_bytes=sum(missing.values()),
            reuse_bytes=sum(wanted[d] for d in reused),
            total_bytes=sum(wanted.values()),
        )

    def fetch(self, plan: Plan, staging_dir: Path, progress: Callable[[int], None] | None = None) -> None:
        """Download the plan's missing blobs into `staging_dir/blobs/`, resuming partial ones.

        Free disk is checked first: what is still to download, plus a whole new slot (files are copied or
        linked into the inactive slot), plus a reserve. A plan that does not fit raises DiskSpaceError and
        nothing is downloaded.
        """
        blob_dir = staging_dir / "blobs"
        blob_dir.mkdir(parents=True, exist_ok=True)
        remaining = 0
        for digest, size in plan.missing.items():
            done = blob_dir / digest
            part = blob_dir / f"{digest}.part"
            if done.exists() and done.stat().st_size == size:
                continue
            remaining += size - (min(part.stat().st_size, size) if part.exists() else 0)
        required = remaining + plan.total_bytes + max(self.reserve_bytes, plan.total_bytes // 20)
        free = shutil.disk_usage(blob_dir).free
        if free < required:
            raise DiskSpaceError(
                f"release {plan.release.version} needs {_mib(required)} free on {staging_dir} "
                f"({_mib(remaining)} to download + {_mib(plan.total_bytes)} for the new slot + reserve), "
                f"only {_mib(free)} free: not started"
            )
        lock = threading.Lock()

        def report(n: int) -> None:
            if progress is not None:
                with lock:  # callers' progress callbacks need not be thread-safe
                    progress(n)

        jobs = sorted(plan.missing.items())
        self._fetcher.batch = True
        try:
            # A few downloads in parallel: a slot is thousands of small files, and on a 3G link each costs a
            # round trip. Large blobs still stream one per connection.
            with ThreadPoolExecutor(max_workers=max(1, self.parallel), thread_name_prefix="ota-fetch") as pool:
                futures = [
                    pool.submit(self._fetcher.fetch, self.blob_url(d), blob_dir / d, size, d, report)
                    for d, size in jobs
                ]
                try:
                    for future in as_completed(futures):
                        future.result()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            self._fetcher.batch = False
            os.sync()  # one flush for the batch: far cheaper than an fsync per small file on an SD card

    def cloud_time(self) -> datetime | None:
        """The repository's `Date`, only over HTTPS with a verified certificate (else None)."""
        if not self.repo_url.startswith("https://"):
            return None
        pool = urllib3.PoolManager(
            ca_certs=str(self.ca_bundle) if self.ca_bundle else None, cert_reqs="CERT_REQUIRED", retries=False
        )
        try:
            response = pool.request("HEAD", self.metadata_url + "timestamp.json", timeout=self.timeout)
        except urllib3.exceptions.HTTPError:
            return None
        received = time.monotonic()
        date = response.headers.get("Date")
        if response.status >= 400 or not date:
            return None
        return parse_http_date(date, received)


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"
