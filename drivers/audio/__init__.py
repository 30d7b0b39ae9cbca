"""Loudspeakers: play a file or an Icecast/HTTP stream to the ALSA device, with volume, prompt stop and a
report of when the sound really began and ended. Off the box the same player feeds a paced simulated
loudspeaker that records WAVs."""

from drivers.audio.alsa import AplayDevice, alsa_device_present
from drivers.audio.factory import build
from drivers.audio.interface import (
    AudioBusyError,
    AudioError,
    AudioOut,
    DeviceError,
    Instant,
    MediaError,
    PcmFormat,
    PlaybackReport,
    Source,
)
from drivers.audio.player import AudioPlayer, volume_gain
from drivers.audio.settings import AudioSettings
from drivers.audio.sim_sink import SimulatedDevice

__all__ = [
    "AplayDevice",
    "AudioBusyError",
    "AudioError",
    "AudioOut",
    "AudioPlayer",
    "AudioSettings",
    "DeviceError",
    "Instant",
    "MediaError",
    "PcmFormat",
    "PlaybackReport",
    "SimulatedDevice",
    "Source",
    "alsa_device_present",
    "build",
    "volume_gain",
]
