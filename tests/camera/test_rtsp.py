"""An RTSP camera on loopback, end to end: Debian's GStreamer RTSP server (run by the system Python) serves
H.264; the camera service decodes it over TCP, answers a snapshot, and when the server dies and comes back on
the same port the source reconnects and frames flow again."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bus import EventBus
from hub.camera.service import CameraService
from hub.camera.settings import CameraSettings
from hub.store import Store
from tests.camera.media import decode_jpeg
from tests.support.processes import free_port

pytestmark = pytest.mark.rtsp

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class RtspServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "READY", f"GStreamer RTSP server did not start: {line}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def server() -> Iterator[RtspServer]:
    rtsp = RtspServer(free_port())
    rtsp.start()
    yield rtsp
    rtsp.kill()


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_rtsp_camera_end_to_end_and_reconnect(server: RtspServer, tmp_path: Path) -> None:
    settings = CameraSettings.model_validate(
        {
            "cameras": [{"name": "rtsp", "url": f"rtsp://127.0.0.1:{server.port}/test", "fps": 5.0}],
            "detector": {"enabled": False},
            "stall_timeout_s": 2.0,
        }
    )
    store = Store.open(tmp_path / "data")
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    service = CameraService(settings, store, bus, tmp_path / "data")
    await service.start()
    task = asyncio.create_task(service.run())
    pipeline = service.pipelines["rtsp"]
    try:
        await wait_for(lambda: pipeline.analysed >= 5, 15, "frames over RTSP")
        health = service.health()["cameras"]["rtsp"]
        assert health["connected"]
        assert (health["width"], health["height"]) == (320, 240)
        answer = await bus.call("camera.snapshot", camera="rtsp")
        assert decode_jpeg(base64.b64decode(answer["jpeg_base64"]), tmp_path).shape == (240, 320, 3)

        server.kill()
        await wait_for(lambda: pipeline.source.reconnects >= 1, 10, "the source to notice the server is gone")
        assert service.problems(), "a camera that is gone is a problem on the technician page"
        analysed = pipeline.analysed
        server.start()
        await wait_for(lambda: pipeline.analysed > analysed + 5, 30, "frames again after the server came back")
        assert service.health()["cameras"]["rtsp"]["connected"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.stop()
        store.close()
