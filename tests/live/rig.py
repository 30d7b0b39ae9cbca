"""Live sessions on simulated hardware, in one process: the real LiveService on a real store and bus, real
aiortc peers (cloud/live_client.py's reference viewer and operator), a real camera source (a generated H.264
clip played at its own pace), and for announcements the broadcast rig of tests/broadcast (real engine, the
simulated loudspeaker, mock relay pins). The bus call `live.start` stands in for the cloud's command inbox.

ICE needs an address other than loopback (aioice leaves 127.0.0.1 out of its candidates): tests skip with
the reason when the machine has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hub.bus import EventBus
from hub.camera.settings import CameraSettings
from hub.live.service import LiveService
from hub.live.settings import LiveSettings
from hub.store import Store

CLIP_FPS = 30.0
CLIP_SIZE = (320, 240)


def host_address() -> str | None:
    """An IPv4 address of this machine other than loopback (what aioice offers as a host candidate)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            address = parts[parts.index("inet") + 1].split("/")[0]
            if not address.startswith("127."):
                return address
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = str(probe.getsockname()[0])
        if not address.startswith("127."):
            return address
    return None


def need_host_address() -> str:
    address = host_address()
    if address is None:
        pytest.skip("no IPv4 address other than loopback: aioice gathers no candidate, ICE cannot connect")
    return address


def make_clip(path: Path, seconds: float = 2.0) -> Path:
    """A moving test pattern (H.264 in MP4) at CLIP_FPS, made once per test session directory."""
    if path.exists():
        return path
    import numpy as np

    from drivers.camera.sim import write_video

    width, height = CLIP_SIZE
    images = []
    for i in range(round(seconds * CLIP_FPS)):
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[:, :, 2] = 120
        x = (i * 8) % (width - 40)
        image[100:140, x : x + 40] = (250, 250, 250)
        images.append(image)
    return write_video(path, images, CLIP_FPS, gop_s=0.5)


def live_hub_extra(clip: Path) -> str:
    """hub.toml for a hub process with one camera playing `clip` (no detector) and a small, quick live view."""
    return f"""
[commands]
poll_wait_s = 2.0

[camera.detector]
enabled = false

[[camera.cameras]]
name = "cong-lang"
url = "{clip}"
loop = true

[live]
width = 320
height = 240
fps = 10
"""


class LiveRig:
    def __init__(
        self,
        directory: Path,
        clip: Path | None,
        *,
        bus: EventBus | None = None,
        store: Store | None = None,
        cameras: list[dict[str, Any]] | None = None,
        **live: Any,
    ) -> None:
        self.directory = directory
        self.bus = bus or EventBus()
        self._own_store = store is None
        self.store = store
        if cameras is None:
            cameras = [{"name": "cong-lang", "url": str(clip), "loop": True}] if clip is not None else []
        self.cameras = CameraSettings.model_validate({"cameras": cameras}) if cameras else CameraSettings()
        self.settings = LiveSettings.model_validate({"width": 320, "height": 240, "fps": 15.0, **live})
        self.service: LiveService | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def svc(self) -> LiveService:
        assert self.service is not None
        return self.service

    async def __aenter__(self) -> LiveRig:
        if self.store is None:
            self.store = Store.open(self.directory / "data")
        self.service = LiveService(self.settings, self.cameras, self.store, self.bus, self.directory)
        await self.service.start()
        self._task = asyncio.create_task(self.service.run())
        await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.svc.stop()
        if self._own_store and self.store is not None:
            self.store.close()

    async def signal(self, args: dict[str, Any]) -> dict[str, Any]:
        """What the cloud's inbox does with a live.start command: a bus call, whose answer is the result."""
        return await self.bus.call("live.start", timeout=30.0, **args)

    def outbox(self, kind_prefix: str = "live.") -> list[tuple[str, dict[str, Any]]]:
        assert self.store is not None
        return [
            (r.kind, json.loads(r.payload_json)) for r in self.store.pending(10_000) if r.kind.startswith(kind_prefix)
        ]


async def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
