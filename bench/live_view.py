"""Live camera view over WebRTC: end-to-end latency and the hub's CPU per stream, at 640×360 and 15 fps.

The hub side (the real LiveService with its camera track, aiortc's encoder) runs in a process of its own so
its CPU can be read from /proc; the reference viewer (cloud/live_client.py) runs here. Signalling goes over
a pipe instead of the cloud's inbox (the inbox adds one poll's delay to the start, nothing to the media).

Latency: the hub's track stamps each frame's capture time (time.monotonic() when the camera source decoded
it; the same clock in both processes) into a row of black/white blocks; the viewer reads the stamp from the
decoded frame and subtracts it from its own clock: camera frame decoded -> privacy mask -> encoder -> RTP/
SRTP over UDP -> jitter buffer -> decoder -> viewer. CPU: the hub process's CPU seconds per second with N
viewers, less the same process idle, divided by N; the share of it the camera decode takes (the track opens
its own reader of the camera) is measured apart.

Live announcement (in this process, the real broadcast engine on the simulated loudspeaker): an operator
track of beeps; from a beep's first frame leaving the operator to its onset in the loudspeaker's recording.

    .venv/bin/python -m bench.live_view            # 20 s per step (about 1.5 minutes)
    .venv/bin/python -m bench.live_view --quick    # 6 s per step
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench._harness import cpu_seconds

W, H, FPS = 640, 360, 15.0
BITS = 32
BLOCK = 16  # pixels per bit: survives VP8/H.264 quantisation at this size
STAMP_ROW = 8


def stamp(rgb: NDArray[np.uint8], captured: float) -> None:
    value = round(captured * 1000) & 0xFFFFFFFF
    for bit in range(BITS):
        level = 255 if value >> (BITS - 1 - bit) & 1 else 0
        rgb[STAMP_ROW : STAMP_ROW + BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = level


def read_stamp(rgb: NDArray[np.uint8]) -> int:
    y = STAMP_ROW + BLOCK // 2
    value = 0
    for bit in range(BITS):
        x = bit * BLOCK + BLOCK // 2
        value = value << 1 | int(rgb[y, x].mean() > 127)
    return value


def make_clip(path: Path, seconds: float = 20.0) -> Path:
    from drivers.camera.sim import Walk, background_scene, frames, person_photo, write_video

    walks = [Walk(2.0, 8.0), Walk(11.0, 17.0)]
    return write_video(path, frames(background_scene(W, H), person_photo(), walks, FPS, seconds), FPS)


# ---- the hub process ------------------------------------------------------------------------------------------


def hub_main(conn: Connection, clip: str, directory: str) -> None:
    asyncio.run(_hub(conn, clip, Path(directory)))


async def _hub(conn: Connection, clip: str, directory: Path) -> None:
    from hub.bus import EventBus
    from hub.camera.settings import CameraSettings
    from hub.live.service import LiveService
    from hub.live.settings import LiveSettings
    from hub.store import Store

    bus = EventBus()
    store = Store.open(directory / "data")
    cameras = CameraSettings.model_validate({"cameras": [{"name": "cong-lang", "url": clip, "loop": True}]})
    live = LiveSettings.model_validate({"width": W, "height": H, "fps": FPS, "max_sessions": 8})
    service = LiveService(live, cameras, store, bus, directory, overlay=stamp)
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0.05)
    conn.send({"ready": True})
    while True:
        message = await asyncio.to_thread(conn.recv)
        if message is None:
            break
        try:
            answer: dict[str, Any] = await bus.call(message.pop("command"), timeout=30, **message)
        except Exception as exc:
            answer = {"error": str(exc)}
        conn.send(answer)
    task.cancel()
    await service.stop()
    store.close()


def decode_only_cpu(clip: str, seconds: float) -> float:
    """CPU seconds per second of the camera reader alone (decode + scale to RGB at 15 fps), in this process."""
    from drivers.camera.source import VideoSource

    source = VideoSource(clip, lambda frame: None, fps=FPS, max_width=W, realtime=True, loop=True)
    before = time.process_time()
    source.start()
    time.sleep(seconds)
    source.stop()
    return (time.process_time() - before) / seconds


# ---- the viewer side ------------------------------------------------------------------------------------------


class HubClient:
    def __init__(self, clip: Path, directory: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=hub_main, args=(child, str(clip), str(directory)), daemon=True)
        self.process.start()
        assert self.conn.recv() == {"ready": True}
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def call(self, command: str, **args: Any) -> dict[str, Any]:
        def exchange() -> dict[str, Any]:
            with self._lock:
                self.conn.send({"command": command, **args})
                answer: dict[str, Any] = self.conn.recv()
                return answer

        answer = await asyncio.to_thread(exchange)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


async def measure(hub: HubClient, viewers: int, seconds: float, codec: str) -> dict[str, Any]:
    from cloud.live_client import Viewer, start

    latencies: list[float] = []

    def on_frame(frame: Any, arrived: float) -> None:
        stamped = read_stamp(frame.to_ndarray(format="rgb24"))
        now_ms = round(arrived * 1000) & 0xFFFFFFFF
        latency = (now_ms - stamped) & 0xFFFFFFFF
        if latency < 10_000:  # a misread stamp (a block smeared by a key-frame change) is left out
            latencies.append(latency / 1000)

    peers = [Viewer(on_frame=on_frame if i == 0 else None) for i in range(viewers)]
    if codec != "default":
        for peer in peers:
            from aiortc.rtcrtpsender import RTCRtpSender

            transceiver = peer.pc.getTransceivers()[0]
            wanted = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == f"video/{codec}"]
            transceiver.setCodecPreferences(wanted)

    async def signal(args: dict[str, Any]) -> dict[str, Any]:
        return await hub.call("live.start", **args)

    sessions = [await start(peer, signal, mode="camera", camera="cong-lang") for peer in peers]
    await asyncio.sleep(3.0)  # encoders started, bitrate settled
    latencies.clear()
    counts = [len(p.stats.arrivals) for p in peers]
    cpu_before, wall_before = cpu_seconds(hub.pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (cpu_seconds(hub.pid) - cpu_before) / (time.monotonic() - wall_before)
    rates = [(len(p.stats.arrivals) - c) / seconds for p, c in zip(peers, counts, strict=True)]
    answer = sessions[0]["answer"]["sdp"]
    negotiated = re.search(r"a=rtpmap:\d+ ([A-Za-z0-9]+)/90000", answer)
    for session in sessions:
        await hub.call("live.stop", session=session["session"])
    for peer in peers:
        await peer.close()
    return {
        "viewers": viewers,
        "cpu": cpu,
        "fps": statistics.mean(rates),
        "latencies": sorted(latencies),
        "codec": negotiated.group(1) if negotiated else "?",
    }


# ---- live announcement: operator's track -> heard at the (simulated) loudspeaker ------------------------------


def beep_track(period_s: float, beep_s: float = 0.1) -> tuple[Any, list[float]]:
    """An audio track of silence with a 1 kHz beep every `period_s`; returns it and the list it fills with the
    time.monotonic() each beep's first frame left (was handed to the encoder)."""
    import fractions

    import av
    from aiortc.mediastreams import MediaStreamTrack

    rate, samples = 48_000, 960  # 20 ms frames, as Opus sends them
    sent: list[float] = []

    class Beeps(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.start: float | None = None
            self.index = 0
            self.last_beep = -1

        async def recv(self) -> av.AudioFrame:
            if self.start is None:
                self.start = time.monotonic()
            due = self.start + self.index * samples / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            t = (self.index * samples + np.arange(samples)) / rate
            phase = t % period_s
            on = (phase < beep_s) & (t >= period_s)  # the first period silent: the loudspeakers warm up
            beep = int(t[0] // period_s)
            if on[0] and beep != self.last_beep:
                self.last_beep = beep
                sent.append(time.monotonic())
            pcm = np.where(on, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
            frame = av.AudioFrame.from_ndarray((pcm * 32767).astype("<i2").reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, self.index * samples, fractions.Fraction(1, rate)
            self.index += 1
            return frame

    return Beeps(), sent


def onsets(path: Path, threshold: float = 0.1) -> tuple[list[float], int]:
    """Seconds into a WAV where a beep begins (envelope over 10 ms crossing `threshold`)."""
    import wave

    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)[:, 0] / 32768.0
    hop = rate // 100
    env = np.abs(x[: len(x) // hop * hop]).reshape(-1, hop).max(axis=1)
    loud = env > threshold
    starts = [i * hop / rate for i in range(1, len(loud)) if loud[i] and not loud[i - 1]]
    return starts, rate


async def announce_latency(seconds: float) -> tuple[list[float], int]:
    import datetime as dt

    from cloud.live_client import Operator, start
    from hub.camera.settings import CameraSettings
    from hub.live.service import LiveService
    from hub.live.settings import LiveSettings
    from tests.broadcast.rig import VN, Rig

    period = 2.5
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broadcast = Rig(directory / "b", dt.datetime(2025, 9, 1, 9, tzinfo=VN))
        async with broadcast:
            assert broadcast.store is not None
            live = LiveService(LiveSettings(), CameraSettings(), broadcast.store, broadcast.bus, directory)
            task = asyncio.create_task(live.run())
            await asyncio.sleep(0.05)
            track, sent = beep_track(period)
            operator = Operator(track)

            async def signal(args: dict[str, Any]) -> dict[str, Any]:
                return await broadcast.bus.call("live.start", timeout=30, **args)

            result = await start(operator, signal, mode="announce")
            await asyncio.sleep(seconds + period)
            await broadcast.bus.call("live.stop", session=result["session"])
            await operator.close()
            task.cancel()
            await live.stop()
            await asyncio.sleep(0.3)
            [played] = [p for p in broadcast.playbacks() if str(p["source"]).startswith("http://127.0.0.1")]
        found, _rate = onsets(Path(str(played["recording"])))
    heard_at = float(played["started"]["mono"])
    latencies = []
    for beep in sent:
        after = [heard_at + t - beep for t in found if heard_at + t >= beep]
        if after and after[0] < period:
            latencies.append(after[0])
    return latencies, int(played.get("underruns") or 0)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def run(seconds: float, codec: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        clip = make_clip(directory / "clip.mp4")
        hub = HubClient(clip, directory)
        try:
            before, wall = cpu_seconds(hub.pid), time.monotonic()
            await asyncio.sleep(min(seconds, 5.0))
            idle = (cpu_seconds(hub.pid) - before) / (time.monotonic() - wall)
            results = [await measure(hub, n, seconds, codec) for n in (1, 2)]
        finally:
            hub.close()
        decode = await asyncio.to_thread(decode_only_cpu, str(clip), min(seconds, 10.0))
    voice, underruns = await announce_latency(seconds)
    voice.sort()
    print(f"live view {W}x{H} @ {FPS:g} fps, {seconds:g} s per step, {multiprocessing.cpu_count()} cores")
    print(f"  hub process idle: {idle * 100:.1f}% of one core")
    for r in results:
        lat = r["latencies"]
        per_stream = (r["cpu"] - idle) / r["viewers"]
        print(
            f"  {r['viewers']} viewer(s), {r['codec']}: hub CPU {per_stream * 100:.0f}% of one core per stream "
            f"(process {r['cpu'] * 100:.0f}%), {r['fps']:.1f} frames/s at the viewer, latency capture->decoded "
            f"median {statistics.median(lat) * 1000 if lat else float('nan'):.0f} ms, "
            f"p95 {pct(lat, 0.95) * 1000:.0f} ms, max {(lat[-1] if lat else float('nan')) * 1000:.0f} ms "
            f"({len(lat)} frames)"
        )
    print(f"  of which the camera reader (decode + RGB at {FPS:g} fps): {decode * 100:.0f}% of one core")
    print(
        f"live announcement: operator's frame sent -> heard at the simulated loudspeaker: median "
        f"{statistics.median(voice) * 1000 if voice else float('nan'):.0f} ms, max "
        f"{(voice[-1] if voice else float('nan')) * 1000:.0f} ms ({len(voice)} beeps), device underruns {underruns}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 s per step")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--codec", choices=("default", "vp8", "h264"), default="default")
    args = parser.parse_args(argv)
    asyncio.run(run(6.0 if args.quick else args.seconds, args.codec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
