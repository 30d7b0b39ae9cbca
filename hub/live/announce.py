"""A live announcement's audio path: the operator's WebRTC audio track, as a stream the broadcast engine plays.

The broadcast engine already relays live streams (start_live {url}): it opens them with the audio player,
at live priority, switches the zone relays and logs the announcement. So the operator's voice is offered to
it as one more stream: endless 16-bit PCM served over HTTP on loopback, under a random path, for as long as
the session lasts. Nothing in the broadcast engine or the audio driver had to change, and the voice takes
exactly the path every other broadcast takes (zones, amplifier, volume, log).

The container is Sun AU, not WAV: FFmpeg's WAV reader looks for S/PDIF-wrapped AC-3/DTS in 16-bit PCM by
reading 64 KB before its first sample (0.7 s of this stream, measured), and that wait would stay in the
voice's delay for the whole announcement; an AU stream opens after FFmpeg's 16 KB probe. Stereo for the
same reason: at twice the bytes per second, the probe and each demuxed packet last half as long.

Silence is written while no audio arrives (the operator's browser may stop sending during pauses, and the
peer connects after the engine has already opened the stream), so the player never sees a stalled read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct

import av
import numpy as np
from aiohttp import web
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

RATE = 48_000  # WebRTC's Opus rate: no resampling on the way in
CHANNELS = 2  # a voice twice: halves the delay of the reader's byte-counted probe (see above)
BYTES_PER_S = RATE * CHANNELS * 2
PREROLL_S = 0.2  # silence sent at once to a new reader: its device starts with this much cushion against jitter
SILENCE_STEP_S = 0.1  # with no audio for this long, this much silence is written
BUFFER_S = 1.0  # what a slow reader may fall behind before the oldest audio is dropped (live means now)


def au_header(rate: int = RATE, channels: int = CHANNELS) -> bytes:
    """A Sun AU header: 16-bit linear PCM (big-endian), data size 0xFFFFFFFF ("unknown", a stream)."""
    return b".snd" + struct.pack(">IIIII", 24, 0xFFFFFFFF, 3, rate, channels)


class _Listener:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.buffered = 0
        self.dropped_bytes = 0

    def put(self, pcm: bytes) -> None:
        self.queue.put_nowait(pcm)
        self.buffered += len(pcm)
        while self.buffered > BUFFER_S * BYTES_PER_S and self.queue.qsize() > 1:
            old = self.queue.get_nowait()
            self.buffered -= len(old)
            self.dropped_bytes += len(old)

    async def get(self, timeout: float) -> bytes | None:
        try:
            pcm = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        self.buffered -= len(pcm)
        return pcm


class LiveAudioStream:
    """Serves one track at http://127.0.0.1:<port>/live/<random>.au until close()."""

    def __init__(self, track: MediaStreamTrack, name: str = "live") -> None:
        self.track = track
        self.name = name
        self.url = ""
        self.seconds_received = 0.0
        self.seconds_skipped = 0.0  # late audio left out after a gap that silence filled
        self.listeners: set[_Listener] = set()
        self.ended = asyncio.Event()  # the operator's track ended (the peer left)
        self._path = f"/live/{secrets.token_urlsafe(16)}.au"
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get(self._path, self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = _bound_port(site)
        self.url = f"http://127.0.0.1:{port}{self._path}"
        self._pump = asyncio.create_task(self._receive(), name=f"live:{self.name}:audio")
        return self.url

    async def close(self) -> None:
        self._closing = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self) -> None:
        # To mono here and copied to both channels below: FFmpeg's own mono->stereo upmix lowers the level 3 dB.
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        try:
            while True:
                frame = await self.track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in resampler.resample(frame):
                    mono = np.frombuffer(memoryview(out.planes[0]), dtype="<i2", count=out.samples)
                    pcm = np.repeat(mono, CHANNELS).astype(">i2").tobytes()  # AU is big-endian
                    self.seconds_received += out.samples / RATE
                    for listener in list(self.listeners):
                        listener.put(pcm)
        except MediaStreamError:
            log.info("live %s: the operator's audio ended", self.name)
        finally:
            self.ended.set()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/basic", "Cache-Control": "no-store"})
        await response.prepare(request)
        listener = _Listener()
        self.listeners.add(listener)
        silence = bytes(round(SILENCE_STEP_S * RATE) * CHANNELS * 2)
        try:
            await response.write(au_header() + bytes(round(PREROLL_S * RATE) * CHANNELS * 2))
            owed = 0  # bytes of silence written in a gap: as much late audio is skipped, so the delay stays put
            while not self._closing and not self.ended.is_set():
                pcm = await listener.get(SILENCE_STEP_S)
                if pcm is None:
                    owed += len(silence)
                    await response.write(silence)
                    continue
                skip = min(owed, len(pcm))
                owed -= skip
                self.seconds_skipped += skip / BYTES_PER_S
                if skip < len(pcm):
                    await response.write(pcm[skip:])
        except ConnectionResetError:  # the player closed it (stop_live, or it re-opens the stream)
            return response
        finally:
            self.listeners.discard(listener)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


def _bound_port(site: web.TCPSite) -> int:
    """The port the OS chose for port 0 (aiohttp keeps its server private)."""
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    if not sockets:
        raise RuntimeError("the live audio stream's server did not bind")
    return int(sockets[0].getsockname()[1])
