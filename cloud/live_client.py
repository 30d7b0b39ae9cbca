"""Reference WebRTC clients of the cloud's operator: a live-view viewer and a live-announcement sender (aiortc).

Both follow docs/protocol.md "WebRTC live sessions": build a complete (non-trickle) offer, queue it as command
`live.start` through the admin command API, long-poll the command until its result holds the hub's answer,
set it, and let media flow; `live.stop` ends the session. The tests and the benchmark use the same peers with
the hub's bus standing in for the cloud.

CLI (hub-cloud, cloud/live_cli.py):
  hub-cloud live-view HUB CAMERA [--seconds 10] [--width 640 --height 360 --fps 15]
  hub-cloud live-announce HUB FILE [--zones "khu 1" ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

Signal = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]  # live.start args -> its result {answer, session}


def configuration(ice_servers: list[dict[str, Any]] | None = None, policy: str = "all") -> RTCConfiguration:
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers or []
    ]
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy(policy))


@dataclass
class FrameStats:
    """What the viewer decoded: when each frame arrived (time.monotonic()), and the last frame itself."""

    asked_at: float = field(default_factory=time.monotonic)
    arrivals: list[float] = field(default_factory=list)
    last: Any = None
    size: tuple[int, int] | None = None

    @property
    def first_after_s(self) -> float | None:
        return self.arrivals[0] - self.asked_at if self.arrivals else None

    def fps(self, skip_s: float = 0.0) -> float:
        """Frames per second over what arrived, leaving out the first `skip_s` (the encoder's start-up)."""
        if not self.arrivals:
            return 0.0
        start = self.arrivals[0] + skip_s
        times = [t for t in self.arrivals if t >= start]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class Viewer:
    """A live-view peer: receives one video track and counts decoded frames (calls `on_frame` for each)."""

    def __init__(
        self,
        config: RTCConfiguration | None = None,
        on_frame: Callable[[Any, float], None] | None = None,
    ) -> None:
        self.pc = RTCPeerConnection(config or RTCConfiguration(iceServers=[]))
        self.stats = FrameStats()
        self.on_frame = on_frame
        self._reader: asyncio.Task[None] | None = None
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.on("track", self._track)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame: Any = await track.recv()
                now = time.monotonic()
                self.stats.arrivals.append(now)
                self.stats.last = frame
                self.stats.size = (frame.width, frame.height)
                if self.on_frame is not None:
                    self.on_frame(frame, now)

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())  # waits for every candidate
        self.stats = FrameStats()
        return {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}

    async def answer(self, answer: dict[str, str]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.pc.close()


class Operator:
    """A live-announcement peer: sends one audio track (a file through PyAV, or any track given)."""

    def __init__(self, track: MediaStreamTrack, config: RTCConfiguration | None = None) -> None:
        self.pc = RTCPeerConnection(config or RTCConfiguration(iceServers=[]))
        self.track = track
        self.pc.addTransceiver(track, direction="sendonly")

    @classmethod
    def from_file(cls, path: str, config: RTCConfiguration | None = None, loop: bool = False) -> Operator:
        player = MediaPlayer(path, loop=loop)
        if player.audio is None:
            raise ValueError(f"{path}: no audio in it")
        return cls(player.audio, config)

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}

    async def answer(self, answer: dict[str, str]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

    async def close(self) -> None:
        self.track.stop()
        await self.pc.close()


async def start(peer: Viewer | Operator, signal: Signal, **args: Any) -> dict[str, Any]:
    """Offer, have the hub answer through `signal`, apply the answer; returns live.start's result."""
    session = args.pop("session", None) or uuid.uuid4().hex[:12]
    result = await signal({"session": session, "offer": await peer.offer(), **args})
    await peer.answer(result["answer"])
    return result


class CloudSignal:
    """Signalling through the reference cloud's admin command API (the operator's side of the inbox)."""

    def __init__(self, cloud_url: str, admin_token: str, hub_id: str, *, ssl: Any = None, ttl_s: float = 60.0):
        self.base = cloud_url.rstrip("/")
        self.hub_id = hub_id
        self.headers = {"Authorization": f"Bearer {admin_token}"}
        self.ssl = ssl
        self.ttl_s = ttl_s

    async def command(self, kind: str, args: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        """Queue one command and wait for its final status; returns its result, or raises with the hub's error."""
        async with aiohttp.ClientSession(headers=self.headers) as http:
            async with http.post(
                f"{self.base}/api/v1/hubs/{self.hub_id}/commands",
                json={"kind": kind, "args": args, "ttl_s": self.ttl_s},
                ssl=self.ssl,
            ) as response:
                body = await response.json()
                if response.status != 201:
                    raise LiveError(f"the cloud refused {kind}: {response.status} {json.dumps(body)[:300]}")
            command_id = body["id"]
            deadline = time.monotonic() + timeout_s
            while True:
                wait = max(1, min(30, round(deadline - time.monotonic())))
                async with http.get(
                    f"{self.base}/api/v1/hubs/{self.hub_id}/commands/{command_id}",
                    params={"wait": str(wait)},
                    ssl=self.ssl,
                    timeout=aiohttp.ClientTimeout(total=wait + 15),
                ) as response:
                    row = await response.json()
                status = row.get("status")
                if status == "applied":
                    result: dict[str, Any] = row.get("result") or {}
                    return result
                if status in ("rejected", "failed", "expired"):
                    raise LiveError(f"{kind} {status}: {row.get('error') or row.get('result')}")
                if time.monotonic() >= deadline:
                    raise LiveError(f"{kind}: no answer from hub {self.hub_id} within {timeout_s:g} s ({status})")

    async def start(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.command("live.start", args)

    async def stop(self, session: str) -> dict[str, Any]:
        return await self.command("live.stop", {"session": session})


class LiveError(RuntimeError):
    pass


# ---- CLI ------------------------------------------------------------------------------------------------------


async def live_view(
    signal: CloudSignal, camera: str, seconds: float, ice_servers: list[dict[str, Any]] | None = None, **video: Any
) -> FrameStats:
    viewer = Viewer(configuration(ice_servers))
    try:
        result = await start(viewer, signal.start, mode="camera", camera=camera, who="hub-cloud live-view", **video)
        await asyncio.sleep(seconds)
        with contextlib.suppress(LiveError):
            await signal.stop(result["session"])
        return viewer.stats
    finally:
        await viewer.close()


async def live_announce(
    signal: CloudSignal, path: str, zones: list[str] | None, seconds: float | None = None
) -> dict[str, Any]:
    operator = Operator.from_file(path)
    ended = asyncio.Event()
    operator.track.on("ended", ended.set)
    try:
        args: dict[str, Any] = {"mode": "announce", "who": "hub-cloud live-announce"}
        if zones:
            args["zones"] = zones
        result = await start(operator, signal.start, **args)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), seconds)
        with contextlib.suppress(LiveError):
            await signal.stop(result["session"])
        return result
    finally:
        await operator.close()
