"""build(settings, simulated) -> the loudspeaker driver hub/ uses."""

from __future__ import annotations

from pathlib import Path

from drivers.audio.alsa import AplayDevice
from drivers.audio.interface import PcmDevice, PcmFormat
from drivers.audio.player import AudioPlayer
from drivers.audio.settings import AudioSettings
from drivers.audio.sim_sink import SimulatedDevice

SIM_SUBDIR = "audio-sim"


def build(settings: AudioSettings, simulated: bool, *, data_dir: Path | None = None) -> AudioPlayer:
    """The real device on the box; off it, the paced simulated loudspeaker recording to
    `settings.sim_dir` or else `<data_dir>/audio-sim`."""
    device: PcmDevice
    if simulated:
        directory = settings.sim_dir or (data_dir / SIM_SUBDIR if data_dir is not None else None)
        if directory is None:
            raise ValueError("simulated audio needs [audio] sim_dir or the hub's data_dir")
        device = SimulatedDevice(directory, buffer_ms=settings.buffer_ms, keep=settings.sim_keep)
    else:
        device = AplayDevice(settings.device, buffer_ms=settings.buffer_ms, aplay=settings.aplay_path)
    return AudioPlayer(
        device,
        PcmFormat(settings.sample_rate, settings.channels),
        open_timeout_s=settings.open_timeout_s,
        read_timeout_s=settings.read_timeout_s,
    )
