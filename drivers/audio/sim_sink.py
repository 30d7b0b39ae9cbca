"""The simulated loudspeaker: a PCM device that consumes frames in real time, like a sound card, and records
what was heard to a WAV file per playback, with a line per playback in playback.ndjson.

It models the device, not the player: a buffer of `buffer_ms` that drains at the sample rate. write() blocks
while the buffer is full, so a 3 s clip takes 3 s to play; drop() discards what is buffered and not yet
heard, so the WAV of a stopped item ends where the sound stopped; if the writer falls behind (a slow
stream) the device runs dry, the gap is recorded as silence and counted as an underrun. Tests read the WAV
to check what was heard and the ndjson to check when.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import threading
import time
import wave
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drivers.audio.interface import Instant, PcmFormat, PlaybackReport, StreamDropped

LOG_NAME = "playback.ndjson"


@dataclass(slots=True)
class _Segment:
    start: float  # monotonic time at which its first frame is heard
    frames: int
    pcm: bytes | None  # None: silence of an underrun


class SimulatedStream:
    def __init__(self, fmt: PcmFormat, path: Path, buffer_frames: int) -> None:
        self.fmt = fmt
        self.path = path
        self._part = path.with_name(path.name + ".part")
        self._buffer_frames = max(1, buffer_frames)
        self._wav = wave.open(str(self._part), "wb")  # noqa: SIM115 - closed in close(), it spans a playback
        self._wav.setnchannels(fmt.channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(fmt.rate)
        self._lock = threading.Lock()
        self._dropped = threading.Event()
        self._segments: deque[_Segment] = deque()
        self._play_end: float | None = None  # when the last written frame will have been heard
        self._started: Instant | None = None
        self._ended: Instant | None = None
        self._heard = 0  # source frames heard (underrun silence not counted)
        self._underruns = 0
        self._recording: Path | None = None
        self._closed = False

    # -- PcmStream ------------------------------------------------------------------------------------------------
    def write(self, pcm: bytes) -> None:
        step = self._buffer_frames * self.fmt.bytes_per_frame
        for offset in range(0, len(pcm), step):
            self._write_chunk(pcm[offset : offset + step])

    def _write_chunk(self, pcm: bytes) -> None:
        frames = len(pcm) // self.fmt.bytes_per_frame
        if self._play_end is not None:
            # Like snd_pcm_writei: wait until the device has room for these frames.
            room_at = self._play_end - (self._buffer_frames - frames) / self.fmt.rate
            delay = room_at - time.monotonic()
            if delay > 0 and self._dropped.wait(delay):
                raise StreamDropped
        if self._dropped.is_set():
            raise StreamDropped
        with self._lock:
            now = time.monotonic()
            if self._play_end is None:
                self._started = Instant(now, time.time())
                self._play_end = now
            elif self._play_end < now:
                gap = math.floor((now - self._play_end) * self.fmt.rate)
                if gap > 0:
                    self._segments.append(_Segment(self._play_end, gap, None))
                    self._play_end += gap / self.fmt.rate
                    self._underruns += 1
            self._segments.append(_Segment(self._play_end, frames, pcm))
            self._play_end += frames / self.fmt.rate
            self._flush_heard(now)

    def drain(self) -> None:
        if self._play_end is not None:
            delay = self._play_end - time.monotonic()
            if delay > 0 and self._dropped.wait(delay):
                raise StreamDropped
        with self._lock:
            if self._ended is None:
                self._ended = Instant.now()

    def drop(self) -> None:
        with self._lock:
            if self._ended is None:
                self._ended = Instant.now()
        self._dropped.set()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._ended is None:
                self._ended = Instant.now()
            self._flush_heard(self._ended.mono, partial=True)
            self._segments.clear()
            frames = self._wav.getnframes()
            self._wav.close()
        if frames:
            self._part.replace(self.path)
            self._recording = self.path
        else:
            self._part.unlink(missing_ok=True)

    def _flush_heard(self, now: float, *, partial: bool = False) -> None:
        """Move what has been heard by `now` from the buffer to the WAV (under the lock)."""
        while self._segments:
            segment = self._segments[0]
            heard = min(segment.frames, math.floor((now - segment.start) * self.fmt.rate + 1e-6))
            if heard < segment.frames and not partial:
                return
            if heard <= 0:
                return
            if segment.pcm is None:
                self._wav.writeframesraw(bytes(heard * self.fmt.bytes_per_frame))
            else:
                self._wav.writeframesraw(segment.pcm[: heard * self.fmt.bytes_per_frame])
                self._heard += heard
            self._segments.popleft()
            if heard < segment.frames:
                return

    @property
    def started(self) -> Instant | None:
        return self._started

    @property
    def ended(self) -> Instant | None:
        return self._ended

    @property
    def frames_played(self) -> int:
        return self._heard

    @property
    def underruns(self) -> int:
        return self._underruns

    @property
    def recording(self) -> Path | None:
        return self._recording


class SimulatedDevice:
    """What `hub run` plays to off the box. One WAV per playback in `directory`, newest `keep` kept."""

    simulated = True

    def __init__(self, directory: Path, *, buffer_ms: int = 100, keep: int = 50, name: str = "simulated") -> None:
        self.directory = directory
        self.buffer_ms = buffer_ms
        self.keep = keep
        self._name = name
        self._seq = itertools.count(1)
        self.log_path = directory / LOG_NAME

    @property
    def name(self) -> str:
        return self._name

    def present(self) -> bool:
        probe = self.directory
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return os.access(probe, os.W_OK)

    def open(self, fmt: PcmFormat) -> SimulatedStream:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{next(self._seq):04d}.wav"
        return SimulatedStream(fmt, path, round(fmt.rate * self.buffer_ms / 1000))

    def played(self, report: PlaybackReport) -> None:
        line = json.dumps({"logged_wall": time.time(), **report.as_dict()}, ensure_ascii=False, default=_plain)
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(line + "\n")
        self._prune()

    def recordings(self) -> list[Path]:
        """Oldest first (names start with the UTC time)."""
        return sorted(self.directory.glob("*.wav"))

    def log_entries(self) -> list[dict[str, object]]:
        if not self.log_path.exists():
            return []
        with self.log_path.open(encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]

    def _prune(self) -> None:
        old = self.recordings()[: -self.keep]
        for path in old:
            with contextlib.suppress(OSError):
                path.unlink()


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
