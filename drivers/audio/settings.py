"""The `[audio]` table of hub.toml: which ALSA device the loudspeaker amplifier hangs on, and how to feed it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, Strict

from drivers.base import DriverSettings

# TOML has no path type: a path is a string, converted here although the section is strict.
PathStr = Annotated[Path, Strict(False)]


class AudioSettings(DriverSettings):
    device: str = Field(
        default="default",
        min_length=1,
        title="ALSA device",
        description=(
            "ALSA PCM the amplifier is connected to, as `aplay -L` names it, e.g. 'default', "
            "'plughw:CARD=Headphones,DEV=0' (Pi headphone jack) or 'plughw:CARD=Device,DEV=0' (USB card). "
            "Prefer a 'plughw:' name: it converts rate and channels if the card cannot take ours."
        ),
    )
    sample_rate: int = Field(
        default=48_000,
        ge=8_000,
        le=192_000,
        title="Sample rate (Hz)",
        description="Rate every source is resampled to before it reaches the device.",
    )
    channels: Literal[1, 2] = Field(
        default=2,
        title="Channels",
        description="1 for a mono amplifier input, 2 for stereo. Mono sources go to every channel at full level.",
    )
    buffer_ms: int = Field(
        default=100,
        ge=20,
        le=2_000,
        title="Device buffer (ms)",
        description=(
            "ALSA buffer time given to aplay. Larger survives a busy CPU without clicks; the reported start and "
            "end of a playback are accurate to about this much. Stopping is immediate whatever the size."
        ),
    )
    aplay_path: str = Field(
        default="aplay",
        min_length=1,
        title="aplay program",
        description="The ALSA player (Debian package alsa-utils) that writes PCM to the device.",
    )
    open_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=120.0,
        title="Stream open timeout (s)",
        description="How long to wait for an HTTP/Icecast stream to answer before the playback fails.",
    )
    read_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=120.0,
        title="Stream read timeout (s)",
        description="How long a stream may stay silent (no data) before the playback ends with an error.",
    )
    sim_dir: PathStr | None = Field(
        default=None,
        title="Simulated sink directory",
        description=(
            "Off the box only: where the simulated loudspeaker writes one WAV per playback and playback.ndjson. "
            "Empty: '<data_dir>/audio-sim'."
        ),
    )
    sim_keep: int = Field(
        default=50,
        ge=1,
        le=100_000,
        title="Simulated recordings kept",
        description="Older simulated WAVs are deleted beyond this many, so a long `hub run` does not fill the disk.",
    )
