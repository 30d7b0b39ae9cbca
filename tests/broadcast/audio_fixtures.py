"""Test audio made on the spot: tones and noise as WAV, other formats through the ffmpeg CLI, and an independent
loudness meter (ffmpeg's ebur128 filter, not the loudnorm filter the code under test uses)."""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

RATE = 48_000


def pink_noise(seconds: float, rate: int = RATE, seed: int = 1) -> NDArray[np.float64]:
    """Noise with a 1/f spectrum (like programme material), peak-normalised to 0.5."""
    n = round(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    freqs[0] = freqs[1]
    signal = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    peak_normalised: NDArray[np.float64] = 0.5 * signal / np.max(np.abs(signal))
    return peak_normalised


def tone(freq: float, seconds: float, rate: int = RATE, amplitude: float = 0.5) -> NDArray[np.float64]:
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def write_wav(path: Path, samples: NDArray[np.float64], rate: int = RATE) -> Path:
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> tuple[NDArray[np.float64], int]:
    """Mono float samples (channels averaged) and the rate of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return pcm.reshape(-1, channels).mean(axis=1), rate


def convert(src: Path, out: Path, *args: str) -> Path:
    """Encode with the ffmpeg CLI (format from out's suffix, extra encoder args)."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), *args, str(out)],
        check=True,
    )
    return out


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP), measured by ffmpeg's ebur128 filter."""
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = result.stderr[result.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert integrated, summary
    assert peak, summary
    return float(integrated.group(1)), float(peak.group(1))


def at_loudness(path: Path, samples: NDArray[np.float64], lufs: float, rate: int = RATE) -> Path:
    """Write `samples` scaled so the file measures `lufs` (one measure, one linear correction)."""
    write_wav(path, samples, rate)
    measured, _ = ebur128(path)
    write_wav(path, samples * 10 ** ((lufs - measured) / 20), rate)
    return path


def with_cover_art(src: Path, out: Path) -> Path:
    """An MP3 with an embedded picture (a video stream to FFmpeg), as music downloads have."""
    picture = ["-f", "lavfi", "-i", "color=red:size=64x64:duration=0.04"]
    streams = ["-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-c:v", "mjpeg", "-disposition:v", "attached_pic"]
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), *picture, *streams, str(out)],
        check=True,
    )
    return out
