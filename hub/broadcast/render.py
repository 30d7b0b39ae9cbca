"""Programme items made playable: uploaded audio from the media library, text read aloud, chimes.

Speech and chimes are made once and kept in a cache directory, loudness-normalised to the same target as the
uploads, so a chime, a read bulletin and a recorded one sound equally loud. Speech files are named by a hash
of everything that shapes them (text, voice, rate, level, engine), so a changed text is spoken anew and an
unchanged one is not; the cache is bounded and the least recently used speech goes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from drivers.audio import loudness, tts
from hub.broadcast.media import MediaLibrary, UnknownMediaError
from hub.broadcast.prepared import Prepared, RenderError

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 200 * 1024 * 1024  # about 35 minutes of 48 kHz speech
CHIME_RATE = 48_000
CHIME_VERSION = 1  # bump when the chimes' sound changes, so cached ones are made again


class Synthesizer(Protocol):
    """A text-to-speech engine: writes `text` spoken in `voice` to the WAV file `out` (drivers/audio/tts.py)."""

    async def __call__(self, text: str, out: Path, voice: str, rate_wpm: int) -> Path: ...


class MediaRenderer:
    """The Renderer (hub/broadcast/prepared.py) of the loudspeakers."""

    def __init__(
        self,
        library: MediaLibrary,
        cache_dir: Path,
        *,
        rate_wpm: int = tts.DEFAULT_RATE_WPM,
        target_lufs: float | None = None,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
        synthesize: Synthesizer = tts.synthesize,
        engine: str = "espeak-ng",
    ) -> None:
        self.library = library
        self.rate_wpm = rate_wpm
        self.target_lufs = library.target_lufs if target_lufs is None else target_lufs
        self.max_cache_bytes = max_cache_bytes
        self._synthesize = synthesize
        self._engine = engine
        self._speech_dir = Path(cache_dir) / "speech"
        self._chime_dir = Path(cache_dir) / "chimes"
        for folder in (self._speech_dir, self._chime_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._making = asyncio.Lock()

    async def audio(self, media_id: str) -> Prepared:
        try:
            info = self.library.get(media_id)
        except UnknownMediaError as exc:
            raise RenderError(f"audio item {media_id!r}: {exc}") from None
        if not info.path.is_file():
            raise RenderError(f"audio item {media_id!r} ({info.name}): its file is missing from the media library")
        return Prepared(source=str(info.path), duration_s=info.duration_s)

    async def text(self, text: str, voice: str) -> Prepared:
        label = f"text item {_excerpt(text)!r} (voice {voice})"
        try:
            spoken = tts.check_request(text, voice, self.rate_wpm)
        except tts.TtsError as exc:
            raise RenderError(f"{label}: {exc}") from None
        key = json.dumps([self._engine, spoken, voice, self.rate_wpm, self.target_lufs], ensure_ascii=False)
        path = self._speech_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.wav"

        async def make(raw: Path) -> None:
            await self._synthesize(spoken, raw, voice, self.rate_wpm)

        prepared = await self._cached(path, make, label)
        self._evict(keep=path)
        return prepared

    async def chime(self, kind: str) -> Prepared:
        shape = CHIMES.get(kind)
        if shape is None:
            raise RenderError(f"chime item {kind!r}: unknown chime; expected one of {', '.join(CHIMES)}")
        path = self._chime_dir / f"{kind}-v{CHIME_VERSION}-{self.target_lufs:g}.wav"

        async def make(raw: Path) -> None:
            await asyncio.to_thread(write_wav, raw, shape(CHIME_RATE), CHIME_RATE)

        return await self._cached(path, make, f"chime item {kind!r}")

    async def _cached(self, path: Path, make: Callable[[Path], Awaitable[None]], label: str) -> Prepared:
        """The file at `path`, made (raw by `make`, then normalised) if it is not there yet."""
        # One maker at a time: the same text asked for twice at once is spoken once, and making is CPU-bound.
        async with self._making:
            if not _touch(path):
                raw = path.with_name(f".{path.stem}.raw.wav")
                try:
                    await make(raw)
                    await loudness.normalise(raw, path, target_lufs=self.target_lufs)
                except (tts.TtsError, loudness.LoudnessError, OSError) as exc:
                    raise RenderError(f"{label}: {exc}") from None
                finally:
                    with contextlib.suppress(OSError):
                        raw.unlink()
            return Prepared(source=str(path), duration_s=wav_duration(path))

    def _evict(self, keep: Path) -> None:
        files = []
        for path in self._speech_dir.glob("[!.]*.wav"):  # not a file being made
            with contextlib.suppress(OSError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_cache_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                log.debug("speech cache: evicted %s", path.name)


def _touch(path: Path) -> bool:
    """Mark a cached file recently used (for eviction); False if it is not there."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def write_wav(path: Path, samples: NDArray[np.float64], rate: int) -> None:
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _excerpt(text: str, length: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


# ---- chimes -----------------------------------------------------------------------------------------------------
# Levels here are only relative: every chime is loudness-normalised after it is made.


def _bell(freq: float, seconds: float, rate: int) -> NDArray[np.float64]:
    """A struck bell: an inharmonic set of partials, each dying away, the higher ones faster."""
    t = np.arange(round(seconds * rate)) / rate
    attack = np.minimum(t / 0.004, 1.0)
    tone = np.zeros_like(t)
    for ratio, weight, decay_s in ((1.0, 1.0, 0.9), (2.0, 0.35, 0.5), (2.76, 0.2, 0.35), (5.4, 0.08, 0.15)):
        tone += weight * np.sin(2 * np.pi * freq * ratio * t) * np.exp(-t / decay_s)
    return attack * tone


def _notes(notes: list[tuple[float, float]], seconds: float, rate: int) -> NDArray[np.float64]:
    """Bells struck at (start time, frequency), ringing on until `seconds`."""
    out = np.zeros(round(seconds * rate))
    for start, freq in notes:
        first = round(start * rate)
        ring = _bell(freq, seconds - start, rate)
        out[first : first + len(ring)] += ring
    peak_normalised: NDArray[np.float64] = out / np.max(np.abs(out))
    return peak_normalised


def _fade(samples: NDArray[np.float64], rate: int, seconds: float = 0.02) -> NDArray[np.float64]:
    n = round(seconds * rate)
    ramp = np.linspace(0.0, 1.0, n)
    samples = samples.copy()
    samples[:n] *= ramp
    samples[-n:] *= ramp[::-1]
    return samples


def chime_start(rate: int) -> NDArray[np.float64]:
    """Ding-dong: E5 then C5, a falling major third, as before an announcement in a station."""
    return _notes([(0.0, 659.25), (0.55, 523.25)], 2.2, rate)


def chime_end(rate: int) -> NDArray[np.float64]:
    """Three falling notes, G5 E5 C5: the announcement is over."""
    return _notes([(0.0, 783.99), (0.3, 659.25), (0.6, 523.25)], 2.2, rate)


def chime_alert(rate: int) -> NDArray[np.float64]:
    """A siren: a tone sweeping 600-1200 Hz and back once a second, with a hard edge (odd harmonics)."""
    t = np.arange(round(4.0 * rate)) / rate
    freq = 900 - 300 * np.cos(2 * np.pi * t / 1.0)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    wave_ = np.sin(phase) + 0.3 * np.sin(3 * phase) + 0.12 * np.sin(5 * phase)
    return _fade(wave_ / np.max(np.abs(wave_)), rate)


def chime_test(rate: int) -> NDArray[np.float64]:
    """A steady 1 kHz tone for checking a zone's loudspeakers."""
    t = np.arange(round(3.0 * rate)) / rate
    return _fade(0.5 * np.sin(2 * np.pi * 1000.0 * t), rate, 0.01)


CHIMES: dict[str, Callable[[int], NDArray[np.float64]]] = {
    "start": chime_start,
    "end": chime_end,
    "alert": chime_alert,
    "test": chime_test,
}
