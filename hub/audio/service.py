"""Owns the audio player (ALSA, or the simulated loudspeaker that writes WAV files) and reports its health."""

from __future__ import annotations

import asyncio
from typing import Any

from drivers.audio import AudioPlayer
from hub.service import Service


class AudioService(Service):
    name = "audio"

    def __init__(self, player: AudioPlayer) -> None:
        super().__init__()
        self.player = player

    async def run(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(5.0)

    async def stop(self) -> None:
        await self.player.stop()

    def health(self) -> dict[str, Any]:
        return self.player.health().as_dict()

    def problems(self) -> list[str]:
        health = self.player.health()
        return [] if health.ok else [f"audio {health.state}" + (f": {health.last_error}" if health.last_error else "")]
