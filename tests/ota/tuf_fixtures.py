"""A real TUF repository served by the reference cloud's app over HTTP on loopback, and slot trees."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from cloud.server import build_app
from ota.client import UpdateClient
from ota.manifest import MANIFEST_NAME
from ota.repository import Repository
from tests.support.processes import free_port


class OtaServer:
    """`cloud.server.build_app(..., ota_repo=...)` on a real socket, in a thread (the client is blocking)."""

    def __init__(self, db: Path, repo: Path) -> None:
        self.port = free_port()
        self._app = build_app(db, "test-admin-token", ota_repo=repo)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._runner = web.AppRunner(self._app, shutdown_timeout=2)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def start(self) -> OtaServer:
        self._thread.start()
        assert self._ready.wait(20), "OTA test server did not start"
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(20)


def make_slot(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    (path / "bin").mkdir()
    (path / "bin" / "python3").symlink_to("/usr/bin/python3")
    for rel, data in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path


def slot_files(version: str, modules: int = 40, size: int = 6000) -> dict[str, bytes]:
    """A hub-like tree: many modules, one of which carries the version (a one-module change)."""
    files = {
        f"lib/python3.11/site-packages/dep/mod{i:03d}.py": (f"# module {i}\n".encode() * (size // 12 + 1))[:size]
        for i in range(modules)
    }
    files["lib/python3.11/site-packages/hub/__init__.py"] = f'__version__ = "{version}"\n'.encode()
    files["lib/python3.11/site-packages/hub/big.bin"] = bytes(range(256)) * 400
    return files


@dataclass
class World:
    tmp: Path
    repo: Repository
    server: OtaServer
    installed: Path  # the running slot (its release.json is what "installed version untouched" compares)

    def publish(self, version: str, files: dict[str, bytes] | None = None) -> dict[str, object]:
        slot = make_slot(self.tmp / f"build-{version}", files or slot_files(version))
        return self.repo.add_release(slot, version, "x86_64", "3.11")

    def install(self, version: str) -> None:
        """Mark `version` as installed: its slot tree plus release.json (what helper B's installer leaves)."""
        data = next((self.repo.targets_dir / "releases" / "x86_64" / version).glob(f"*.{MANIFEST_NAME}")).read_bytes()
        if self.installed.exists():
            shutil.rmtree(self.installed)
        shutil.copytree(self.tmp / f"build-{version}", self.installed, symlinks=True)
        (self.installed / MANIFEST_NAME).write_bytes(data)

    def client(self, **kwargs: object) -> UpdateClient:
        return UpdateClient(
            self.tmp / "client-metadata",
            self.server.url,
            self.repo.root_bytes(),
            "x86_64",
            **kwargs,  # type: ignore[arg-type]
        )

    def have(self, digest: str) -> Path | None:
        """Blobs the installed slot already holds (by content hash), as helper B's slots module answers."""
        manifest = json.loads((self.installed / MANIFEST_NAME).read_bytes())
        for rel, entry in manifest["files"].items():
            if entry["sha256"] == digest and "link" not in entry:
                return self.installed / str(rel)
        return None

    def installed_manifest(self) -> bytes:
        return (self.installed / MANIFEST_NAME).read_bytes()


@contextmanager
def running_world(tmp_path: Path) -> Iterator[World]:
    """A repository with 0.1.0 published and installed, served over HTTP on loopback."""
    repo = Repository.init(tmp_path / "repo", tmp_path / "keys")
    server = OtaServer(tmp_path / "cloud.sqlite3", repo.root).start()
    w = World(tmp_path, repo, server, tmp_path / "slots" / "a")
    try:
        w.publish("0.1.0")
        w.install("0.1.0")
        yield w
    finally:
        server.stop()
