"""One camera's work, off the event loop: its source's thread decodes; its worker thread runs the motion
gate, the detector (shared by all cameras, one inference at a time) and the tracker, and hands tracked events
to a sink. A slow analysis drops the oldest waiting frame of a live camera rather than falling behind."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.camera.source import CameraFrame, VideoSource, is_url
from hub.camera.settings import CameraEntry, CameraSettings
from ml.analyzer import DetectFn, FrameAnalyzer
from ml.boxes import Box, Detection
from ml.masks import black_out, rasterize
from ml.motion import MotionConfig, MotionGate
from ml.tracker import Tracker, TrackerConfig, TrackEvent

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True, slots=True)
class Analysed:
    """A track event and when the frame that caused it was decoded (for the event's latency)."""

    event: TrackEvent
    received: float
    realtime: bool


Sink = Callable[["CameraPipeline", Analysed], None]


def _polygons(raw: list[list[list[float]]]) -> list[list[tuple[float, float]]]:
    return [[(p[0], p[1]) for p in polygon] for polygon in raw]


class CameraPipeline:
    def __init__(
        self,
        entry: CameraEntry,
        settings: CameraSettings,
        detect: DetectFn | None,
        sink: Sink,
        *,
        url: str | None = None,
        event_labels: tuple[str, ...] = (),
    ) -> None:
        self.entry = entry
        self.name = entry.name
        self.sink = sink
        self.url = url or entry.analysis_url
        live = is_url(self.url) or entry.realtime
        self.realtime = live
        m, d = settings.motion, settings.detector
        motion = MotionGate(
            MotionConfig(width=m.width, threshold=m.threshold, min_area=m.min_area, alpha=m.alpha),
            _polygons(entry.masks),
        )
        tracker = Tracker(
            TrackerConfig(
                min_hits=d.min_hits,
                confirm_score=d.confirm_score,
                confirm_window_s=d.confirm_window_s,
                lost_after_s=d.lost_after_s,
            ),
            {name: [(p[0], p[1]) for p in poly] for name, poly in entry.zones.items()},
        )
        self.analyzer = FrameAnalyzer(detect or _no_detection, motion, tracker, event_labels)
        self.detecting = detect is not None
        self.privacy = _polygons(entry.privacy_masks)
        self._privacy_cache: dict[tuple[int, int], NDArray[np.bool_]] = {}
        self.source = VideoSource(
            self.url,
            self._on_frame,
            fps=entry.fps,
            max_width=entry.max_width,
            realtime=live,
            loop=entry.loop,
            stall_timeout_s=settings.stall_timeout_s,
            name=entry.name,
        )
        self.source.on_reconnect = self._on_reconnect
        self._queue: queue.Queue[CameraFrame | object] = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_frame: CameraFrame | None = None
        self.analysed = 0
        self.dropped = 0
        self.analysis_ms: list[float] = []
        self.errors = 0
        self.last_error: str | None = None
        self._analysed_times: list[float] = []
        self._reconnected = False

    # ---- control ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=f"analyse-{self.name}", daemon=True)
        self._thread.start()
        self.source.start()

    def stop(self) -> None:
        self.source.stop()
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    # ---- frames -----------------------------------------------------------------------------------------

    def _on_reconnect(self) -> None:
        self._reconnected = True

    def _on_frame(self, frame: CameraFrame) -> None:
        if not self.realtime:
            self._queue.put(frame)  # a file played fast: wait for the analysis (backpressure)
            return
        while True:
            try:
                self._queue.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                for event in self.analyzer.tracker.flush(time.monotonic()):
                    self._emit(Analysed(event, time.monotonic(), self.realtime))
                return
            assert isinstance(item, CameraFrame)
            with self._lock:
                self.last_frame = item
            if self._reconnected:
                self._reconnected = False
                for event in self.analyzer.restart(item.t):
                    self._emit(Analysed(event, item.received, self.realtime))
            started = time.perf_counter()
            try:
                result = self.analyzer.analyse(item.rgb, item.t)
            except Exception as exc:  # one bad frame must not stop the camera
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("camera %s: analysis failed", self.name)
                continue
            now = time.monotonic()
            self.analysis_ms = [*self.analysis_ms[-99:], (time.perf_counter() - started) * 1000]
            self.analysed += 1
            self._analysed_times = [t for t in self._analysed_times if now - t <= 5.0] + [now]
            for event in result.events:
                self._emit(Analysed(event, item.received, self.realtime))

    def _emit(self, analysed: Analysed) -> None:
        try:
            self.sink(self, analysed)
        except Exception:
            log.exception("camera %s: recording an event failed", self.name)

    # ---- what others read -------------------------------------------------------------------------------

    def privacy_mask(self, width: int, height: int) -> NDArray[np.bool_] | None:
        if not self.privacy:
            return None
        key = (width, height)
        if key not in self._privacy_cache:
            self._privacy_cache[key] = rasterize(self.privacy, width, height)
        return self._privacy_cache[key]

    def masked(self, rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The frame with its privacy masks blacked out (what may leave the analysis)."""
        return black_out(rgb, self.privacy_mask(rgb.shape[1], rgb.shape[0]))

    def latest(self) -> CameraFrame | None:
        with self._lock:
            return self.last_frame

    def fps_analysed(self) -> float:
        times = self._analysed_times
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    def health(self) -> dict[str, Any]:
        stats = self.source.stats()
        ms = sorted(self.analysis_ms)
        return {
            **stats.as_dict(),
            "url": redact(self.url),
            "fps_analysed": round(self.fps_analysed(), 2),
            "analysed": self.analysed,
            "dropped": self.dropped,
            "analysis_ms_median": round(ms[len(ms) // 2], 2) if ms else None,
            "inferences": self.analyzer.inferences,
            "motion_reseeds": self.analyzer.motion.reseeds,
            "tracks": len(self.analyzer.tracker.tracks),
            "detecting": self.detecting,
            "analysis_errors": self.errors,
        }


def _no_detection(frame: NDArray[np.uint8], region: Box | None) -> list[Detection]:
    return []


def redact(url: str) -> str:
    """A URL without its password (health and logs are read by people who must not learn it)."""
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.split("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
