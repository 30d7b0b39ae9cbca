"""The loudspeaker driver: decode a source, apply the volume, feed a PCM device, report what was really heard.

The same player runs on the box (alsa.py: aplay on the ALSA device) and off it (sim_sink.py: a loudspeaker
paced in real time that records to WAV); only the device object differs.

Threads, and why: per playback a *decoder* thread (decode.py; may block on the network) fills a queue, and
a *writer* thread takes 20 ms blocks from it, applies the gain and blocks on the device like ALSA does.
The event loop only starts and stops them. stop() silences the device at once from the loop (drop(): kill
aplay / cut the simulated buffer), so the loudspeakers go quiet within milliseconds even if a thread is
stuck; the writer then notices within one 20 ms step and returns the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.audio.interface import (
    AudioBusyError,
    AudioError,
    DeviceError,
    Instant,
    MediaError,
    PcmDevice,
    PcmFormat,
    PcmStream,
    PlaybackReport,
    Source,
    StreamDropped,
)
from drivers.base import DriverHealth

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from drivers.audio.decode import Decoder

# PyAV and numpy (about 30 MB resident together) are imported on the first playback, not at start: an idle hub
# stays small, and the first announcement pays a one-off ~0.3 s import on a Pi.

log = logging.getLogger(__name__)

FULL_SCALE = 32767.0


def volume_gain(volume: int) -> float:
    """Volume 0-100 as a linear amplitude gain 0.0-1.0: 50 is half the amplitude (-6 dB). Never above 1, so the
    volume itself cannot push a sample past full scale."""
    if isinstance(volume, bool) or not isinstance(volume, int) or not 0 <= volume <= 100:
        raise ValueError(f"volume must be an integer 0-100, not {volume!r}")
    return volume / 100.0


def to_pcm(block: NDArray[np.float32], gain: float) -> tuple[bytes, int]:
    """Float samples -> S16_LE bytes with the gain applied. Samples beyond full scale (decoders of lossy formats
    overshoot a little) are clipped rather than left to wrap around to the opposite sign, which would crack
    loudly in the loudspeakers. Returns the bytes and how many samples were clipped."""
    import numpy as np

    scaled = block * np.float32(gain)
    clipped = int(np.count_nonzero(np.abs(scaled) > 1.0))
    np.clip(scaled, -1.0, 1.0, out=scaled)
    return np.rint(scaled * FULL_SCALE).astype("<i2").tobytes(), clipped


@dataclass
class _Playback:
    """One item, shared between the loop (stop) and the writer thread."""

    label: str
    volume: int
    gain: float
    begun: Instant = field(default_factory=Instant.now)
    stop_flag: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stream: PcmStream | None = None
    frames_written: int = 0
    clipped: int = 0
    report: PlaybackReport | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self) -> None:
        with self.lock:
            self.stop_flag.set()
            stream = self.stream
        if stream is not None:
            stream.drop()  # immediate silence; also wakes a writer blocked in write()/drain()

    def attach(self, stream: PcmStream) -> None:
        with self.lock:
            self.stream = stream
            stopped = self.stop_flag.is_set()
        if stopped:  # stop() came between the device opening and this
            stream.drop()


class AudioPlayer:
    """`AudioOut` for hub/: one item at a time on one device."""

    def __init__(
        self,
        device: PcmDevice,
        fmt: PcmFormat,
        *,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.device = device
        self.fmt = fmt
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._current: _Playback | None = None
        self._last_report: PlaybackReport | None = None
        self._last_error: str | None = None
        self._device_failed = False  # the last attempt failed because of the device, not the media

    # -- hub API --------------------------------------------------------------------------------------------------
    async def play(self, source: Source, volume: int) -> PlaybackReport:
        """Play `source` to its end (or until stop()) and report what was heard.

        Raises MediaError (missing/corrupt file, failed stream) before anything is played when the source is
        bad from the start; DeviceError if the device cannot be opened; AudioBusyError if an item plays.
        A failure mid-item raises the same errors with `.report` set. Cancelling play() stops the item."""
        gain = volume_gain(volume)
        if self._current is not None:
            raise AudioBusyError(f"already playing {self._current.label!r}; stop() it first")
        from drivers.audio.decode import target_for

        item = _Playback(label=target_for(source).label, volume=volume, gain=gain)
        self._current = item
        loop = asyncio.get_running_loop()
        done: asyncio.Future[PlaybackReport] = loop.create_future()

        def writer() -> None:
            try:
                result: PlaybackReport | BaseException = self._run(item, source)
            except BaseException as exc:  # handed to the awaiting coroutine, not lost in a thread
                result = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(_settle, done, result)

        threading.Thread(target=writer, name=f"audio-write:{item.label[:40]}", daemon=True).start()
        try:
            report = item.report = await asyncio.shield(done)
        except asyncio.CancelledError:
            item.request_stop()
            await asyncio.wait({done}, timeout=1.0)
            if done.done() and not done.cancelled():
                done.exception()  # retrieved, so asyncio does not log it as lost
            raise
        except AudioError as exc:
            item.report = getattr(exc, "report", None)
            self._last_error = str(exc)
            self._device_failed = isinstance(exc, DeviceError)
            if item.report is not None:
                self._last_report = item.report
            raise
        finally:
            if self._current is item:
                self._current = None
            item.finished.set()
        self._last_report = report
        self._last_error = None
        self._device_failed = False
        return report

    async def stop(self, timeout: float = 1.0) -> PlaybackReport | None:
        """Silence the current item now; return its report (None if nothing was playing). The sound stops when
        this is called; waiting for the report takes one writer step (~20 ms)."""
        item = self._current
        if item is None:
            return None
        item.request_stop()
        try:
            await asyncio.wait_for(item.finished.wait(), timeout)
        except TimeoutError:
            log.warning("audio: writer of %r did not finish within %.1f s of stop()", item.label, timeout)
            return None
        return item.report

    async def close(self) -> None:
        await self.stop()

    @property
    def playing(self) -> bool:
        return self._current is not None

    @property
    def last_report(self) -> PlaybackReport | None:
        return self._last_report

    def health(self) -> DriverHealth:
        present = self.device.present()
        current = self._current
        if not present:
            state = "absent"
        elif self._device_failed:
            state = "error"
        elif current is not None:
            state = "playing"
        else:
            state = "simulated" if self.device.simulated else "idle"
        detail: dict[str, Any] = {
            "device": self.device.name,
            "simulated": self.device.simulated,
            "present": present,
            "sample_rate": self.fmt.rate,
            "channels": self.fmt.channels,
            "current": None,
            "last_playback": self._last_report.as_dict() if self._last_report else None,
        }
        if current is not None:
            detail["current"] = {
                "source": current.label,
                "volume": current.volume,
                "requested_wall": current.begun.wall,
                "seconds_written": round(current.frames_written / self.fmt.rate, 3),
            }
        return DriverHealth(
            ok=present and not self._device_failed, state=state, detail=detail, last_error=self._last_error
        )

    # -- writer thread --------------------------------------------------------------------------------------------
    def _run(self, item: _Playback, source: Source) -> PlaybackReport:
        from drivers.audio.decode import Decoder, End

        decoder = Decoder(
            source, self.fmt, item.stop_flag, open_timeout_s=self.open_timeout_s, read_timeout_s=self.read_timeout_s
        )
        decoder.start()
        try:
            first = decoder.next_item(item.stop_flag)
            # Nothing reaches the device before the first block is decoded: a bad file fails with no sound at all.
            if first is None:
                return self._finish(item, None, decoder, completed=False, error=None)
            if isinstance(first, MediaError):
                raise first
            if isinstance(first, End):
                raise MediaError(item.label, "it contains no audio samples")
            stream = self.device.open(self.fmt)
        except BaseException:
            item.stop_flag.set()  # the decoder thread exits at its next step
            raise
        item.attach(stream)
        completed = False
        error: AudioError | None = None
        try:
            block = first
            while True:
                pcm, clipped = to_pcm(block, item.gain)
                item.clipped += clipped
                stream.write(pcm)
                item.frames_written += block.shape[0]
                nxt = decoder.next_item(item.stop_flag)
                if nxt is None:  # stop(): the stream is already dropped
                    break
                if isinstance(nxt, End):
                    stream.drain()
                    completed = True
                    break
                if isinstance(nxt, MediaError):
                    # What was decoded before the failure is good audio: let the device play it out.
                    error = nxt
                    stream.drain()
                    break
                block = nxt
        except StreamDropped:
            pass
        except DeviceError as exc:
            error = exc
            stream.drop()
        finally:
            item.stop_flag.set()  # the decoder thread exits at its next step
            stream.close()
        return self._finish(item, stream, decoder, completed=completed, error=error)

    def _finish(
        self,
        item: _Playback,
        stream: PcmStream | None,
        decoder: Decoder,
        *,
        completed: bool,
        error: AudioError | None,
    ) -> PlaybackReport:
        report = PlaybackReport(
            source=item.label,
            volume=item.volume,
            device=self.device.name,
            sample_rate=self.fmt.rate,
            started=stream.started if stream else None,
            ended=(stream.ended if stream else None) or Instant.now(),
            frames_played=stream.frames_played if stream else 0,
            stopped_early=not completed,
            clipped_samples=item.clipped,
            decode_errors=decoder.decode_errors,
            underruns=stream.underruns if stream else 0,
            recording=stream.recording if stream else None,
            error=str(error) if error else None,
        )
        if stream is not None:
            try:
                self.device.played(report)
            except OSError as exc:  # a full disk must not turn a played item into a failed one
                log.warning("audio: could not log playback of %r: %s", item.label, exc)
        if isinstance(error, MediaError):
            raise MediaError(error.source, error.reason, report)
        if isinstance(error, DeviceError):
            raise DeviceError(error.device, error.reason, report)
        return report


def _settle(future: asyncio.Future[PlaybackReport], result: PlaybackReport | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
