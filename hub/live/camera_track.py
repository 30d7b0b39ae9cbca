"""A live-view video track: a camera's frames, privacy-masked, at the session's size and rate, for aiortc.

The track opens its own reader of the camera (drivers/camera's VideoSource: the same reconnecting PyAV
decoder the analysis uses) rather than tapping the camera service's frames: analysis runs at a few frames
per second and at its own size, while a viewer wants 15 frames/s at the size it asked for. The cost is one
more decode of the camera's stream per viewer (see bench/live_view.py for the figures).

Frames are converted in the source's thread; the event loop only hands the newest one to the encoder. A
viewer that cannot keep up sees the newest frame, never a growing backlog (live means now).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from drivers.camera.source import CameraFrame, VideoSource
from ml.masks import black_out, rasterize

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

CLOCK_RATE = 90_000  # RTP's video clock
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)
Overlay = Callable[["NDArray[np.uint8]", float], None]  # (rgb frame, capture time on time.monotonic()) -> drawn on


class CameraTrack(MediaStreamTrack):
    kind = "video"

    def __init__(
        self,
        url: str,
        *,
        width: int,
        height: int,
        fps: float,
        privacy_masks: list[list[list[float]]] | None = None,
        loop: bool = False,
        name: str = "camera",
        overlay: Overlay | None = None,
    ) -> None:
        """`overlay` draws on each frame before it is encoded (the benchmark stamps the capture time there)."""
        super().__init__()
        self.width = width
        self.height = height
        self.fps = fps
        self.name = name
        self.overlay = overlay
        self._privacy = [[(p[0], p[1]) for p in polygon] for polygon in privacy_masks or []]
        self._privacy_mask: NDArray[np.bool_] | None = None
        self._event_loop = asyncio.get_running_loop()  # not _loop: pyee's emitter (the base) owns that
        self._frames: asyncio.Queue[tuple[av.VideoFrame, float]] = asyncio.Queue(maxsize=1)
        self._start: float | None = None
        self._last_pts = -1
        self.frames_sent = 0
        self.frames_dropped = 0  # replaced by a newer one before the encoder took it
        self.last_frame_mono: float | None = None  # when the camera last gave a frame (time.monotonic())
        self.source = VideoSource(
            url, self._on_frame, fps=fps, max_width=width, realtime=True, loop=loop, name=f"live-{name}"
        )
        self.source.start()

    # ---- the source's thread ----------------------------------------------------------------------------

    def _on_frame(self, frame: CameraFrame) -> None:
        rgb = frame.rgb
        if self._privacy:
            if self._privacy_mask is None or self._privacy_mask.shape != rgb.shape[:2]:
                self._privacy_mask = rasterize(self._privacy, rgb.shape[1], rgb.shape[0])
            rgb = black_out(rgb, self._privacy_mask)
        if self.overlay is not None:
            rgb = rgb.copy()
            self.overlay(rgb, frame.received)
        video = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        # One conversion to the encoder's own format at the session's size, here rather than in the loop.
        video = video.reformat(width=self.width, height=self.height, format="yuv420p")
        with contextlib.suppress(RuntimeError):  # the loop closed: the session is gone
            self._event_loop.call_soon_threadsafe(self._offer, video, frame.received)

    # ---- the event loop ---------------------------------------------------------------------------------

    def _offer(self, video: av.VideoFrame, captured: float) -> None:
        self.last_frame_mono = time.monotonic()
        if self._frames.full():
            self._frames.get_nowait()
            self.frames_dropped += 1
        self._frames.put_nowait((video, captured))

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        video, captured = await self._frames.get()
        if self._start is None:
            self._start = captured
        # Timestamps from the capture clock: the viewer's jitter buffer then plays frames at the pace they were
        # taken, whatever the encoder's delays.
        pts = max(round((captured - self._start) * CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        video.pts = pts
        video.time_base = TIME_BASE
        self.frames_sent += 1
        return video

    def stop(self) -> None:
        super().stop()
        # Joining the reader may take one read timeout: not on the event loop.
        threading.Thread(target=self.source.stop, name=f"live-{self.name}-stop", daemon=True).start()

    def stats(self) -> dict[str, object]:
        source = self.source.stats()
        return {
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
            "source_connected": source.connected,
            "source_fps": round(source.fps_out, 2),
            "source_error": source.last_error,
            "age_s": None if self._start is None else round(time.monotonic() - self._start, 1),
        }
