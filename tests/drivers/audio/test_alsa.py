"""The real backend (aplay child process) without a sound card: against a stand-in aplay that behaves like one
(always), and against the real aplay writing into ALSA's `file` PCM (when alsa-utils is installed)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest

from drivers.audio import AplayDevice, AudioPlayer, DeviceError, PcmFormat, alsa_device_present
from drivers.audio.alsa import card_of
from tests.drivers.audio import fake_aplay
from tests.drivers.audio.conftest import RATE
from tests.drivers.audio.media import peak_frequency, read_raw, read_wav, sine_amplitude

# Real-time behaviour (pacing, stop within 100 ms): run apart from other load; see scripts/test.
pytestmark = pytest.mark.realtime

FMT = PcmFormat(RATE, 2)


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    script = tmp_path / "aplay"
    script.write_text(f"#!{sys.executable}\n" + Path(fake_aplay.__file__).read_text(encoding="utf-8"))
    script.chmod(0o755)
    out = tmp_path / "received.raw"
    monkeypatch.setenv("FAKE_APLAY_OUT", str(out))
    return str(script), out


def test_card_names_and_presence(tmp_path: Path) -> None:
    assert card_of("plughw:CARD=Headphones,DEV=0") == "Headphones"
    assert card_of("sysdefault:CARD=Device") == "Device"
    assert card_of("hw:1,0") == "1"
    assert card_of("hw:Headphones") == "Headphones"
    assert card_of("default") is None

    (tmp_path / "cards").write_text(
        " 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n"
        "                      bcm2835 Headphones\n"
        " 1 [Device         ]: USB-Audio - USB Audio Device\n"
        "                      C-Media Electronics Inc. USB Audio Device at usb-0000:01:00.0-1.3, full speed\n"
    )
    for device, present in [
        ("plughw:CARD=Headphones,DEV=0", True),
        ("hw:1,0", True),
        ("plughw:CARD=Device,DEV=0", True),
        ("hw:2,0", False),
        ("plughw:CARD=vc4hdmi0,DEV=0", False),
        ("default", True),
        ("null", True),
    ]:
        assert alsa_device_present(device, tmp_path) is present, device
    (tmp_path / "cards").write_text("--- no soundcards ---\n")
    assert not alsa_device_present("default", tmp_path)
    assert alsa_device_present("null", tmp_path)


async def test_pcm_reaches_aplay_paced(media: Path, stub: tuple[str, Path]) -> None:
    aplay, received = stub
    player = AudioPlayer(AplayDevice("plughw:CARD=Device,DEV=0", aplay=aplay), FMT)
    t0 = time.monotonic()
    report = await player.play(media / "tone-0.5s.mp3", 60)
    elapsed = time.monotonic() - t0
    assert 0.45 < elapsed < 1.0, elapsed
    assert not report.stopped_early
    assert report.started is not None
    assert report.ended.mono - report.started.mono == pytest.approx(0.5, abs=0.1)
    samples = read_raw(received)
    assert report.frames_played == len(samples)
    assert len(samples) == pytest.approx(0.5 * RATE, abs=0.03 * RATE)
    assert peak_frequency(samples[:, 0], RATE) == pytest.approx(660.0, abs=1.5)
    assert sine_amplitude(samples[:, 0]) == pytest.approx(0.6 * 0.5, rel=0.06)
    assert report.recording is None


async def test_stop_kills_aplay_at_once(media: Path, stub: tuple[str, Path]) -> None:
    aplay, received = stub
    player = AudioPlayer(AplayDevice("plughw:0", aplay=aplay), FMT)
    item = asyncio.create_task(player.play(media / "tone-3s.wav", 100))
    await asyncio.sleep(0.4)
    t_stop = time.monotonic()
    report = await player.stop()
    assert time.monotonic() - t_stop < 0.1
    assert report is not None
    assert report.stopped_early
    assert report.started is not None
    assert 0 <= report.ended.mono - t_stop < 0.05
    # What a killed aplay played: the time it ran at the sample rate, never more than it was given.
    assert report.frames_played == pytest.approx((report.ended.mono - report.started.mono) * RATE, abs=RATE * 0.01)
    assert report.frames_played <= received.stat().st_size // 4
    assert await item == report
    size = received.stat().st_size
    await asyncio.sleep(0.2)
    assert received.stat().st_size == size  # nothing more reaches the device


async def test_device_that_cannot_be_opened(media: Path, stub: tuple[str, Path]) -> None:
    aplay, received = stub
    player = AudioPlayer(AplayDevice("missing", aplay=aplay), FMT)
    with pytest.raises(DeviceError, match="audio open error") as caught:
        await player.play(media / "short.wav", 100)
    assert caught.value.device == "missing"
    assert "'missing'" in str(caught.value)
    assert not received.exists()
    health = player.health()  # an unhealthy report, never an exception
    assert not health.ok
    assert health.last_error is not None
    assert "audio open error" in health.last_error


async def test_aplay_dying_mid_item(media: Path, stub: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    aplay, _ = stub
    monkeypatch.setenv("FAKE_APLAY_DIE_AFTER", "0.3")
    player = AudioPlayer(AplayDevice("plughw:CARD=Device,DEV=0", aplay=aplay), FMT)
    with pytest.raises(DeviceError, match="write error") as caught:
        await player.play(media / "tone-3s.wav", 100)
    report = caught.value.report
    assert report is not None
    assert report.stopped_early
    assert 0.2 * RATE < report.frames_played < 0.6 * RATE
    assert player.health().state in ("error", "absent")


async def test_aplay_not_installed(media: Path, tmp_path: Path) -> None:
    device = AplayDevice("default", aplay=str(tmp_path / "no-such-aplay"))
    assert not device.present()
    with pytest.raises(DeviceError, match="alsa-utils"):
        await AudioPlayer(device, FMT).play(media / "short.wav", 100)


needs_aplay = pytest.mark.skipif(shutil.which("aplay") is None, reason="alsa-utils (aplay) not installed")


@needs_aplay
async def test_real_aplay_into_alsa_file_pcm(media: Path, tmp_path: Path) -> None:
    """ALSA's built-in `file` PCM records what aplay wrote to it (unpaced: its slave is the null device)."""
    captured = tmp_path / "captured.wav"
    player = AudioPlayer(AplayDevice(f"file:FILE={captured},FORMAT=wav"), FMT)
    report = await player.play(media / "tone-0.5s.mp3", 50)
    assert not report.stopped_early
    samples, rate = read_wav(captured)
    assert rate == RATE
    # aplay pads its last period with silence: at least what was sent, at most one buffer more.
    assert report.frames_played <= len(samples) <= report.frames_played + RATE * 0.15
    assert peak_frequency(samples[: report.frames_played, 0], rate) == pytest.approx(660.0, abs=1.5)
    assert sine_amplitude(samples[: report.frames_played, 0]) == pytest.approx(0.25, rel=0.06)


@needs_aplay
async def test_real_aplay_unknown_device(media: Path) -> None:
    player = AudioPlayer(AplayDevice("khong_co_loa"), FMT)
    with pytest.raises(DeviceError, match="audio open error"):
        await player.play(media / "short.wav", 100)
