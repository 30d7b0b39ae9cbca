"""What hub/ sees of the loudspeakers, and what a PCM device backend must offer the player."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from drivers.base import DriverHealth

Source = str | os.PathLike[str]  # a local file, or an http(s):// / Icecast URL


@dataclass(frozen=True, slots=True)
class Instant:
    """One moment on both clocks: wall time for the broadcast log, monotonic time for arithmetic that a
    clock jump (NTP sync after a boot without RTC) must not break."""

    mono: float
    wall: float

    @classmethod
    def now(cls) -> Instant:
        return cls(time.monotonic(), time.time())


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """What the device is fed: interleaved signed 16-bit little-endian frames."""

    rate: int
    channels: int

    @property
    def bytes_per_frame(self) -> int:
        return 2 * self.channels

    @property
    def layout(self) -> str:
        return "mono" if self.channels == 1 else "stereo"


@dataclass(frozen=True, slots=True)
class PlaybackReport:
    """What was really heard: when the loudspeakers began and stopped sounding, and how much."""

    source: str
    volume: int
    device: str
    sample_rate: int
    started: Instant | None  # None: stopped (or failed) before a single frame reached the device
    ended: Instant
    frames_played: int
    stopped_early: bool  # stop() (or a mid-item error) cut it; False: it played to its end
    clipped_samples: int = 0  # samples that hit full scale after the volume gain (0 at volume <= 100 unless the
    # source itself is over full scale, which MP3 decoders can produce)
    decode_errors: int = 0  # damaged packets skipped
    underruns: int = 0  # times the device ran dry (a slow stream)
    recording: Path | None = None  # simulated device only: the WAV of what was "heard"
    error: str | None = None  # set when a mid-item error ended it (MediaError/DeviceError carry this report)

    @property
    def duration_s(self) -> float:
        return self.frames_played / self.sample_rate

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recording"] = str(self.recording) if self.recording else None
        data["duration_s"] = round(self.duration_s, 4)
        return data


class AudioError(Exception):
    """Base of everything the audio driver raises at hub/."""


class MediaError(AudioError):
    """The source cannot be played: missing, unreadable, not audio, corrupt, or a stream that failed.

    `report` is set when some of it had already been heard before the failure."""

    def __init__(self, source: str, reason: str, report: PlaybackReport | None = None) -> None:
        super().__init__(f"cannot play {source!r}: {reason}")
        self.source = source
        self.reason = reason
        self.report = report


class DeviceError(AudioError):
    """The ALSA device cannot be opened or died while playing (unplugged USB card, busy, aplay missing)."""

    def __init__(self, device: str, reason: str, report: PlaybackReport | None = None) -> None:
        super().__init__(f"audio device {device!r}: {reason}")
        self.device = device
        self.reason = reason
        self.report = report


class AudioBusyError(AudioError):
    """play() while another item plays. The hub decides priorities: it calls stop() first (an alert)."""


class StreamDropped(Exception):
    """Raised inside the player when write()/drain() is cut short by drop(): a signal between player and
    backend, never seen by hub/."""


class PcmStream(Protocol):
    """One playback on a device, used from the player's writer thread; only drop() may come from another thread.

    Semantics follow an ALSA PCM: write() blocks while the device buffer is full (real time), drain() blocks
    until every written frame has been heard, drop() silences at once and discards what is buffered."""

    def write(self, pcm: bytes) -> None: ...

    def drain(self) -> None: ...

    def drop(self) -> None: ...

    def close(self) -> None: ...

    @property
    def started(self) -> Instant | None: ...

    @property
    def ended(self) -> Instant | None: ...

    @property
    def frames_played(self) -> int: ...

    @property
    def underruns(self) -> int: ...

    @property
    def recording(self) -> Path | None: ...


class PcmDevice(Protocol):
    """A backend: the real ALSA device (alsa.py) or the paced simulated loudspeaker (sim_sink.py)."""

    @property
    def name(self) -> str: ...

    @property
    def simulated(self) -> bool: ...

    def present(self) -> bool:
        """Cheap check (no subprocess) that the device exists; called by health()."""
        ...

    def open(self, fmt: PcmFormat) -> PcmStream:
        """Blocking; raises DeviceError."""
        ...

    def played(self, report: PlaybackReport) -> None:
        """Told of every finished playback (the simulated device logs it)."""
        ...


class AudioOut(Protocol):
    """The loudspeakers as hub/ uses them."""

    async def play(self, source: Source, volume: int) -> PlaybackReport: ...

    async def stop(self, timeout: float = 1.0) -> PlaybackReport | None: ...

    def health(self) -> DriverHealth: ...

    async def close(self) -> None: ...
