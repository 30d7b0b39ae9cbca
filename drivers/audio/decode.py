"""Decoding any source FFmpeg reads (WAV, MP3, AAC, Opus, an Icecast stream ...) into float blocks at the
device's rate and channel count, in a thread of its own.

Why a thread of its own: a network read can hang for seconds, and stop() must silence the loudspeakers
within ~100 ms. The player's writer only ever waits on this thread's queue with short timeouts, so a stuck
read delays nothing; the decoder notices the stop flag when the read returns and exits by itself.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np

from drivers.audio.interface import MediaError, PcmFormat, Source

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame
    from av.audio.resampler import AudioResampler
    from av.container import InputContainer
    from numpy.typing import NDArray

BLOCK_S = 0.02  # 20 ms blocks: fine enough that the writer checks the stop flag often, coarse enough to be cheap
QUEUE_BLOCKS = 100  # 2 s decoded ahead: a jitter buffer for streams, ~1.5 MB at most
MAX_CONSECUTIVE_DECODE_ERRORS = 50  # a few damaged packets are skipped (radio streams have them); a file that is
# damaged throughout is an error
URL_SCHEMES = ("http://", "https://", "icecast://", "rtsp://", "rtmp://", "udp://", "tcp://")


class End:
    """Sentinel: the source ended normally."""


END = End()


@dataclass(frozen=True, slots=True)
class OpenTarget:
    url: str  # what FFmpeg is given
    label: str  # what people are shown (the file name as given)
    local: Path | None  # set for local files


def target_for(source: Source) -> OpenTarget:
    """Local files are opened as 'file:<absolute path>': FFmpeg would otherwise take 'tin7:30.mp3' as a URL with
    the scheme 'tin7' and fail with an I/O error. Strings with a known scheme are URLs."""
    text = os.fspath(source)
    if isinstance(source, str) and text.lower().startswith(URL_SCHEMES):
        return OpenTarget(url=text, label=text, local=None)
    path = Path(text).absolute()
    return OpenTarget(url="file:" + str(path), label=text, local=path)


def stream_options(target: OpenTarget) -> dict[str, str]:
    if target.local is not None:
        return {}
    # FFmpeg's default probe size (5 MB) makes it wait, on a live stream, for far more data than it needs to
    # recognise MP3/AAC/Opus before the first sample: measured, a 16 KB head of an MP3 stream held av.open()
    # until the open timeout; with 16 KB (~1 s at 128 kbit/s) it opens in 2 ms.
    options = {"probesize": "16384"}
    if target.url.startswith(("http://", "https://", "icecast://")):
        # A dropped connection to a file of known length is resumed (HTTP Range) by FFmpeg itself. Not
        # "reconnect_streamed": FFmpeg cannot tell a live stream that dropped from a file served without a
        # length that ended, and would replay such a file forever over the village; a live relay that ends
        # early is the hub's to re-open.
        options |= {"reconnect": "1", "reconnect_delay_max": "4"}
    return options


def describe_ffmpeg_error(exc: BaseException) -> str:
    if isinstance(exc, av.error.FileNotFoundError | FileNotFoundError):
        return "no such file"
    if isinstance(exc, av.error.PermissionError | PermissionError):
        return "permission denied"
    if isinstance(exc, av.error.IsADirectoryError | IsADirectoryError):
        return "it is a directory"
    if isinstance(exc, av.error.InvalidDataError):
        return "not an audio file FFmpeg can read (corrupt or unknown format)"
    if isinstance(exc, av.error.HTTPError):
        return f"HTTP error: {getattr(exc, 'strerror', None) or exc}"
    if isinstance(exc, av.error.TimeoutError | TimeoutError | av.error.ExitError):
        # ExitError: PyAV's timeout interrupted FFmpeg ("Immediate exit requested").
        return "timed out waiting for data"
    strerror = getattr(exc, "strerror", None)
    return str(strerror or exc)


class Decoder(threading.Thread):
    """Produces float32 blocks shaped (frames, channels) at fmt.rate into `out`, then END, or a MediaError."""

    def __init__(
        self,
        source: Source,
        fmt: PcmFormat,
        stop: threading.Event,
        *,
        open_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self.target = target_for(source)
        super().__init__(name=f"audio-decode:{self.target.label[:40]}", daemon=True)
        self.fmt = fmt
        self.stop_flag = stop
        self.timeouts = (open_timeout_s, read_timeout_s)
        self.out: queue.Queue[NDArray[np.float32] | End | MediaError] = queue.Queue(QUEUE_BLOCKS)
        self.decode_errors = 0
        self.block_frames = max(1, round(fmt.rate * BLOCK_S))
        self._pending: list[NDArray[np.float32]] = []
        self._pending_frames = 0

    # -- producer side -------------------------------------------------------------------------------------------
    def _put(self, item: NDArray[np.float32] | End | MediaError) -> bool:
        """Blocks while the queue is full; False once stop is requested (the item is dropped)."""
        while not self.stop_flag.is_set():
            try:
                self.out.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def _fail(self, reason: str) -> None:
        self._put(MediaError(self.target.label, reason))

    def run(self) -> None:
        if self.target.local is not None and not self.target.local.exists():
            # FFmpeg would say "No such file or directory" too, but only after its protocol probing.
            self._fail("no such file")
            return
        try:
            container = av.open(
                self.target.url,
                timeout=self.timeouts,
                metadata_errors="replace",  # ID3 tags in legacy Vietnamese encodings (TCVN3, CP1258) are common
                options=stream_options(self.target),
            )
        except (av.error.FFmpegError, OSError, UnicodeError, ValueError) as exc:
            self._fail(describe_ffmpeg_error(exc))
            return
        try:
            self._decode(container)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._fail(f"read failed: {describe_ffmpeg_error(exc)}")
        except Exception as exc:  # a decoder thread must always end with an item the writer understands
            self._fail(f"unexpected {type(exc).__name__}: {exc}")
        finally:
            container.close()

    def _decode(self, container: InputContainer) -> None:
        if not container.streams.audio:
            self._fail("it has no audio stream")
            return
        stream = container.streams.audio[0]
        resampler: AudioResampler | None = None
        resampler_key: tuple[str, int, int] | None = None
        mono_source = False
        consecutive_errors = 0
        for packet in container.demux(stream):
            if self.stop_flag.is_set():
                return
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                self.decode_errors += 1
                consecutive_errors += 1
                if consecutive_errors > MAX_CONSECUTIVE_DECODE_ERRORS:
                    self._fail(f"corrupt: {consecutive_errors} damaged packets in a row")
                    return
                continue
            consecutive_errors = 0
            for frame in frames:
                key = (frame.format.name, frame.layout.nb_channels, frame.sample_rate)
                if key != resampler_key:
                    # A radio stream may change rate or channels between programmes; PyAV's resampler refuses
                    # a frame unlike its first, so finish the old one and start another.
                    if resampler is not None and not self._emit_resampled(resampler, None, mono_source):
                        return
                    mono_source = frame.layout.nb_channels == 1
                    # FFmpeg's mono->stereo upmix lowers each side by 3 dB; a mono announcement (espeak-ng, most
                    # recordings) should come out of every loudspeaker at full level, so mono is resampled as
                    # mono and copied to each channel below.
                    layout = "mono" if mono_source else self.fmt.layout
                    resampler = av.AudioResampler(format="flt", layout=layout, rate=self.fmt.rate)
                    resampler_key = key
                assert resampler is not None
                if not self._emit_resampled(resampler, frame, mono_source):
                    return
        if resampler is not None and not self._emit_resampled(resampler, None, mono_source):
            return
        if self._pending_frames:
            self._put(self._take(self._pending_frames))
        self._put(END)

    def _emit_resampled(self, resampler: AudioResampler, frame: AudioFrame | None, mono_source: bool) -> bool:
        for out in resampler.resample(frame):
            samples = out.to_ndarray()  # packed float: shape (1, frames * channels)
            if mono_source:
                mono = samples.reshape(-1, 1)
                block = np.repeat(mono, self.fmt.channels, axis=1) if self.fmt.channels > 1 else mono
            else:
                block = samples.reshape(-1, self.fmt.channels)
            self._pending.append(block.astype(np.float32, copy=False))
            self._pending_frames += block.shape[0]
            while self._pending_frames >= self.block_frames:
                if not self._put(self._take(self.block_frames)):
                    return False
        return True

    def _take(self, frames: int) -> NDArray[np.float32]:
        joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        head, tail = joined[:frames], joined[frames:]
        self._pending = [tail] if len(tail) else []
        self._pending_frames = len(tail)
        return np.ascontiguousarray(head)

    # -- consumer side -------------------------------------------------------------------------------------------
    def next_item(self, stop: threading.Event) -> NDArray[np.float32] | End | MediaError | None:
        """The next block for the writer; None once stop is requested. Waits in short steps so a stop is
        noticed within ~20 ms even when a stream is stalled."""
        while not stop.is_set():
            try:
                return self.out.get(timeout=0.02)
            except queue.Empty:
                continue
        return None
