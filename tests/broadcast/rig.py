"""A broadcast service on simulated hardware for tests: the real relay bank on gpiozero's mock pins with the real
relay service, the real audio player on the simulated loudspeaker, a real store and bus — and, standing in for
the media helper's renderer, one that writes short tones (so the tests do not depend on espeak-ng timing).

The clock is the real one shifted to a chosen wall time, which a test can make jump like NTP does: waits are
seconds, not hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import threading
import time
import wave
import zoneinfo
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from drivers import audio
from drivers.audio import AudioPlayer, AudioSettings
from drivers.relays import Relays, RelaysSettings, build
from hub.broadcast.prepared import Prepared, RenderError
from hub.broadcast.service import BroadcastService
from hub.broadcast.settings import BroadcastSettings
from hub.bus import EventBus
from hub.relays.service import RelayService
from hub.store import Store

VN = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
RATE = 16_000
AMP_PIN, ZONE1_PIN, ZONE2_PIN = 17, 27, 22
RELAYS = {
    "stagger_ms": 5,
    "gpio": [
        {"name": "ampli", "pin": AMP_PIN, "active_high": False},
        {"name": "loa khu 1", "pin": ZONE1_PIN, "active_high": False},
        {"name": "loa khu 2", "pin": ZONE2_PIN, "active_high": False},
    ],
}
BASE_SETTINGS: dict[str, Any] = {
    "amplifier_relay": "ampli",
    "zones": {"khu 1": "loa khu 1", "khu 2": "loa khu 2"},
    "warmup_s": 0.3,
    "amplifier_idle_off_s": 0.5,
    "prepare_ahead_s": 0.5,
    "jump_check_s": 0.1,
    "chime_before_announcements": False,
    "stream_retry_s": 0.2,
    "stream_fallback_after_s": 0.6,
}


def write_tone(path: Path, seconds: float, freq: float) -> Path:
    t = np.arange(round(seconds * RATE)) / RATE
    pcm = np.round(0.4 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def relay_changes(relays: Relays, pin: int, to_on: bool) -> list[float]:
    """Monotonic times the relay on `pin` switched on (or off), from the mock pin's history (active-low)."""
    assert relays.simulation is not None
    history = relays.simulation.pins.history(pin)
    return [t for (_, before), (t, level) in itertools.pairwise(history) if before != level and level is not to_on]


class ToneRenderer:
    """A Renderer (hub/broadcast/prepared.py) writing tones: text lasts `text_s` (or what '[2.5s]' in it says),
    a chime `chime_s`, audio items are the media ids given to it."""

    def __init__(self, directory: Path, *, text_s: float = 0.6, chime_s: float = 0.3) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.text_s = text_s
        self.chime_s = chime_s
        self.media: dict[str, float] = {}
        self.rendered: list[str] = []
        self.texts: list[str] = []
        self.delay_s = 0.0

    async def audio(self, media_id: str) -> Prepared:
        if media_id not in self.media:
            raise RenderError(f"audio item {media_id!r}: no media with that id")
        return await self._tone(f"audio-{media_id}", self.media[media_id], 330.0)

    async def text(self, text: str, voice: str) -> Prepared:
        self.texts.append(text)
        seconds = self.text_s
        if text.startswith("[") and "s]" in text:
            seconds = float(text[1 : text.index("s]")])
        return await self._tone(f"text-{abs(hash((text, voice)))}", seconds, 440.0)

    async def chime(self, kind: str) -> Prepared:
        return await self._tone(f"chime-{kind}", self.chime_s, 880.0)

    async def _tone(self, name: str, seconds: float, freq: float) -> Prepared:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        path = self.directory / f"{name}-{seconds:g}.wav"
        if not path.exists():
            write_tone(path, seconds, freq)
        self.rendered.append(name)
        return Prepared(str(path), seconds)


class ShiftedClock:
    """The real monotonic clock and sleeps, with a wall clock set to `start` that a test can make jump."""

    def __init__(self, start: dt.datetime) -> None:
        assert start.tzinfo is not None
        self.tz = start.tzinfo
        self._offset = start.timestamp() - time.monotonic()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(time.monotonic() + self._offset, self.tz)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def jump(self, delta: dt.timedelta) -> None:
        self._offset += delta.total_seconds()


class Rig:
    def __init__(self, directory: Path, start: dt.datetime, *, uploads: bool = False, **settings: Any) -> None:
        self.directory = directory
        self.uploads = uploads  # serve the media_* commands on a real MediaLibrary in <directory>/media
        self.library: Any = None
        self.settings = BroadcastSettings.model_validate({**BASE_SETTINGS, **settings})
        self.clock = ShiftedClock(start)
        self.bus = EventBus()
        self.renderer = ToneRenderer(directory / "render")
        self.relays: Relays = build(RelaysSettings.model_validate(RELAYS), simulated=True)
        self.store: Store | None = None
        self.player: AudioPlayer = audio.build(AudioSettings(buffer_ms=50), simulated=True, data_dir=directory)
        self.service: BroadcastService | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def svc(self) -> BroadcastService:
        assert self.service is not None
        return self.service

    @property
    def sim(self) -> Any:
        return self.player.device

    def pin_history(self, pin: int) -> list[tuple[float, bool]]:
        assert self.relays.simulation is not None
        return self.relays.simulation.pins.history(pin)

    def pin_on(self, pin: int) -> bool:
        assert self.relays.simulation is not None
        return not self.relays.simulation.pins.level(pin)  # active-low relays

    async def __aenter__(self) -> Rig:
        self.store = Store.open(self.directory / "data")
        await self.relays.bank.safe_state("boot")
        relay_service = RelayService(self.relays, self.store, self.bus)
        self._tasks.append(asyncio.create_task(relay_service.run()))
        await self.boot()
        return self

    async def boot(self) -> None:
        """Start (or start again, as after a restart) the broadcast service on the same store."""
        assert self.store is not None
        if self.uploads and self.library is None:
            from hub.broadcast.media import MediaLibrary

            self.library = MediaLibrary(self.directory / "media", self.store)
        self.service = BroadcastService(
            self.settings,
            self.store,
            self.bus,
            self.player,
            self.renderer,
            tz=VN,
            clock=self.clock,
            relay_names=self.relays.bank.names,
            media=(lambda: self.library) if self.uploads else None,
        )
        await self.service.start()
        self._tasks.append(asyncio.create_task(self.service.run()))
        await asyncio.sleep(0.05)

    async def halt(self) -> None:
        """Stop the broadcast service as the supervisor does (cancel its run, then stop())."""
        task = self._tasks.pop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.svc.stop()
        self.service = None

    async def crash(self) -> None:
        """The service's task dies without its stop() (what kill -9 leaves, as far as the store can tell): the
        broadcast task is cancelled only after the log rows it wrote are committed."""
        task = self._tasks.pop()
        # Kill the loop's view of it without running the engine's own cancel handling: detach the log first.
        self.svc.engine.log = _Deaf()  # type: ignore[assignment]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.player.stop()

    async def __aexit__(self, *exc: object) -> None:
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.service is not None:
            await self.service.stop()
        await self.player.close()
        await self.relays.close()
        if self.store is not None:
            self.store.close()

    # ---- reading what happened -------------------------------------------------------------------------------

    async def entries(self) -> list[dict[str, Any]]:
        """The broadcast log, oldest first."""
        await self.svc.log.flush()
        return list(reversed(await self.svc.log.recent(500)))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    async def wait_logged(
        self, outcome: str | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        async def found() -> list[dict[str, Any]] | None:
            entries = [e for e in await self.entries() if e["outcome"] not in ("queued", "playing")]
            if outcome is not None:
                entries = [e for e in entries if e["outcome"] == outcome]
            return entries if len(entries) >= count else None

        result: list[dict[str, Any]] = await self.wait_for(found, timeout, f"{count} log entries {outcome or ''}")
        return result

    def playbacks(self) -> list[dict[str, Any]]:
        """What the simulated loudspeaker played (one line per item, with real start and end times)."""
        return [dict(e) for e in self.sim.log_entries()]

    def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        assert self.store is not None
        return [(r.kind, json.loads(r.payload_json)) for r in self.store.pending(10_000)]


class _Deaf:
    """Swallows log writes (what a dead process does not write)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: {"outcome": "x", "reason": None}


class FileServer:
    """Serves a directory over HTTP on loopback (a stand-in for an upstream Icecast stream)."""

    def __init__(self, directory: Path) -> None:
        handler = partial(_QuietHandler, directory=str(directory))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass
