"""What an item becomes before it is played: a source the audio driver can open, and how long it lasts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Prepared:
    source: str  # a local file path, or an http(s):// URL for a stream relay
    duration_s: float | None  # None: unknown (a live stream); the programme's duration then bounds it


class RenderError(Exception):
    """An item cannot be made playable (unknown media id, TTS failed, ...); the message names the item."""


class Renderer(Protocol):
    """Turns programme items into playable sources (uploaded audio, Vietnamese text-to-speech, chimes)."""

    async def audio(self, media_id: str) -> Prepared: ...

    async def text(self, text: str, voice: str) -> Prepared: ...

    async def chime(self, kind: str) -> Prepared: ...
