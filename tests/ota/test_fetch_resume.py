"""Resumable blob downloads from a real `hub-cloud serve --ota-repo` process: kill -9, power-cut tails, Range."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ota.errors import TransportError
from ota.fetch import Fetcher
from tests.support.processes import HUB_CLOUD, free_port, http_get, wait_until

SIZE = 8 * 1024 * 1024


class OtaCloud:
    def __init__(self, tmp: Path) -> None:
        self.repo = tmp / "repo"
        (self.repo / "targets" / "blobs").mkdir(parents=True)
        (self.repo / "metadata").mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "cloud.log").open("ab")
        self.proc = subprocess.Popen(
            [
                HUB_CLOUD,
                "--db",
                str(tmp / "cloud.sqlite3"),
                "serve",
                "--port",
                str(self.port),
                "--admin-token",
                "t",
                "--ota-repo",
                str(self.repo),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            try:
                return http_get(self.url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(up, 30, what="hub-cloud to answer")

    def blob(self, data: bytes) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        (self.repo / "targets" / "blobs" / digest).write_bytes(data)
        return digest, f"{self.url}/ota/targets/blobs/{digest}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[OtaCloud]:
    c = OtaCloud(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def test_kill_9_mid_download_then_resume_fetches_only_the_rest(cloud: OtaCloud, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    digest, url = cloud.blob(data)
    dest = tmp_path / "staging" / "blobs" / digest
    part = dest.with_name(dest.name + ".part")
    # Rate-limited so the kill lands mid-download even on a fast loopback.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ota.fetch",
            url,
            str(dest),
            "--size",
            str(SIZE),
            "--sha256",
            digest,
            "--rate",
            str(SIZE // 4),
        ],
    )
    try:
        wait_until(lambda: part.exists() and part.stat().st_size > SIZE // 2, 60, what="half the blob")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert not dest.exists()
    have = part.stat().st_size
    assert SIZE // 2 < have < SIZE
    fetcher = Fetcher()
    fetcher.fetch(url, dest, SIZE, digest)
    assert dest.read_bytes() == data
    assert not part.exists()
    assert fetcher.stats.resumed == 1
    assert fetcher.stats.ranges == [have]
    assert fetcher.stats.bytes_transferred == SIZE - have


def test_garbage_tail_after_a_power_cut_restarts_once(cloud: OtaCloud, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    digest, url = cloud.blob(data)
    dest = tmp_path / "blobs" / digest
    dest.parent.mkdir()
    # Length extended by the file system but the tail never written: zeros where data should be.
    dest.with_name(dest.name + ".part").write_bytes(data[:100_000] + b"\0" * 50_000)
    fetcher = Fetcher()
    fetcher.fetch(url, dest, len(data), digest)
    assert dest.read_bytes() == data
    assert fetcher.stats.restarted == 1
    assert fetcher.stats.bytes_transferred == 150_000 + len(data)


def test_complete_blob_is_not_fetched_again(cloud: OtaCloud, tmp_path: Path) -> None:
    data = b"x" * 1000
    digest, url = cloud.blob(data)
    dest = tmp_path / digest
    Fetcher().fetch(url, dest, len(data), digest)
    again = Fetcher()
    again.fetch(url, dest, len(data), digest)
    assert again.stats.bytes_transferred == 0


def test_missing_blob_is_a_transport_error(cloud: OtaCloud, tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="HTTP 404"):
        Fetcher().fetch(f"{cloud.url}/ota/targets/blobs/{'0' * 64}", tmp_path / "x", 10, "0" * 64)


@pytest.mark.parametrize(
    "path",
    [
        "/ota/targets/..%2Fmetadata%2Froot.json",
        "/ota/targets/%2e%2e/%2e%2e/cloud.sqlite3",
        "/ota/metadata/..%2F..%2Fcloud.sqlite3",
        "/ota/targets/blobs/.hidden",
        "/ota/metadata/",
    ],
)
def test_repository_paths_cannot_escape(cloud: OtaCloud, path: str) -> None:
    (cloud.repo / "targets" / "blobs" / ".hidden").write_bytes(b"secret")
    (cloud.repo / "metadata" / "root.json").write_bytes(b"{}")
    status, _ = http_get(cloud.url + path)
    assert status == 404


def test_range_is_honoured_and_metadata_not_cached(cloud: OtaCloud) -> None:
    import urllib.request

    _digest, url = cloud.blob(b"0123456789")
    request = urllib.request.Request(url, headers={"Range": "bytes=4-"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 206
        assert response.read() == b"456789"
    (cloud.repo / "metadata" / "timestamp.json").write_bytes(b"{}")
    with urllib.request.urlopen(cloud.url + "/ota/metadata/timestamp.json", timeout=5) as response:
        assert response.headers["Cache-Control"] == "no-cache"


class _Cut(Exception):
    pass


def test_an_update_cut_at_half_resumes_with_only_the_rest(tmp_path: Path) -> None:
    """UpdateClient.fetch over a whole plan: cut at 50% (as a power cut would), a new client fetches the rest."""
    from tests.ota.tuf_fixtures import running_world, slot_files

    with running_world(tmp_path) as world:
        files = slot_files("0.2.0", modules=30, size=50_000)
        files["lib/python3.11/site-packages/hub/model.bin"] = os.urandom(3_000_000)
        world.publish("0.2.0", files)
        first = world.client()
        release = first.check("0.1.0")
        assert release is not None
        plan = first.plan(release, lambda _sha: None)
        seen = 0

        def cut(n: int) -> None:
            nonlocal seen
            seen += n
            if seen >= plan.fetch_bytes // 2:
                raise _Cut

        with pytest.raises(_Cut):
            first.fetch(plan, tmp_path / "staging", cut)
        assert 0 < first.stats.bytes_transferred < plan.fetch_bytes
        second = world.client()
        second.fetch(second.plan(release, lambda _sha: None), tmp_path / "staging")
        assert first.stats.bytes_transferred + second.stats.bytes_transferred == plan.fetch_bytes
        for digest in plan.missing:
            assert hashlib.sha256((tmp_path / "staging" / "blobs" / digest).read_bytes()).hexdigest() == digest


def test_ota_routes_are_the_documented_ones(tmp_path: Path) -> None:
    import yaml

    from cloud.server import STORE_KEY, build_app

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "cloud" / "openapi.yaml").read_text())
    documented = {("GET", p) for p in spec["paths"] if p.startswith("/ota/")}
    app = build_app(tmp_path / "c.sqlite3", "t", ota_repo=tmp_path)
    try:
        registered = {
            (r.method, r.resource.canonical)
            for r in app.router.routes()
            if r.resource is not None and r.resource.canonical.startswith("/ota/") and r.method != "HEAD"
        }
    finally:
        app[STORE_KEY].close()
    assert registered == documented == {("GET", "/ota/metadata/{name}"), ("GET", "/ota/targets/{path}")}
