import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from drivers.audio import tts
from tests.broadcast.audio_fixtures import read_wav

SENTENCE = "Thông báo: sáng mai thôn Đông họp tại nhà văn hóa lúc bảy giờ, đề nghị bà con đến đúng giờ."


def syllables(text: str) -> int:
    return len([w for w in text.split() if any(ch.isalpha() for ch in w)])


async def test_vietnamese_sentence_is_speech(tmp_path: Path) -> None:
    out = await tts.synthesize(SENTENCE, tmp_path / "s.wav")

    samples, rate = read_wav(out)
    duration = len(samples) / rate
    n = syllables(SENTENCE)
    # Read aloud, Vietnamese runs at roughly 2-6 syllables a second; far outside that is not speech.
    assert n / 6 < duration < n / 2, (n, duration)
    rms = float(np.sqrt(np.mean(samples**2)))
    assert rms > 0.02  # about -34 dBFS: espeak-ng speaks at a healthy level, silence is ~0
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    speech_band = spectrum[(freqs >= 100) & (freqs <= 4000)].sum() / spectrum.sum()
    assert speech_band > 0.7
    # Voiced and unvoiced stretches alternate: the level varies a lot between 20 ms frames.
    frames = samples[: len(samples) // 441 * 441].reshape(-1, 441)
    frame_rms = np.sqrt(np.mean(frames**2, axis=1))
    assert np.percentile(frame_rms, 90) > 5 * np.percentile(frame_rms, 10) + 1e-6


async def test_decomposed_diacritics_read_like_composed(tmp_path: Path) -> None:
    text = "Cảnh báo lũ quét ở xã Đồng Tâm"
    composed = await tts.synthesize(text, tmp_path / "nfc.wav")
    decomposed = await tts.synthesize(unicodedata.normalize("NFD", text), tmp_path / "nfd.wav")
    assert composed.read_bytes() == decomposed.read_bytes()


@pytest.mark.parametrize("voice", tts.VOICES)
async def test_each_voice_speaks(tmp_path: Path, voice: str) -> None:
    out = await tts.synthesize("Xin chào bà con", tmp_path / "v.wav", voice=voice)
    samples, rate = read_wav(out)
    assert len(samples) / rate > 0.3


async def test_text_beginning_with_a_dash_is_read_not_parsed_as_an_option(tmp_path: Path) -> None:
    out = await tts.synthesize("-v en xin chào", tmp_path / "d.wav")
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    ("text", "voice", "rate", "message"),
    [
        ("", "vi", 150, "text is empty"),
        ("  \n\t .,!  ", "vi", 150, "text is empty"),
        ("chào " * 2000, "vi", 150, "text is too long"),
        ("chào", "fr", 150, "unknown voice 'fr'"),
        ("chào", "vi", 20, "rate 20 words/min is out of range"),
    ],
)
async def test_bad_requests_are_refused_before_running(tmp_path: Path, text, voice, rate, message) -> None:
    with pytest.raises(tts.TtsError, match=message):
        await tts.synthesize(text, tmp_path / "x.wav", voice=voice, rate_wpm=rate)
    assert os.listdir(tmp_path) == []


async def test_missing_engine_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(tts.TtsError, match="is not installed"):
        await tts.synthesize("chào", tmp_path / "x.wav", executable=str(tmp_path / "espeak-ng"))


def fake_engine(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-espeak"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


async def test_engine_failure_carries_its_message(tmp_path: Path) -> None:
    engine = fake_engine(tmp_path, "echo 'voice data missing' >&2; exit 3")
    with pytest.raises(tts.TtsError, match=r"failed \(exit 3\): voice data missing"):
        await tts.synthesize("chào", tmp_path / "x.wav", executable=engine)
    assert not (tmp_path / "x.wav").exists()


async def test_engine_that_hangs_is_stopped(tmp_path: Path) -> None:
    engine = fake_engine(tmp_path, "exec sleep 30")
    with pytest.raises(tts.TtsError, match=r"took longer than 0\.2 s"):
        await tts.synthesize("chào", tmp_path / "x.wav", executable=engine, timeout_s=0.2)


async def test_engine_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    engine = fake_engine(tmp_path, "cat > /dev/null; exit 0")
    with pytest.raises(tts.TtsError, match="produced no sound"):
        await tts.synthesize("chào", tmp_path / "x.wav", executable=engine)
    assert os.listdir(tmp_path) == ["fake-espeak"]
