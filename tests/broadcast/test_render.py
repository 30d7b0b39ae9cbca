import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hub.broadcast.media import MediaLibrary
from hub.broadcast.prepared import Prepared, Renderer, RenderError
from hub.broadcast.render import CHIMES, MediaRenderer
from hub.store.store import Store
from tests.broadcast.audio_fixtures import at_loudness, ebur128, pink_noise, read_wav

TARGET = -16.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def library(tmp_path: Path, store: Store) -> MediaLibrary:
    return MediaLibrary(tmp_path / "media", store, target_lufs=TARGET)


@pytest.fixture
def renderer(tmp_path: Path, library: MediaLibrary) -> MediaRenderer:
    return MediaRenderer(library, tmp_path / "cache")


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


async def test_is_a_renderer(renderer: MediaRenderer) -> None:
    as_protocol: Renderer = renderer
    assert as_protocol is renderer


async def test_audio_is_the_library_file(tmp_path: Path, library: MediaLibrary, renderer: MediaRenderer) -> None:
    upload = at_loudness(tmp_path / "u.wav", pink_noise(2.0), -25)
    info = await library.add("bản tin.wav", upload.read_bytes())

    assert await renderer.audio(info.id) == Prepared(source=str(info.path), duration_s=info.duration_s)

    with pytest.raises(RenderError, match="audio item 'nope': no media with id 'nope'"):
        await renderer.audio("nope")
    info.path.unlink()
    with pytest.raises(RenderError, match=r"audio item '\w+' \(bản tin.wav\): its file is missing"):
        await renderer.audio(info.id)


async def test_text_is_spoken_at_the_target_level_and_cached(renderer: MediaRenderer) -> None:
    text = "Kính thưa bà con, chiều nay sẽ có mưa dông, đề nghị bà con chú ý."
    prepared = await renderer.text(text, "vi")

    path = Path(prepared.source)
    assert os.stat(path).st_size > 0
    assert prepared.duration_s is not None
    samples, rate = read_wav(path)
    assert prepared.duration_s == pytest.approx(len(samples) / rate)
    assert 2.0 < prepared.duration_s < 10.0
    assert ebur128(path)[0] == pytest.approx(TARGET, abs=1.0)

    inode = os.stat(path).st_ino
    again = await renderer.text(text, "vi")
    assert again == prepared
    assert os.stat(path).st_ino == inode  # not made again

    southern = await renderer.text(text, "vi-vn-x-south")
    assert southern.source != prepared.source


async def test_same_text_asked_twice_at_once_is_made_once(renderer: MediaRenderer, tmp_path: Path) -> None:
    first, second = await asyncio.gather(renderer.text("Xin chào", "vi"), renderer.text("Xin chào", "vi"))
    assert first == second
    assert len(os.listdir(tmp_path / "cache" / "speech")) == 1


async def test_speech_cache_is_bounded_oldest_first(tmp_path: Path, library: MediaLibrary) -> None:
    renderer = MediaRenderer(library, tmp_path / "cache", max_cache_bytes=300_000)  # ~3 s of 48 kHz speech
    made = [Path((await renderer.text(f"Thông báo số {n}", "vi")).source) for n in ("một", "hai", "ba", "bốn")]
    await renderer.text("Thông báo số bốn", "vi")  # used again: the newest

    left = set(os.listdir(tmp_path / "cache" / "speech"))
    assert made[-1].name in left
    assert made[0].name not in left
    assert sum((tmp_path / "cache" / "speech" / name).stat().st_size for name in left) <= 300_000


@pytest.mark.parametrize(
    ("text", "voice", "message"),
    [
        ("", "vi", "text item '' \\(voice vi\\): text is empty"),
        ("Xin chào", "klingon", "text item 'Xin chào' \\(voice klingon\\): unknown voice 'klingon'"),
        ("chào " * 2000, "vi", "text item 'chào chào .*…' \\(voice vi\\): text is too long"),
    ],
)
async def test_text_that_cannot_be_spoken(renderer: MediaRenderer, text: str, voice: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        await renderer.text(text, voice)


async def test_a_failing_engine_is_a_render_error(tmp_path: Path, library: MediaLibrary) -> None:
    async def broken(text: str, out: Path, voice: str, rate_wpm: int) -> Path:
        from drivers.audio.tts import synthesize

        return await synthesize(text, out, voice, rate_wpm, executable=str(tmp_path / "no-such-engine"))

    renderer = MediaRenderer(library, tmp_path / "cache", synthesize=broken)
    with pytest.raises(RenderError, match=r"text item 'Xin chào' \(voice vi\): .* is not installed"):
        await renderer.text("Xin chào", "vi")
    assert os.listdir(tmp_path / "cache" / "speech") == []


@pytest.mark.parametrize("kind", sorted(CHIMES))
async def test_chimes_are_made_once_at_the_target_level(renderer: MediaRenderer, kind: str) -> None:
    prepared = await renderer.chime(kind)
    path = Path(prepared.source)
    assert 1.5 < (prepared.duration_s or 0) < 5.0
    assert ebur128(path)[0] == pytest.approx(TARGET, abs=1.0)
    inode = os.stat(path).st_ino
    assert await renderer.chime(kind) == prepared
    assert os.stat(path).st_ino == inode


async def test_chimes_sound_as_named(renderer: MediaRenderer) -> None:
    test_tone, rate = read_wav(Path((await renderer.chime("test")).source))
    assert dominant_frequency(test_tone, rate) == pytest.approx(1000, abs=5)

    ding_dong, rate = read_wav(Path((await renderer.chime("start")).source))
    ding = dominant_frequency(ding_dong[: int(0.5 * rate)], rate)
    dong = dominant_frequency(ding_dong[int(0.6 * rate) : int(1.2 * rate)], rate)
    assert ding == pytest.approx(659, abs=10)
    assert dong == pytest.approx(523, abs=10)

    siren, rate = read_wav(Path((await renderer.chime("alert")).source))
    quarter = rate // 4
    pitches = [dominant_frequency(siren[i : i + quarter // 4], rate) for i in range(0, len(siren) - quarter, quarter)]
    assert max(pitches) - min(pitches) > 300  # it sweeps


async def test_unknown_chime(renderer: MediaRenderer) -> None:
    with pytest.raises(RenderError, match="chime item 'gong': unknown chime; expected one of start, end, alert, test"):
        await renderer.chime("gong")
