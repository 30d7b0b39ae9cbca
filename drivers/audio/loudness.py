"""EBU R128 loudness: measure a file, and normalise it to a target level, with the ffmpeg CLI (Debian: ffmpeg).

Measuring is the first pass of ffmpeg's `loudnorm` filter (integrated loudness, true peak, loudness range,
reported as JSON). Normalising applies the one gain that brings the measured loudness to the target to the
whole file, so a recording keeps its own dynamics and only its level moves; where that gain would push peaks
over the true-peak ceiling, a peak limiter (`alimiter`) catches just those peaks. The output is then measured
again and, if limiting cost more than half a LU, the gain is corrected once more.

Why not loudnorm's own second pass: it applies one gain only when the gain fits under the ceiling, and
otherwise falls back to its dynamic mode, which on measured files landed far from the target here (a
-10 LUFS noise file came out at -21.9 LUFS, a five-second espeak-ng sentence at -17.2 instead of -16).
Why not pyloudnorm: it measures but does not limit peaks, and it needs scipy, which is heavy on a Pi.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.audio.probe import AUDIO_DEMUXERS

FFMPEG = "ffmpeg"
TARGET_LUFS = -16.0  # EBU R128 for broadcast is -23; speech on outdoor loudspeakers wants a hotter level
TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0  # loudnorm's default; only its measurement is used, so this changes nothing
LIMITER_MARGIN_DB = 0.5  # alimiter limits sample peaks; true (inter-sample) peaks can be a little higher
LIMITER_TOLERANCE_LU = 0.5  # limiting lowers loudness; beyond this the gain is corrected
LIMITER_CORRECTIONS = 2
OUTPUT_RATE = 48_000  # what the player's device runs at: no resampling at play time
DEFAULT_TIMEOUT_S = 300.0  # a 30-minute programme takes a few seconds per pass here, a Pi several times that
# Output codecs by suffix: WAV for short generated speech and chimes, FLAC to keep uploads at half the size.
ENCODERS: dict[str, tuple[str, ...]] = {
    ".wav": ("-c:a", "pcm_s16le", "-f", "wav"),
    ".flac": ("-c:a", "flac", "-sample_fmt", "s16", "-f", "flac"),
    ".ogg": ("-c:a", "libvorbis", "-q:a", "6", "-f", "ogg"),
    ".mp3": ("-c:a", "libmp3lame", "-q:a", "2", "-f", "mp3"),
}
_INPUT_OPTIONS = ("-format_whitelist", ",".join(AUDIO_DEMUXERS), "-protocol_whitelist", "file")


class LoudnessError(Exception):
    """A file could not be measured or normalised; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class Loudness:
    integrated_lufs: float  # -inf: silence
    true_peak_dbtp: float
    range_lu: float
    threshold_lufs: float

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.integrated_lufs)


@dataclass(frozen=True, slots=True)
class Normalised:
    path: Path
    before: Loudness  # the input
    after: Loudness  # the output, measured after writing it
    gain_db: float  # applied to the whole file
    limited: bool  # peaks that the gain would have pushed over the true-peak ceiling were limited


async def measure(
    path: Path,
    *,
    target_lufs: float = TARGET_LUFS,
    true_peak_dbtp: float = TRUE_PEAK_DBTP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    executable: str = FFMPEG,
) -> Loudness:
    """Integrated loudness, true peak and loudness range of a file (loudnorm's first pass)."""
    spec = _filter(target_lufs, true_peak_dbtp, LOUDNESS_RANGE_LU)
    stderr = await _ffmpeg(path, [*_input(path), "-af", spec, "-f", "null", "-"], timeout_s, executable)
    return _loudness(_report(path, stderr), "input")


async def normalise(
    src: Path,
    out: Path,
    *,
    target_lufs: float = TARGET_LUFS,
    true_peak_dbtp: float = TRUE_PEAK_DBTP,
    sample_rate: int = OUTPUT_RATE,
    measured: Loudness | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    executable: str = FFMPEG,
) -> Normalised:
    """Write `src` at `target_lufs` to `out` (codec from its suffix: .wav, .flac, .ogg, .mp3).

    `measured` skips the first measurement when the caller has measured already. The output appears whole
    or not at all. A silent input is an error (there is no level to correct)."""
    out = Path(out)
    encoder = ENCODERS.get(out.suffix.lower())
    if encoder is None:
        wanted = out.suffix or "a file without suffix"
        raise LoudnessError(f"{out.name}: cannot write {wanted}; use one of {', '.join(ENCODERS)}")
    options = {"target_lufs": target_lufs, "true_peak_dbtp": true_peak_dbtp, "timeout_s": timeout_s}
    before = measured or await measure(src, executable=executable, **options)
    if before.silent:
        raise LoudnessError(f"{Path(src).name}: it is silent, there is no level to normalise")
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    gain = target_lufs - before.integrated_lufs
    try:
        for attempt in range(1 + LIMITER_CORRECTIONS):
            limited = before.true_peak_dbtp + gain > true_peak_dbtp
            chain = f"volume={gain:.2f}dB:precision=float"
            if limited:
                chain += f",alimiter=limit={10 ** ((true_peak_dbtp - LIMITER_MARGIN_DB) / 20):.4f}:level=false"
            argv = [*_input(src), "-af", chain, "-ar", str(sample_rate), *encoder, "-y", str(partial)]
            await _ffmpeg(src, argv, timeout_s, executable)
            after = await measure(partial, executable=executable, **options)
            error = target_lufs - after.integrated_lufs
            if not limited or abs(error) <= LIMITER_TOLERANCE_LU or attempt == LIMITER_CORRECTIONS:
                break
            gain += error
        partial.replace(out)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    return Normalised(out, before, after, gain, limited)


def _filter(target_lufs: float, true_peak_dbtp: float, range_lu: float) -> str:
    return f"loudnorm=I={target_lufs:g}:TP={true_peak_dbtp:g}:LRA={range_lu:g}:print_format=json"


def _input(path: Path) -> list[str]:
    # "file:" so a name with a colon is not read as a URL; the whitelists so an upload cannot make FFmpeg
    # open anything but an audio container on the local disk.
    # "-map 0:a:0": the first audio stream only; an MP3's cover picture or a phone video's picture is dropped.
    return [*_INPUT_OPTIONS, "-i", "file:" + str(Path(path).absolute()), "-map", "0:a:0"]


def _loudness(report: dict[str, Any], prefix: str) -> Loudness:
    try:
        return Loudness(
            integrated_lufs=float(report[f"{prefix}_i"]),
            true_peak_dbtp=float(report[f"{prefix}_tp"]),
            range_lu=float(report[f"{prefix}_lra"]),
            threshold_lufs=float(report[f"{prefix}_thresh"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LoudnessError(f"loudnorm's report lacks {prefix} values: {exc}") from None


async def _ffmpeg(src: Path, args: list[str], timeout_s: float, executable: str) -> str:
    """Run ffmpeg on `src`; what it printed on stderr."""
    name = Path(src).name
    argv = [executable, "-hide_banner", "-nostdin", "-nostats", *args]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError:
        raise LoudnessError(f"{executable} is not installed (Debian package ffmpeg)") from None
    except PermissionError:
        raise LoudnessError(f"{executable} cannot be run: permission denied") from None
    try:
        _, stderr_bytes = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        raise LoudnessError(f"{name}: {executable} took longer than {timeout_s:g} s and was stopped") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    stderr = stderr_bytes.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise LoudnessError(f"{name}: {executable} failed (exit {proc.returncode}): {_last_lines(stderr)}")
    return stderr


def _report(src: Path, stderr: str) -> dict[str, Any]:
    """loudnorm's JSON report, printed last on stderr."""
    name = Path(src).name
    start, end = stderr.rfind("{"), stderr.rfind("}")
    if start < 0 or end < start:
        raise LoudnessError(f"{name}: ffmpeg printed no loudnorm report: {_last_lines(stderr)}")
    try:
        report: dict[str, Any] = json.loads(stderr[start : end + 1])
    except json.JSONDecodeError as exc:
        raise LoudnessError(f"{name}: loudnorm's report is not JSON: {exc}") from None
    return report


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-n:]) or "no message"
