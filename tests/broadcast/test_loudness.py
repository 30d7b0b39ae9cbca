import os
from pathlib import Path

import pytest

from drivers.audio import loudness, tts
from tests.broadcast.audio_fixtures import at_loudness, ebur128, pink_noise, tone, write_wav

TARGET = loudness.TARGET_LUFS


@pytest.fixture(scope="module")
def quiet_and_loud(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("levels")
    files = {lufs: at_loudness(folder / f"at{lufs}.wav", pink_noise(6.0, seed=abs(lufs)), lufs) for lufs in (-30, -10)}
    for lufs, path in files.items():
        assert ebur128(path)[0] == pytest.approx(lufs, abs=0.3)  # the fixtures are what they claim
    return files


@pytest.mark.parametrize("level", [-30, -10])
@pytest.mark.parametrize("suffix", [".wav", ".flac"])
async def test_quiet_and_loud_files_end_at_the_target(quiet_and_loud, tmp_path: Path, level: int, suffix: str) -> None:
    result = await loudness.normalise(quiet_and_loud[level], tmp_path / f"out{suffix}")

    integrated, peak = ebur128(result.path)  # measured independently of the code under test
    assert integrated == pytest.approx(TARGET, abs=1.0)
    assert peak <= loudness.TRUE_PEAK_DBTP + 0.5
    assert result.before.integrated_lufs == pytest.approx(level, abs=0.3)
    assert result.after.integrated_lufs == pytest.approx(integrated, abs=0.2)
    assert result.gain_db == pytest.approx(TARGET - level, abs=1.5)


async def test_measure_reports_loudness_and_true_peak(quiet_and_loud) -> None:
    measured = await loudness.measure(quiet_and_loud[-30])
    integrated, peak = ebur128(quiet_and_loud[-30])
    assert measured.integrated_lufs == pytest.approx(integrated, abs=0.2)
    assert measured.true_peak_dbtp == pytest.approx(peak, abs=0.3)
    assert not measured.silent


async def test_peaky_speech_reaches_the_target_under_the_ceiling(tmp_path: Path) -> None:
    # espeak-ng's speech peaks near full scale: the gain alone would clip, so the limiter has to work.
    speech = await tts.synthesize("Thông báo khẩn: nước sông đang lên nhanh, bà con chú ý.", tmp_path / "s.wav")
    result = await loudness.normalise(speech, tmp_path / "n.wav")
    integrated, peak = ebur128(result.path)
    assert result.limited
    assert integrated == pytest.approx(TARGET, abs=1.0)
    assert peak <= loudness.TRUE_PEAK_DBTP + 0.5


async def test_another_target(quiet_and_loud, tmp_path: Path) -> None:
    result = await loudness.normalise(quiet_and_loud[-10], tmp_path / "o.wav", target_lufs=-23.0)
    assert ebur128(result.path)[0] == pytest.approx(-23.0, abs=1.0)


async def test_silence_cannot_be_normalised(tmp_path: Path) -> None:
    silent = write_wav(tmp_path / "silent.wav", tone(440, 2.0, amplitude=0.0))
    assert (await loudness.measure(silent)).silent
    with pytest.raises(loudness.LoudnessError, match=r"silent\.wav: it is silent"):
        await loudness.normalise(silent, tmp_path / "o.wav")
    assert os.listdir(tmp_path) == ["silent.wav"]


async def test_not_audio_is_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("Thông báo họp thôn\n")
    with pytest.raises(loudness.LoudnessError, match=r"notes\.wav: ffmpeg failed \(exit 1\)"):
        await loudness.measure(text)


async def test_unknown_output_format_is_refused(quiet_and_loud, tmp_path: Path) -> None:
    with pytest.raises(loudness.LoudnessError, match=r"cannot write \.aiff"):
        await loudness.normalise(quiet_and_loud[-10], tmp_path / "o.aiff")


async def test_missing_ffmpeg_is_a_clear_error(quiet_and_loud, tmp_path: Path) -> None:
    with pytest.raises(loudness.LoudnessError, match="is not installed"):
        await loudness.measure(quiet_and_loud[-10], executable=str(tmp_path / "ffmpeg"))
