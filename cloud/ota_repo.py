"""Serves a TUF repository of hub releases (see ota.repository): `/ota/metadata/*` and `/ota/targets/*`.

Static files from `hub-cloud serve --ota-repo DIR`; aiohttp's FileResponse honours Range (resumed blob
downloads). Paths are resolved and must stay inside the repository (no traversal, no hidden files).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)
REFRESH_CHECK_S = 600.0

OTA_REPO_KEY = web.AppKey("ota_repo", Path)


def _resolve(base: Path, relative: str) -> Path:
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        raise web.HTTPNotFound()
    path = (base / relative).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file():
        raise web.HTTPNotFound()
    return path


async def metadata(request: web.Request) -> web.FileResponse:
    path = _resolve(request.app[OTA_REPO_KEY] / "metadata", request.match_info["name"])
    # Metadata changes in place (timestamp.json): caches must revalidate.
    return web.FileResponse(path, headers={"Cache-Control": "no-cache", "Content-Type": "application/json"})


async def target(request: web.Request) -> web.FileResponse:
    path = _resolve(request.app[OTA_REPO_KEY] / "targets", request.match_info["path"])
    # Targets are content-addressed (hash-prefixed or named by hash): immutable.
    return web.FileResponse(
        path,
        headers={"Cache-Control": "public, max-age=31536000, immutable", "Content-Type": "application/octet-stream"},
    )


def add_routes(app: web.Application, repo: Path, keys: Path | None = None) -> None:
    """Serve `repo`; with `keys` (a key dir holding online/*.pem) also keep snapshot and timestamp fresh."""
    app[OTA_REPO_KEY] = repo
    app.router.add_get("/ota/metadata/{name}", metadata)
    app.router.add_get("/ota/targets/{path:.+}", target)
    if keys is not None:
        app.cleanup_ctx.append(_timestamp_refresher(repo, keys))


def refresh_online_metadata(repo: Path, keys: Path, now: datetime | None = None) -> list[str]:
    """Re-sign snapshot and/or timestamp (the online roles) once less than half their lifetime is left.

    Returns the roles re-signed. Targets and root are offline: their coming expiry is only logged."""
    from ota.repository import Repository  # the cloud serves without the ota package's signing code otherwise

    repository = Repository(repo, keys)
    at = now or datetime.now(UTC)
    done: list[str] = []
    if repository.load("snapshot").signed.expires - at <= repository.policy.snapshot / 2:
        repository.bump_snapshot()
        done.append("snapshot")
    if done or repository.load("timestamp").signed.expires - at <= repository.policy.timestamp / 2:
        repository.bump_timestamp()
        done.append("timestamp")
    for role in ("targets", "root"):
        left = repository.load(role).signed.expires - at
        if left <= repository.policy.for_role(role) / 4:
            log.warning(
                "OTA %s metadata expires in %s: re-sign it with the offline key (hub-release resign)", role, left
            )
    return done


def _timestamp_refresher(repo: Path, keys: Path) -> Callable[[web.Application], AsyncIterator[None]]:
    async def refresher(_: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    if roles := await asyncio.to_thread(refresh_online_metadata, repo, keys):
                        log.info("OTA metadata re-signed: %s", ", ".join(roles))
                except Exception:
                    # A missing key or repository is a setup error worth repeating in the log, not a crash.
                    log.exception("OTA timestamp refresh failed")
                await asyncio.sleep(REFRESH_CHECK_S)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return refresher
