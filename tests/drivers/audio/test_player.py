"""The loudspeaker driver on the simulated (paced, recording) device: what was heard, how loud, and when."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from drivers.audio import AudioBusyError, MediaError
from drivers.audio.player import to_pcm, volume_gain
from tests.drivers.audio.conftest import RATE, MediaServer, PlayerFactory
from tests.drivers.audio.media import peak_frequency, read_wav, sine_amplitude

# Real-time behaviour (pacing, stop within 100 ms): run apart from other load; see scripts/test.
pytestmark = pytest.mark.realtime


async def test_wav_tone_is_heard_in_real_time_with_true_timestamps(media: Path, make_player: PlayerFactory) -> None:
    player, device = make_player()
    source = media / "tone-1s.wav"
    t0, w0 = time.monotonic(), time.time()
    report = await player.play(source, 100)
    elapsed = time.monotonic() - t0

    # Paced like a sound card: a 1 s clip takes 1 s, not the few ms decoding takes.
    assert 0.98 <= elapsed <= 1.3, elapsed
    assert not report.stopped_early
    assert report.error is None
    assert report.frames_played == RATE
    assert report.started is not None
    assert 0 <= report.started.mono - t0 < 0.2
    assert 0 <= report.started.wall - w0 < 0.2
    assert report.ended.mono - report.started.mono == pytest.approx(1.0, abs=0.03)
    assert report.ended.wall - report.started.wall == pytest.approx(1.0, abs=0.05)

    assert report.recording is not None
    samples, rate = read_wav(report.recording)
    assert rate == RATE
    assert samples.shape == (RATE, 2)
    assert peak_frequency(samples[:, 0], rate) == pytest.approx(440.0, abs=1.0)
    assert sine_amplitude(samples[:, 0]) == pytest.approx(0.5, rel=0.01)
    assert np.array_equal(samples[:, 0], samples[:, 1])

    [entry] = device.log_entries()
    assert entry["source"] == str(source)
    assert entry["volume"] == 100
    assert entry["recording"] == str(report.recording)
    assert entry["frames_played"] == RATE
    assert entry["stopped_early"] is False
    assert entry["started"] == {"mono": report.started.mono, "wall": report.started.wall}
    assert entry["ended"] == {"mono": report.ended.mono, "wall": report.ended.wall}


async def test_mp3_level_scales_with_volume(media: Path, make_player: PlayerFactory) -> None:
    player, _ = make_player()
    amplitudes = {}
    for volume in (100, 40, 0):
        report = await player.play(media / "tone-0.5s.mp3", volume)
        assert report.recording is not None
        samples, rate = read_wav(report.recording)
        assert len(samples) == pytest.approx(0.5 * RATE, abs=RATE * 0.03)  # the encoder's padding is trimmed
        if volume:
            assert peak_frequency(samples[:, 0], rate) == pytest.approx(660.0, abs=1.5)
        amplitudes[volume] = sine_amplitude(samples[:, 0])
    assert amplitudes[100] == pytest.approx(0.5, rel=0.06)  # MP3 is lossy; the ratio below is exact
    assert amplitudes[40] / amplitudes[100] == pytest.approx(0.4, rel=0.01)
    assert amplitudes[0] == 0.0


async def test_over_full_scale_source_is_clipped_not_wrapped(media: Path, make_player: PlayerFactory) -> None:
    player, _ = make_player()
    loud = await player.play(media / "hot.wav", 100)  # a float WAV peaking at 1.5x full scale
    assert loud.clipped_samples > 0
    assert loud.recording is not None
    samples, _ = read_wav(loud.recording)
    # Clipped samples sit at full scale with their own sign; a wrap-around would put -1 where +1.5 was.
    source = 1.5 * np.sin(2 * np.pi * 440.0 * np.arange(len(samples)) / RATE)
    hot = np.abs(source) > 1.2
    assert np.all(np.sign(samples[hot, 0]) == np.sign(source[hot]))
    assert np.max(np.abs(samples)) == pytest.approx(1.0, abs=1e-4)

    quiet = await player.play(media / "hot.wav", 50)
    assert quiet.clipped_samples == 0
    assert quiet.recording is not None
    assert sine_amplitude(read_wav(quiet.recording)[0][:, 0]) == pytest.approx(0.75, rel=0.01)


def test_gain_and_conversion() -> None:
    block = np.array([[0.5, -0.5], [1.25, -1.75], [0.0, 1.0]], dtype=np.float32)
    pcm, clipped = to_pcm(block, volume_gain(100))
    assert clipped == 2
    assert np.frombuffer(pcm, "<i2").tolist() == [16384, -16384, 32767, -32767, 0, 32767]
    pcm, clipped = to_pcm(block, volume_gain(50))
    assert clipped == 0
    assert np.frombuffer(pcm, "<i2").tolist() == [8192, -8192, 20479, -28671, 0, 16384]
    for bad in (-1, 101, True, 50.0):
        with pytest.raises(ValueError, match="0-100"):
            volume_gain(bad)  # type: ignore[arg-type]


async def test_stop_silences_within_100_ms_and_the_alert_cuts_in(media: Path, make_player: PlayerFactory) -> None:
    player, device = make_player()
    item = asyncio.create_task(player.play(media / "tone-3s.wav", 80))
    await asyncio.sleep(0.5)
    assert player.health().state == "playing"
    t_stop = time.monotonic()
    report = await player.stop()
    stop_took = time.monotonic() - t_stop
    assert report is not None
    assert stop_took < 0.1, stop_took
    assert await item == report
    assert report.stopped_early
    assert 0 <= report.ended.mono - t_stop < 0.1
    assert report.started is not None
    heard_for = report.ended.mono - report.started.mono
    assert heard_for == pytest.approx(t_stop - report.started.mono, abs=0.05)
    assert 0.35 < heard_for < 0.55

    assert report.recording is not None
    samples, rate = read_wav(report.recording)
    # The recording holds what came out of the loudspeaker: up to the stop, not what was buffered after it.
    assert len(samples) == report.frames_played
    assert len(samples) / rate == pytest.approx(heard_for, abs=0.005)
    assert peak_frequency(samples[:, 0], rate) == pytest.approx(1000.0, abs=3.0)

    # The emergency alert plays at once on the freed device.
    t_alert = time.monotonic()
    alert = await player.play(media / "short.wav", 100)
    assert alert.started is not None
    assert alert.started.mono - t_alert < 0.1
    assert not alert.stopped_early
    assert [e["stopped_early"] for e in device.log_entries()] == [True, False]
    assert await player.stop() is None  # nothing playing


async def test_cancelling_play_stops_the_sound(media: Path, make_player: PlayerFactory) -> None:
    player, device = make_player()
    item = asyncio.create_task(player.play(media / "tone-3s.wav", 100))
    await asyncio.sleep(0.3)
    t_cancel = time.monotonic()
    item.cancel()
    with pytest.raises(asyncio.CancelledError):
        await item
    assert time.monotonic() - t_cancel < 0.1
    assert not player.playing
    [entry] = device.log_entries()
    assert entry["stopped_early"] is True
    heard = entry["frames_played"]
    assert isinstance(heard, int)
    assert heard / RATE == pytest.approx(t_cancel - entry["started"]["mono"], abs=0.05)  # type: ignore[index]


async def test_one_item_at_a_time(media: Path, make_player: PlayerFactory) -> None:
    player, _ = make_player()
    item = asyncio.create_task(player.play(media / "tone-1s.wav", 50))
    await asyncio.sleep(0.1)
    with pytest.raises(AudioBusyError, match=r"tone-1s\.wav"):
        await player.play(media / "short.wav", 50)
    await player.stop()
    await item


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("hỏng.mp3", b"\x00garbage" * 500),  # not audio at all
        ("văn bản.wav", "Thông báo: không phải âm thanh\n".encode() * 50),  # a text file named .wav
        ("rỗng.mp3", b""),
    ],
)
async def test_corrupt_file_is_a_typed_error_naming_it_and_nothing_is_played(
    tmp_path: Path, make_player: PlayerFactory, name: str, content: bytes
) -> None:
    player, device = make_player()
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(MediaError) as caught:
        await player.play(bad, 100)
    assert caught.value.source == str(bad)
    assert name in str(caught.value)
    assert caught.value.report is None
    assert not device.directory.exists() or not any(device.directory.iterdir())  # no WAV, no .part, no log line
    health = player.health()
    assert health.ok  # a bad file is not a sick device
    assert health.last_error is not None
    assert name in health.last_error


async def test_missing_file_and_file_without_audio(tmp_path: Path, make_player: PlayerFactory) -> None:
    player, device = make_player()
    with pytest.raises(MediaError, match="no such file") as caught:
        await player.play(tmp_path / "không có.mp3", 100)
    assert caught.value.source.endswith("không có.mp3")
    empty = tmp_path / "trống.wav"
    with wave.open(str(empty), "wb") as wav:  # a valid WAV header and not one frame
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
    with pytest.raises(MediaError, match="no audio samples"):
        await player.play(empty, 100)
    assert not device.directory.exists() or not any(device.directory.iterdir())


async def test_damaged_middle_plays_the_good_part(media: Path, tmp_path: Path, make_player: PlayerFactory) -> None:
    data = (media / "tone-0.5s.mp3").read_bytes()
    damaged = tmp_path / "hỏng giữa.mp3"
    damaged.write_bytes(data[: len(data) // 2] + b"\xff" * 4000)
    player, _ = make_player()
    report = await player.play(damaged, 100)
    assert report.decode_errors >= 1
    assert 0.15 * RATE < report.frames_played < 0.35 * RATE
    assert report.recording is not None
    assert peak_frequency(read_wav(report.recording)[0][:, 0], RATE) == pytest.approx(660.0, abs=3.0)


@pytest.mark.parametrize(
    "name",
    [
        "thông báo lũ.mp3",
        "Bản tin 7:30 sáng.mp3",
        "tin7:30.mp3",  # FFmpeg would read "tin7:" as a URL scheme if the path were passed as is
    ],
)
async def test_vietnamese_file_names(media: Path, tmp_path: Path, make_player: PlayerFactory, name: str) -> None:
    folder = tmp_path / "Loa phường Quảng Lưu"
    folder.mkdir()
    source = folder / name
    shutil.copy(media / "tone-0.5s.mp3", source)
    player, device = make_player()
    report = await player.play(source, 70)
    assert report.source == str(source)
    assert report.recording is not None
    assert peak_frequency(read_wav(report.recording)[0][:, 0], RATE) == pytest.approx(660.0, abs=1.5)
    # The log keeps the name readable (not \u-escaped) for the technician.
    assert name in device.log_path.read_text(encoding="utf-8")
    assert json.loads(device.log_path.read_text(encoding="utf-8"))["source"] == str(source)


async def test_mono_source_reaches_both_channels_at_full_level(media: Path, make_player: PlayerFactory) -> None:
    player, _ = make_player()
    report = await player.play(media / "mono.wav", 100)
    assert report.recording is not None
    samples, _ = read_wav(report.recording)
    assert sine_amplitude(samples[:, 0]) == pytest.approx(0.5, rel=0.01)  # FFmpeg's own upmix would give 0.354
    assert np.array_equal(samples[:, 0], samples[:, 1])


async def test_http_stream(media_server: MediaServer, make_player: PlayerFactory) -> None:
    player, _ = make_player()
    url = media_server.url("file", "tone-0.5s.mp3")
    report = await player.play(url, 100)
    assert report.source == url
    assert not report.stopped_early
    assert report.recording is not None
    samples, rate = read_wav(report.recording)
    assert len(samples) == pytest.approx(0.5 * RATE, abs=0.03 * RATE)
    assert peak_frequency(samples[:, 0], rate) == pytest.approx(660.0, abs=1.5)
    with pytest.raises(MediaError, match="404"):
        await player.play(media_server.url("file", "không có.mp3"), 100)


async def test_stalled_stream_ends_with_an_error_after_playing_what_came(
    media_server: MediaServer, make_player: PlayerFactory
) -> None:
    player, _ = make_player(read_timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(MediaError, match="timed out") as caught:
        await player.play(media_server.url("stall", "tone-2s.mp3"), 100)
    report = caught.value.report
    assert report is not None
    assert report.error is not None
    # 1.5 s was sent: all of it was heard before the error ended the item, 0.5 s after the data stopped.
    assert report.frames_played == pytest.approx(1.5 * RATE, abs=0.1 * RATE)
    assert time.monotonic() - t0 < 2.5


async def test_stop_is_prompt_while_the_network_read_hangs(
    media_server: MediaServer, make_player: PlayerFactory
) -> None:
    player, _ = make_player(read_timeout_s=20.0)
    item = asyncio.create_task(player.play(media_server.url("stall", "tone-2s.mp3"), 100))
    await asyncio.sleep(1.8)  # what was sent has played out; the decoder is blocked in a read
    t_stop = time.monotonic()
    report = await player.stop()
    assert time.monotonic() - t_stop < 0.1
    assert report is not None
    assert report.stopped_early
    assert report.frames_played == pytest.approx(1.5 * RATE, abs=0.1 * RATE)
    assert await item == report


async def test_old_recordings_are_pruned(media: Path, make_player: PlayerFactory) -> None:
    player, device = make_player(keep=2)
    reports = [await player.play(media / "short.wav", 100) for _ in range(3)]
    assert device.recordings() == [r.recording for r in reports[1:]]
    assert len(device.log_entries()) == 3


async def test_health(media: Path, make_player: PlayerFactory) -> None:
    player, _ = make_player()
    idle = player.health()
    assert idle.ok
    assert idle.state == "simulated"
    assert idle.detail["current"] is None
    item = asyncio.create_task(player.play(media / "tone-1s.wav", 35))
    await asyncio.sleep(0.2)
    playing = player.health()
    assert playing.state == "playing"
    assert playing.detail["current"]["source"].endswith("tone-1s.wav")
    assert playing.detail["current"]["volume"] == 35
    await player.stop()
    await item
    after = player.health().as_dict()
    assert after["last_playback"]["stopped_early"] is True
    json.dumps(after)  # the technician page and the cloud get it as JSON
