"""Test media made on the spot with PyAV and numpy (no binary fixtures in the repo), and measurements of
what the simulated loudspeaker recorded."""

from __future__ import annotations

import fractions
import wave
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from numpy.typing import NDArray

# Sample format each encoder used here takes (PyAV wants frames in one of the codec's formats).
# pcm_f32le (float WAV) can hold samples beyond full scale, which is how clipping is tested.
ENCODER_FORMATS = {"pcm_s16le": "s16", "pcm_f32le": "flt", "mp3": "fltp", "flac": "s16", "aac": "fltp"}


def write_tone(
    path: Path,
    *,
    codec: str = "pcm_s16le",
    rate: int = 44_100,
    channels: int = 2,
    seconds: float = 1.0,
    freq: float = 440.0,
    amp: float = 0.5,
) -> Path:
    """A sine tone file; the container follows the file name's extension (.wav, .mp3, .flac, ...)."""
    fmt = ENCODER_FORMATS[codec]
    layout = "mono" if channels == 1 else "stereo"
    n = round(rate * seconds)
    tone = amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, AudioStream)
        step = 1152
        for start in range(0, n, step):
            chunk = tone[start : start + step]
            data: NDArray[np.int16] | NDArray[np.float32]
            if fmt == "s16":
                data = np.repeat(np.rint(chunk * 32767).astype(np.int16), channels)[None, :]
            elif fmt == "flt":
                data = np.repeat(chunk.astype(np.float32), channels)[None, :]
            else:  # planar float
                data = np.tile(chunk.astype(np.float32), (channels, 1))
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)  # each branch is C-contiguous
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = fractions.Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def read_wav(path: Path) -> tuple[NDArray[np.float64], int]:
    """Samples as floats in [-1, 1], shaped (frames, channels), and the rate."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        raw = wav.readframes(wav.getnframes())
        channels = wav.getnchannels()
        rate = wav.getframerate()
    return np.frombuffer(raw, dtype="<i2").reshape(-1, channels) / 32767.0, rate


def read_raw(path: Path, channels: int = 2) -> NDArray[np.float64]:
    return np.frombuffer(path.read_bytes(), dtype="<i2").reshape(-1, channels) / 32767.0


def peak_frequency(signal: NDArray[np.float64], rate: int) -> float:
    """The strongest frequency, to a fraction of a bin (parabolic interpolation on the log spectrum)."""
    windowed = signal * np.hanning(len(signal))
    spectrum = np.abs(np.fft.rfft(windowed)) + 1e-12
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return float((k + offset) * rate / len(signal))


def sine_amplitude(signal: NDArray[np.float64]) -> float:
    """Amplitude of a sine from its RMS, over the middle (away from codec fade-in/out at the edges)."""
    n = len(signal)
    middle = signal[n // 5 : n - n // 5]
    return float(np.sqrt(np.mean(middle**2)) * np.sqrt(2))
