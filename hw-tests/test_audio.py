"""The loudspeakers on the real box: the configured ALSA device plays a tone in real time and stops at once.

A person next to the box hears two short 440 Hz tones at low volume (30): one of 1 s, then one cut off after
about half a second. If nothing is heard although the tests pass, check the amplifier's power and the ALSA
mixer level (`alsamixer`). The [audio] table of the hub's config ($VILLAGE_HUB_CONFIG or
/etc/village-hub/hub.toml) is used; without one, the defaults ('default' device).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import struct
import time
import tomllib
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from drivers.audio import AudioSettings, alsa_device_present, build

if TYPE_CHECKING:  # conftest is pytest's to import; only its type is needed here
    from conftest import RealBoard

pytestmark = pytest.mark.hw

CONFIG = Path(os.environ.get("VILLAGE_HUB_CONFIG", "/etc/village-hub/hub.toml"))
VOLUME = 30  # audible next to the box, not across the village


def audio_settings() -> AudioSettings:
    if CONFIG.is_file():
        table = tomllib.loads(CONFIG.read_text(encoding="utf-8")).get("audio", {})
        return AudioSettings.model_validate(table)
    return AudioSettings()


def write_tone(path: Path, seconds: float, rate: int = 48_000) -> Path:
    frames = b"".join(
        struct.pack("<hh", sample, sample)
        for sample in (round(16384 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(round(rate * seconds)))
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path


def test_device_is_present(board: RealBoard) -> None:
    settings = audio_settings()
    assert shutil.which(settings.aplay_path), f"{settings.aplay_path!r} not found: apt-get install alsa-utils"
    cards = Path("/proc/asound/cards")
    listing = cards.read_text() if cards.exists() else "(no /proc/asound/cards)"
    assert alsa_device_present(settings.device), (
        f"ALSA device {settings.device!r} not found; the kernel has:\n{listing}"
    )


async def test_tone_plays_in_real_time(board: RealBoard, tmp_path: Path) -> None:
    settings = audio_settings()
    player = build(settings, simulated=False)
    tone = write_tone(tmp_path / "tone 440 Hz – thử loa.wav", 1.0)
    t0 = time.monotonic()
    report = await player.play(tone, VOLUME)
    elapsed = time.monotonic() - t0
    assert not report.stopped_early
    assert report.error is None
    assert report.frames_played == settings.sample_rate
    # A real device is paced by its clock: unpaced (a null sink) would return in milliseconds.
    assert elapsed >= 0.95, f"played 1 s in {elapsed:.3f} s: is {settings.device!r} a real device?"
    assert report.started is not None
    assert report.ended.mono - report.started.mono == pytest.approx(1.0, abs=settings.buffer_ms / 1000 + 0.15)
    health = player.health()
    assert health.ok, health.as_dict()


async def test_stop_is_immediate(board: RealBoard, tmp_path: Path) -> None:
    player = build(audio_settings(), simulated=False)
    item = asyncio.create_task(player.play(write_tone(tmp_path / "long.wav", 3.0), VOLUME))
    await asyncio.sleep(0.5)
    t_stop = time.monotonic()
    report = await player.stop()
    assert time.monotonic() - t_stop < 0.1
    assert report is not None
    assert report.stopped_early
    assert await item == report
    assert 0.3 < report.duration_s < 0.7
