"""A camera source: an RTSP URL (the camera's sub-stream) or a video file, decoded in a thread of its own.

Every frame is decoded (a video decoder cannot skip frames between key frames), but only frames at the
analysis rate are converted to RGB and handed on. The source reconnects with backoff; a camera that delivers
no frame for `stall_timeout_s` is closed and opened again (FFmpeg's read timeout interrupts a read that
hangs on a half-dead TCP connection). Files play at their own pace (`realtime`, looping for the demo) or as
fast as the consumer takes frames (tests, benchmarks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "tcp://", "udp://", "srt://")


@dataclass(frozen=True, slots=True)
class CameraFrame:
    rgb: NDArray[np.uint8]
    t: float  # seconds on the source's clock: media time for files played fast, monotonic time otherwise
    received: float  # time.monotonic() when it was decoded


@dataclass(frozen=True, slots=True)
class SourceStats:
    connected: bool
    frames_in: int
    frames_out: int
    fps_in: float
    fps_out: float
    last_frame_age_s: float | None
    reconnects: int
    last_error: str | None
    width: int | None
    height: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "fps_in": round(self.fps_in, 2),
            "fps_out": round(self.fps_out, 2),
            "last_frame_age_s": None if self.last_frame_age_s is None else round(self.last_frame_age_s, 2),
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "width": self.width,
            "height": self.height,
        }


def is_url(url: str) -> bool:
    return url.lower().startswith(URL_SCHEMES)


def open_options(url: str) -> dict[str, str]:
    if not is_url(url):
        return {}
    # FFmpeg's default probing (5 MB, 5 s) holds a live stream's first frame back for seconds.
    options = {"probesize": "65536", "analyzeduration": "500000"}
    if url.lower().startswith(("rtsp://", "rtsps://")):
        # TCP: UDP over a village's Wi-Fi bridge loses packets and smears frames; a sub-stream fits in TCP.
        options |= {"rtsp_transport": "tcp"}
    return options


class _Rate:
    """Frames per second over a sliding few seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.times: list[float] = []

    def tick(self, now: float) -> None:
        self.times.append(now)
        cutoff = now - self.window_s
        while self.times and self.times[0] < cutoff:
            self.times.pop(0)

    def rate(self, now: float) -> float:
        recent = [t for t in self.times if t >= now - self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


class VideoSource:
    def __init__(
        self,
        url: str,
        on_frame: Callable[[CameraFrame], None],
        *,
        fps: float = 5.0,
        max_width: int = 640,
        realtime: bool = True,
        loop: bool = False,
        stall_timeout_s: float = 20.0,
        open_timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        name: str = "camera",
    ) -> None:
        """`on_frame` runs in the source's thread; it may block (backpressure for files played fast)."""
        self.url = url
        self.on_frame = on_frame
        self.fps = fps
        self.max_width = max_width
        self.realtime = realtime
        self.loop = loop
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.name = name
        self.on_reconnect: Callable[[], None] | None = None
        self.finished = threading.Event()  # a file that was not looped played to its end
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.frames_in = 0
        self.frames_out = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.last_frame_at: float | None = None
        self.size: tuple[int, int] | None = None
        self._rate_in = _Rate()
        self._rate_out = _Rate()

    # ---- control ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def stats(self) -> SourceStats:
        now = time.monotonic()
        return SourceStats(
            connected=self.connected,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            fps_in=self._rate_in.rate(now),
            fps_out=self._rate_out.rate(now),
            last_frame_age_s=None if self.last_frame_at is None else now - self.last_frame_at,
            reconnects=self.reconnects,
            last_error=self.last_error,
            width=self.size[0] if self.size else None,
            height=self.size[1] if self.size else None,
        )

    # ---- the thread -------------------------------------------------------------------------------------

    def _target(self) -> str:
        if is_url(self.url):
            return self.url
        return "file:" + str(Path(self.url).absolute())

    def _run(self) -> None:
        backoff = self.backoff_initial_s
        opened_once = False
        while not self._stop.is_set():
            if opened_once:
                self.reconnects += 1
                if self.on_reconnect is not None:
                    self.on_reconnect()
            opened_once = True
            started = time.monotonic()
            try:
                ended = self._play()
            except Exception as exc:  # FFmpeg's errors are many; every one means "open it again later"
                self.last_error = describe(exc)
                log.warning("camera %s: %s", self.name, self.last_error)
                ended = False
            finally:
                self.connected = False
            if self._stop.is_set():
                return
            if ended and is_url(self.url):
                self.last_error = "the stream ended"  # a camera never ends: it rebooted, or the link dropped
                ended = False
            if ended and not self.loop:
                self.finished.set()
                return
            if ended:
                backoff = 0.0  # a looping file starts again at once
            elif time.monotonic() - started > 30:
                backoff = self.backoff_initial_s  # it ran well for a while: this is a new outage
            self._stop.wait(backoff)
            backoff = min(max(backoff * 2, self.backoff_initial_s), self.backoff_max_s)

    def _play(self) -> bool:
        """Decode until the stream ends (True), stalls or fails (raises), or stop is asked (False)."""
        import av

        target = self._target()
        container = av.open(target, options=open_options(target), timeout=(self.open_timeout_s, self.stall_timeout_s))
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            self.connected = True
            self.last_error = None
            period = 1.0 / self.fps
            next_emit: float | None = None
            clock_start = time.monotonic()
            progress = clock_start  # the last frame of *this* connection (or its opening)
            first_pts: float | None = None
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return False
                for frame in packet.decode():
                    now = time.monotonic()
                    self.frames_in += 1
                    self._rate_in.tick(now)
                    self.last_frame_at = progress = now
                    pts = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else None
                    if pts is not None and first_pts is None:
                        first_pts = pts
                    media_t = (pts - (first_pts or 0.0)) if pts is not None else now - clock_start
                    if self.realtime and not is_url(self.url):
                        # a file stands in for a live camera: deliver frames at the pace they were filmed
                        delay = clock_start + media_t - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            return False
                    t = media_t if not self.realtime else time.monotonic()
                    if next_emit is not None and t < next_emit - period * 0.1:  # tolerance: timestamps jitter
                        continue
                    next_emit = t + period if next_emit is None or t - next_emit > period else next_emit + period
                    width, height = frame.width, frame.height
                    if width > self.max_width:
                        height = round(height * self.max_width / width / 2) * 2
                        width = self.max_width
                    rgb: NDArray[np.uint8] = frame.to_ndarray(format="rgb24", width=width, height=height)  # type: ignore[assignment]
                    self.size = (width, height)
                    self.frames_out += 1
                    self._rate_out.tick(now)
                    self.on_frame(CameraFrame(rgb, t, now))
                if time.monotonic() - progress > self.stall_timeout_s:
                    raise StallError(f"no frame for {self.stall_timeout_s:g} s")
            return True
        finally:
            container.close()


class StallError(RuntimeError):
    pass


def describe(exc: BaseException) -> str:
    import av.error

    if isinstance(exc, StallError):
        return f"stalled: {exc}"
    if isinstance(exc, av.error.ExitError):
        return "stalled: no data within the read timeout"
    if isinstance(exc, av.error.FileNotFoundError | FileNotFoundError):
        return "no such file"
    if isinstance(exc, av.error.ConnectionRefusedError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, av.error.FFmpegError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def file_exists(url: str) -> bool:
    return is_url(url) or Path(url).exists()
