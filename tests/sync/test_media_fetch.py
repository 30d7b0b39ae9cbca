"""Media fetch against the real reference cloud (its Range support is aiohttp's FileResponse) and against a
server that cuts the transfer: resumed with Range, bounded by the announced size and the limit, checked by hash
before anything may play; end to end, an announcement with a cloud audio file plays from the media library."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from hub.config.settings import SyncSection
from hub.store.database import DB_NAME
from hub.sync.media_fetch import MediaError, MediaFetcher, MediaRef
from hub.sync.transport import CloudTransport
from tests.broadcast.rig import write_tone
from tests.support.processes import CloudProcess, HubProcess, free_port, wait_until, write_hub_config
from tests.sync.cloud_admin import FINAL, command, queue, upload_media
from tests.sync.test_inbox_processes import BROADCAST

HUB_ID = "thon-loa-2"
DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CloudProcess, str, dict[str, object]]]:
    c = CloudProcess(tmp_path_factory.mktemp("media-cloud")).start()
    token = c.add_hub(HUB_ID)
    uploaded = upload_media(c, DATA, "thông báo.mp3")
    yield c, token, uploaded
    c.stop()


def fetcher(url: str, token: str | None, cache: Path, max_bytes: int = 10_000_000) -> MediaFetcher:
    transport = CloudTransport(SyncSection.model_validate({"cloud_url": url}), token)
    return MediaFetcher(transport, cache, max_bytes, attempts=3, retry_s=0.05)


def files(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def ref(size: int = len(DATA), sha: str = SHA, url: str = f"/api/v1/media/{SHA}") -> MediaRef:
    return MediaRef(url=url, sha256=sha, size=size, name="thông báo.mp3")


async def test_upload_answers_the_hash_the_size_and_the_name(
    cloud: tuple[CloudProcess, str, dict[str, object]],
) -> None:
    _, _, uploaded = cloud
    assert uploaded["sha256"] == SHA
    assert uploaded["size"] == len(DATA)
    assert uploaded["name"] == "thông báo.mp3"
    assert uploaded["url"] == f"/api/v1/media/{SHA}"


async def test_a_download_is_verified_and_a_partial_one_resumed(
    cloud: tuple[CloudProcess, str, dict[str, object]], tmp_path: Path
) -> None:
    c, token, _ = cloud
    f = fetcher(c.url, token, tmp_path)
    f.part_path(ref()).write_bytes(DATA[:120_000])  # a previous run got this far
    try:
        path, stats = await f.fetch(ref())
    finally:
        await f.transport.close()
    assert path.read_bytes() == DATA
    assert stats.resumed_from == 120_000
    assert stats.downloaded == len(DATA) - 120_000
    assert not f.part_path(ref()).exists()


async def test_a_hash_mismatch_deletes_the_file_and_fails(
    cloud: tuple[CloudProcess, str, dict[str, object]], tmp_path: Path
) -> None:
    c, token, _ = cloud
    f = fetcher(c.url, token, tmp_path)
    wrong = ref(sha="ab" * 32, url=f"/api/v1/media/{SHA}")
    try:
        with pytest.raises(MediaError, match="sha256 mismatch"):
            await f.fetch(wrong)
    finally:
        await f.transport.close()
    assert files(tmp_path) == []


async def test_more_bytes_than_announced_or_than_the_limit_are_refused(
    cloud: tuple[CloudProcess, str, dict[str, object]], tmp_path: Path
) -> None:
    c, token, _ = cloud
    f = fetcher(c.url, token, tmp_path)
    try:
        with pytest.raises(MediaError, match="announced"):
            await f.fetch(ref(size=1000))
        assert files(tmp_path) == []
        small = fetcher(c.url, token, tmp_path, max_bytes=1000)
        with pytest.raises(MediaError, match="over the limit"):
            await small.fetch(ref())
    finally:
        await f.transport.close()


async def test_without_the_hub_token_the_cloud_refuses(
    cloud: tuple[CloudProcess, str, dict[str, object]], tmp_path: Path
) -> None:
    c, _, _ = cloud
    f = fetcher(c.url, None, tmp_path)
    try:
        with pytest.raises(MediaError, match="HTTP 401"):
            await f.fetch(ref())
    finally:
        await f.transport.close()


class CuttingServer:
    """Serves DATA with Range support, but cuts the first transfer after 100 kB (a 4G link dropping)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.ranges: list[str | None] = []
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Range")
        self.ranges.append(header)
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        body = DATA[start:]
        status = 206 if header else 200
        headers = {"Content-Length": str(len(body))}
        if header:
            headers["Content-Range"] = f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if len(self.ranges) == 1:
            await response.write(body[:100_000])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()  # cut mid-body
            return response
        await response.write(body)
        return response

    async def __aenter__(self) -> CuttingServer:
        app = web.Application()
        app.router.add_get("/media.mp3", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_a_cut_transfer_resumes_with_range(tmp_path: Path) -> None:
    async with CuttingServer() as server:
        f = fetcher(f"http://127.0.0.1:{server.port}", "tok", tmp_path)
        try:
            path, stats = await f.fetch(ref(url="/media.mp3"))
        finally:
            await f.transport.close()
    assert path.read_bytes() == DATA
    assert server.ranges[0] is None
    assert server.ranges[1] is not None
    assert server.ranges[1].startswith("bytes=")
    resumed_at = int(server.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 100_000
    assert stats.attempts == 2


def test_an_announcement_with_cloud_audio_plays_from_the_library(tmp_path: Path) -> None:
    c = CloudProcess(tmp_path / "cloud").start()
    try:
        token = c.add_hub(HUB_ID)
        tone = write_tone(tmp_path / "tone.wav", 2.0, 440.0).read_bytes()
        uploaded = upload_media(c, tone, "Bản tin chiều.wav")
        media = {k: uploaded[k] for k in ("url", "sha256", "size", "name")}
        first = queue(c, HUB_ID, "broadcast.announce", {"media": media, "zones": ["khu 1"]})
        second = queue(c, HUB_ID, "broadcast.announce", {"media": media})  # the same file: not fetched again
        config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=c.url, token=token, extra=BROADCAST)
        hub = HubProcess(config).start()
        try:
            for cid in (first, second):
                wait_until(lambda cid=cid: command(c, HUB_ID, cid)["status"] in FINAL, 60, what=f"command {cid}")
                answer = command(c, HUB_ID, cid)
                assert answer["status"] == "applied", answer
        finally:
            hub.terminate()
        data = tmp_path / "hub" / "data"
        conn = sqlite3.connect(data / DB_NAME)
        try:
            titles = [r[0] for r in conn.execute("SELECT title FROM broadcast_log ORDER BY id")]
        finally:
            conn.close()
        assert titles == ["Bản tin chiều.wav", "Bản tin chiều.wav"]
        assert list((data / "media-cache").iterdir()) == []  # the library keeps its own copy
    finally:
        c.stop()
