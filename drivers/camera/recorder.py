"""Recording a camera's main stream in short segments with FFmpeg's segment muxer (through PyAV).

Without privacy masks the packets are copied as the camera encoded them (no decoding: a Pi records a 4 MP
stream at almost no CPU cost). With privacy masks every frame is decoded, blacked out and re-encoded
(libx264, ultrafast): costly on a Pi, so prefer the camera's own privacy-mask feature and leave masks out of
the recording there (see `record.reencode_privacy` in the camera settings).

Segments are named `<session start, epoch s>-<index>.mp4` in the given directory; a segment's file time is
when it was last written, which is what retention reads.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.camera.source import describe, is_url, open_options

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

Transform = Callable[["NDArray[np.uint8]"], "NDArray[np.uint8]"]


class SegmentRecorder:
    def __init__(
        self,
        url: str,
        directory: Path,
        *,
        segment_s: float = 10.0,
        transform: Transform | None = None,
        realtime: bool = True,
        stall_timeout_s: float = 20.0,
        backoff_max_s: float = 30.0,
        name: str = "camera",
    ) -> None:
        self.url = url
        self.directory = directory
        self.segment_s = segment_s
        self.transform = transform
        self.realtime = realtime
        self.stall_timeout_s = stall_timeout_s
        self.backoff_max_s = backoff_max_s
        self.name = name
        self.recording = False
        self.restarts = 0
        self.last_error: str | None = None
        self.packets = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"record-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def health(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "reencoding": self.transform is not None,
        }

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._record()
            except Exception as exc:  # any FFmpeg failure: open again after a pause
                self.last_error = describe(exc)
                log.warning("recorder %s: %s", self.name, self.last_error)
            finally:
                self.recording = False
            if self._stop.is_set():
                return
            self.restarts += 1
            if time.monotonic() - started > 60:
                backoff = 1.0
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _record(self) -> None:
        import av

        target = self.url if is_url(self.url) else "file:" + str(Path(self.url).absolute())
        source = av.open(target, options=open_options(target), timeout=(10.0, self.stall_timeout_s))
        pattern = str(self.directory / f"{int(time.time())}-%06d.mp4")
        options = {"segment_time": f"{self.segment_s:g}", "reset_timestamps": "1", "segment_format": "mp4"}
        try:
            video = source.streams.video[0]
            out = av.open(pattern, mode="w", format="segment", options=options)
            try:
                self.recording = True
                self.last_error = None
                if self.transform is None:
                    self._copy(source, video, out)
                else:
                    self._reencode(source, video, out, self.transform)
            finally:
                out.close()
        finally:
            source.close()

    def _pace(self, clock_start: float, media_t: float) -> bool:
        """For files standing in for cameras: wait until the packet's time; True if asked to stop."""
        if not self.realtime or is_url(self.url):
            return self._stop.is_set()
        delay = clock_start + media_t - time.monotonic()
        return self._stop.wait(delay) if delay > 0 else self._stop.is_set()

    def _copy(self, source: Any, video: Any, out: Any) -> None:
        stream = out.add_stream_from_template(video)
        clock_start = time.monotonic()
        first: float | None = None
        for packet in source.demux(video):
            if packet.dts is None:
                continue
            t = float(packet.dts * video.time_base)
            first = t if first is None else first
            if self._pace(clock_start, t - first):
                return
            packet.stream = stream
            out.mux(packet)
            self.packets += 1

    def _reencode(self, source: Any, video: Any, out: Any, transform: Transform) -> None:
        import av

        rate = video.average_rate or fractions.Fraction(25)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = max(1, round(float(rate) * self.segment_s))
        stream.options = {"preset": "ultrafast"}
        clock_start = time.monotonic()
        first: float | None = None
        for packet in source.demux(video):
            for frame in packet.decode():
                t = float(frame.pts * video.time_base) if frame.pts is not None else 0.0
                first = t if first is None else first
                if self._pace(clock_start, t - first):
                    return
                rgb = transform(frame.to_ndarray(format="rgb24"))
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                self.packets += 1
        out.mux(stream.encode(None))
