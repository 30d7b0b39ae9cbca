"""The operator's voice as a loopback stream (hub/live/announce.py): a Sun AU header, the track's audio as
big-endian PCM, silence in the gaps — and audio that arrives late after a gap is skipped by as much silence as
stood in for it, so the voice's delay does not grow with every network hiccup."""

from __future__ import annotations

import asyncio
import fractions
import struct
import time

import aiohttp
import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from hub.live.announce import BYTES_PER_S, CHANNELS, PREROLL_S, RATE, LiveAudioStream

FRAME = 960  # 20 ms at 48 kHz


class StallingTone(MediaStreamTrack):
    """A 440 Hz tone in real time, except that after `stall_at` s nothing comes for `stall_s`, then what was
    held back arrives all at once (a jitter burst)."""

    kind = "audio"

    def __init__(self, stall_at: float, stall_s: float) -> None:
        super().__init__()
        self.stall_at, self.stall_s = stall_at, stall_s
        self.index = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        media_t = self.index * FRAME / RATE
        due = self.start + media_t + (self.stall_s if media_t >= self.stall_at else 0.0)
        if media_t >= self.stall_at + self.stall_s:
            due = self.start + media_t  # back to real time
        elif media_t >= self.stall_at:
            due = self.start + self.stall_at + self.stall_s  # the held-back frames, all at once
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = (self.index * FRAME + np.arange(FRAME)) / RATE
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self.index * FRAME, fractions.Fraction(1, RATE)
        self.index += 1
        return frame


async def test_the_stream_is_au_pcm_and_a_stall_does_not_add_delay() -> None:
    stream = LiveAudioStream(StallingTone(stall_at=0.6, stall_s=0.5), "t")
    url = await stream.start()
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith(".au")
    received = bytearray()
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.headers["Content-Type"] == "audio/basic"
            began = time.monotonic()
            while time.monotonic() - began < 2.0:
                received += await response.content.read(4096)
            elapsed = time.monotonic() - began
    finally:
        await stream.close()
    magic, offset, size, encoding, rate, channels = struct.unpack(">4sIIIII", bytes(received[:24]))
    assert (magic, offset, size, encoding, rate, channels) == (b".snd", 24, 0xFFFFFFFF, 3, RATE, CHANNELS)
    samples = np.frombuffer(bytes(received[24 : 24 + (len(received) - 24) // 4 * 4]), dtype=">i2")
    assert np.abs(samples).max() > 0.25 * 32767  # the tone is in it
    # never more than real time plus the pre-roll and one silence step: the burst after the stall was skipped
    assert len(received) - 24 <= (elapsed + PREROLL_S + 0.1) * BYTES_PER_S, (len(received), elapsed)
    assert 0.3 <= stream.seconds_skipped <= 1.0  # about the stall: as much late audio as silence filled in
