"""The loudspeaker service: keeps the timetable, takes announcements and alerts, and plays them in order.

Parts (each its own module): `model` (programmes, schedules, levels), `schedule` (occurrences and what to do
with a due one), `arbiter` (the queue, pre-emption, quiet hours, duplicates), `sequencer` (amplifier and
zone relays), `engine` (playing), `log` (the broadcast log), `storage` (the store tables). The renderer
(TTS, media library, chimes) and the audio player are given to it.

Time: schedules are decided on the wall clock in the hub's zone; the scheduler sleeps on the monotonic clock
until the next occurrence (less its preparation time), at most `jump_check_s`, and compares the two clocks
each time it wakes. A jump is logged; occurrences it skipped are missed (or played late), and a jump back
replays nothing: every schedule's newest decided occurrence is kept in the store.

Operations (methods, served on the bus as commands `broadcast.<name>` for the local API and the technician
page, and also accepted as plain `broadcast.<name>` messages, answered on `broadcast.result`):
  upsert_programme {programme} · delete_programme {id} · upsert_schedule {schedule} · delete_schedule {id}
  list · log {limit} · busy · play_now {programme_id | items, zones, level, volume, who} · cap {xml}
  start_live {url, zones, who} · stop_live {who} · stop_all {who, reason} · test_zone {zone, who}
Events: broadcast.queued / started / logged (every outcome) / idle / clock_jumped.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import hashlib
import json
import logging
import uuid
import zoneinfo
from collections.abc import AsyncIterable, Awaitable, Callable, Collection
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from drivers.audio import AudioOut
from hub.broadcast.arbiter import Arbiter, Cut, Job, Verdict
from hub.broadcast.cap import CapError, CapMessage, parse_cap
from hub.broadcast.engine import Engine
from hub.broadcast.log import BroadcastLog
from hub.broadcast.model import (
    ChimeItem,
    Item,
    Level,
    ModelError,
    Programme,
    Schedule,
    StreamItem,
    TextItem,
    check_zones,
    normalise,
    parse_programme,
    parse_schedule,
)
from hub.broadcast.prepared import Prepared, Renderer
from hub.broadcast.schedule import Window, decide, next_occurrence, overlaps, quiet
from hub.broadcast.sequencer import BusRelays, RelayPort, Sequencer
from hub.broadcast.settings import BroadcastSettings
from hub.broadcast.storage import Catalogue, StoredProgramme, StoredSchedule
from hub.bus import CommandError, EventBus, Message, Subscription
from hub.clock import Clock, SystemClock
from hub.service import Service
from hub.store import RecordClass, Store

log = logging.getLogger(__name__)

JUMP_TOLERANCE_S = 2.0  # wall minus monotonic drifts by milliseconds as NTP slews; a step moves it by more
SUMMARY_STATE_KEY = "broadcast.summary_day"
MAX_SUMMARY_BACKFILL_DAYS = 7
MAX_ALERTS_KEPT = 100  # CAP alerts remembered for Update/Cancel bookkeeping and health
COMMANDS = (
    "upsert_programme",
    "delete_programme",
    "upsert_schedule",
    "delete_schedule",
    "list",
    "log",
    "busy",
    "play_now",
    "cap",
    "start_live",
    "stop_live",
    "stop_all",
    "test_zone",
)
MEDIA_COMMANDS = ("media_list", "media_add", "media_remove")
CAP_EMERGENCY_SEVERITY = ("Extreme", "Severe")
CAP_EMERGENCY_URGENCY = ("Immediate",)
_ITEMS = TypeAdapter(list[Item])


class MediaStore(Protocol):
    """The upload library (hub/broadcast/media.py's MediaLibrary), as the media commands use it."""

    def list(self) -> builtins.list[Any]: ...

    async def add_stream(
        self, filename: str, chunks: AsyncIterable[bytes], declared_size: int | None = None
    ) -> Any: ...

    async def remove(self, media_id: str) -> None: ...


class LazyRenderer:
    """A Renderer made at its first use. The media side (PyAV, numpy, the loudness tools: ~30 MB) is then
    loaded with the first broadcast rather than at start, as the audio player does: an idle hub stays small."""

    def __init__(self, make: Callable[[], Renderer]) -> None:
        self._make = make
        self._renderer: Renderer | None = None

    def _get(self) -> Renderer:
        if self._renderer is None:
            self._renderer = self._make()
        return self._renderer

    async def audio(self, media_id: str) -> Prepared:
        return await self._get().audio(media_id)

    async def text(self, text: str, voice: str) -> Prepared:
        return await self._get().text(text, voice)

    async def chime(self, kind: str) -> Prepared:
        return await self._get().chime(kind)


class BroadcastError(ValueError):
    """A request the service refuses; the message says what is wrong, for the person who asked."""


class BroadcastService(Service):
    name = "broadcast"

    def __init__(
        self,
        settings: BroadcastSettings,
        store: Store,
        bus: EventBus,
        player: AudioOut,
        renderer: Renderer,
        *,
        tz: dt.tzinfo | str = "Asia/Ho_Chi_Minh",
        clock: Clock | None = None,
        relay_names: Collection[str] | None = None,
        relays: RelayPort | None = None,
        media: Callable[[], MediaStore] | None = None,
    ) -> None:
        """`media`: gives the upload library (made at its first use) for the media_* commands; None: no uploads."""
        super().__init__()
        self.media = media
        self.settings = settings
        self.store = store
        self.bus = bus
        self.player = player
        self.renderer = renderer
        self.tz = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz
        self.clock: Clock = clock or SystemClock(self.tz)
        self.relay_names = relay_names
        self.relay_port = relays or BusRelays(bus, settings.relay_timeout_s)
        self.zones: dict[str, str] = dict(settings.zones)
        self.log = BroadcastLog(store, self.tz)
        self.catalogue = Catalogue(store)
        self.programmes: dict[str, StoredProgramme] = {}
        self.schedules: dict[str, StoredSchedule] = {}
        self.load_problems: list[str] = []
        self.recovered: list[dict[str, Any]] = []
        self.clock_jumps = 0
        self.last_jump_s: float | None = None
        self.missed_uncounted = 0
        self.alerts: dict[str, dict[str, Any]] = {}  # CAP "sender,identifier" -> what became of it
        self.cap_errors = 0
        self.last_cap_error: str | None = None
        self._watermarks: dict[str, dt.datetime] = {}
        self._offset: float | None = None
        self._wake = asyncio.Event()
        self._live: Job | None = None
        self._passes = 0
        self._summary_done: dt.date | None = None
        self._build()

    def _build(self) -> None:
        s = self.settings
        self.arbiter = Arbiter(
            quiet_hours=s.quiet_windows(),
            dedupe_window_s=s.dedupe_window_s,
            live_cuts_in=s.live_cuts_in,
            background_yields_at_once=s.background_yields_at_once,
        )
        self.sequencer = Sequencer(
            self.relay_port,
            self.clock,
            amplifier=s.amplifier_relay,
            zones=self.zones,
            warmup_s=s.warmup_s,
            known_relays=self.relay_names,
        )
        self.engine = Engine(
            arbiter=self.arbiter,
            sequencer=self.sequencer,
            renderer=self.renderer,
            player=self.player,
            log=self.log,
            clock=self.clock,
            voice=s.voice,
            amplifier_idle_off_s=s.amplifier_idle_off_s,
            stream_retry_s=s.stream_retry_s,
            stream_fallback_after_s=s.stream_fallback_after_s,
            notify=self._notify,
        )

    @property
    def window(self) -> Window:
        s = self.settings
        return Window(
            preroll_s=s.warmup_s + s.prepare_ahead_s,
            grace_s=s.start_grace_s,
            late_window_s=s.late_window_s,
            lookback_s=s.missed_lookback_s,
        )

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._build()  # a restart after a crash starts from the store, not from what the last run held
        self._watermarks = {}
        self._offset = None
        self._passes = 0
        self.recovered = await self.log.recover(self.clock.now())
        for entry in self.recovered:
            log.warning("broadcast: %r was %s: %s", entry["title"], entry["outcome"], entry["reason"])
        programmes, schedules, problems = await self.catalogue.load()
        self.programmes, self.schedules, self.load_problems = programmes, schedules, problems
        await self._provision()
        # The same alert again within the window after a restart is still a duplicate.
        now = self.clock.now()
        mono = self.clock.monotonic()
        keys = await self.log.dedupe_keys_since(now - dt.timedelta(seconds=self.settings.dedupe_window_s))
        for key, at in keys.items():
            self.arbiter.remember(key, mono - max(0.0, now.timestamp() - at))
        for relay in self.sequencer.unknown:
            log.warning("broadcast: relay %r is not configured in [relays]", relay)

    async def _provision(self) -> None:
        """Programmes and schedules of hub.toml into the store (those removed from hub.toml, out of it)."""
        s = self.settings
        for programme in s.programmes:
            await self.catalogue.put_programme(programme, "config")
            self.programmes[programme.id] = StoredProgramme(programme, "config")
        for schedule in s.schedules:
            since = self.schedules[schedule.id].since if schedule.id in self.schedules else self.clock.now()
            self.schedules[schedule.id] = await self.catalogue.put_schedule(schedule, "config", since)
        wanted_s = {x.id for x in s.schedules}
        for sid, stored in list(self.schedules.items()):
            if stored.origin == "config" and sid not in wanted_s:
                await self.catalogue.delete_schedule(sid)
                del self.schedules[sid]
        wanted_p = {x.id for x in s.programmes}
        for pid, stored_p in list(self.programmes.items()):
            if stored_p.origin == "config" and pid not in wanted_p:
                if any(x.schedule.programme_id == pid for x in self.schedules.values()):
                    continue  # an API schedule still plays it: keep it
                await self.catalogue.delete_programme(pid)
                del self.programmes[pid]

    async def run(self) -> None:
        subscriptions = [self.bus.subscribe(f"broadcast.{name}") for name in COMMANDS]
        subscriptions.append(self.bus.subscribe("supervisor.service_running"))
        served = COMMANDS + (MEDIA_COMMANDS if self.media is not None else ())
        withdraw = [self.bus.serve(f"broadcast.{name}", self._command(name)) for name in served]
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.engine.run(), name="broadcast:engine")
                group.create_task(self._scheduler(), name="broadcast:scheduler")
                for sub in subscriptions:
                    group.create_task(self._listen(sub), name=f"broadcast:{sub.prefix}")
        finally:
            for sub in subscriptions:
                sub.close()
            for undo in withdraw:
                undo()

    async def stop(self) -> None:
        await self.engine.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.log.flush(), timeout=1.0)

    # ---- the timetable ---------------------------------------------------------------------------------------

    async def _scheduler(self) -> None:
        while True:
            self.beat()
            now = self.clock.now()
            mono = self.clock.monotonic()
            offset = now.timestamp() - mono
            jump: float | None = None
            if self._offset is not None and abs(offset - self._offset) > JUMP_TOLERANCE_S:
                jump = offset - self._offset
                await self._clock_jumped(jump, now)
            self._offset = offset
            try:
                await self.decide_due(now, mono, jump)
                await self._daily_summary(now)
            except Exception:
                log.exception("broadcast: the scheduler pass failed")
            self._passes += 1
            delay = self.settings.jump_check_s
            upcoming = self._next_due(now)
            if upcoming is not None:
                delay = min(delay, (upcoming - now).total_seconds() - self.window.preroll_s)
            self._wake.clear()
            await self._sleep(max(delay, 0.005))

    async def _sleep(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()

    async def _clock_jumped(self, jump: float, now: dt.datetime) -> None:
        self.clock_jumps += 1
        self.last_jump_s = round(jump, 3)
        log.warning("broadcast: the wall clock jumped by %+.0f s (now %s)", jump, now.isoformat())
        payload = {"jump_s": self.last_jump_s, "now": now.isoformat()}
        self.bus.publish("broadcast.clock_jumped", **payload)
        with contextlib.suppress(Exception):
            await self.store.append(RecordClass.OPERATIONS, "broadcast.clock_jumped", payload)

    def _next_due(self, now: dt.datetime) -> dt.datetime | None:
        best: dt.datetime | None = None
        for sid, stored in self.schedules.items():
            after = max(now, self._watermarks.get(sid, stored.watermark))
            t = next_occurrence(stored.schedule, after, self.tz)
            if t is not None and (best is None or t < best):
                best = t
        return best

    async def decide_due(self, now: dt.datetime, mono: float, jump: float | None = None) -> None:
        """Decide every occurrence that came due (or is within the preparation time)."""
        window = self.window
        for sid, stored in list(self.schedules.items()):
            watermark = self._watermarks.get(sid, stored.watermark)
            stored_p = self.programmes.get(stored.schedule.programme_id)
            programme = stored_p.programme if stored_p else None
            found, skipped = decide(stored.schedule, programme, watermark, now, window, self.tz)
            horizon = now + dt.timedelta(seconds=window.preroll_s)
            if horizon > watermark:
                self._watermarks[sid] = horizon
            if skipped:
                self.missed_uncounted += skipped
                log.warning(
                    "broadcast: schedule %r: %d occurrence(s) older than %g s were missed and are not logged",
                    sid,
                    skipped,
                    window.lookback_s,
                )
            for occurrence in found:
                decided = (sid, occurrence.planned)
                if programme is None:
                    job = self._job(None, origin="schedule", planned=occurrence.planned, schedule=stored.schedule)
                    self.engine.finish(job, "failed", f"no programme {stored.schedule.programme_id!r}", None, decided)
                    continue
                job = self._job(programme, origin="schedule", planned=occurrence.planned, schedule=stored.schedule)
                job.detail["lateness_s"] = round(occurrence.lateness_s, 3)
                if occurrence.action == "missed":
                    self.engine.finish(job, "missed", self._missed_reason(occurrence.lateness_s, jump), None, decided)
                    continue
                if occurrence.action == "late":
                    job.late = True
                    job.detail["late_reason"] = self._missed_reason(occurrence.lateness_s, jump)
                else:
                    job.start_mono = mono + (occurrence.planned - now).total_seconds()
                await self.engine.submit(job, decided)

    def _missed_reason(self, lateness: float, jump: float | None) -> str:
        if jump is not None and jump > 0:
            return f"the wall clock jumped forward {jump:.0f} s over it ({lateness:.0f} s late)"
        if self._passes == 0:
            return f"the hub was not running at that time ({lateness:.0f} s late)"
        return f"the hub could not start it in time ({lateness:.0f} s late)"

    async def _daily_summary(self, now: dt.datetime) -> None:
        today = now.astimezone(self.tz).date()
        if self._summary_done is None:
            done = self.store.get_state(SUMMARY_STATE_KEY)
            if done is None:
                # First run ever: nothing to sum up before it.
                first = (today - dt.timedelta(days=1)).isoformat()
                await self.store.write(lambda tx: tx.set_state(SUMMARY_STATE_KEY, first))
                done = first
            self._summary_done = dt.date.fromisoformat(done)
        day = max(self._summary_done + dt.timedelta(days=1), today - dt.timedelta(days=MAX_SUMMARY_BACKFILL_DAYS))
        while day < today:
            summary = await self.log.summary(day)
            await self.log.write_summary(summary, SUMMARY_STATE_KEY)
            self._summary_done = day
            day += dt.timedelta(days=1)

    # ---- jobs ------------------------------------------------------------------------------------------------

    def _volume(self, level: Level, volume: int | None) -> int:
        if volume is not None:
            return volume
        return self.settings.emergency_volume if level >= Level.EMERGENCY else self.settings.default_volume

    def _job(
        self,
        programme: Programme | None,
        *,
        origin: Any,
        planned: dt.datetime | None = None,
        schedule: Schedule | None = None,
        level: Level | None = None,
        volume: int | None = None,
    ) -> Job:
        if programme is None:
            title = schedule.programme_id if schedule else "?"
            return Job(
                Level.NORMAL,
                (),
                (),
                0,
                origin,
                title,
                schedule_id=schedule.id if schedule else None,
                planned_at=planned,
            )
        chosen = level if level is not None else programme.level_value
        return Job(
            level=chosen,
            items=tuple(programme.items),
            zones=tuple(programme.zones),
            volume=self._volume(chosen, volume if volume is not None else programme.volume),
            origin=origin,
            title=programme.name,
            programme_id=programme.id,
            schedule_id=schedule.id if schedule else None,
            planned_at=planned,
            on_interrupt=programme.on_interrupt,
        )

    def _check_zone_list(self, zones: Any) -> tuple[str, ...]:
        if zones is None or zones == []:
            return tuple(self.zones)
        if not isinstance(zones, list | tuple) or not all(isinstance(z, str) for z in zones):
            raise BroadcastError(f"zones must be a list of zone names, not {zones!r}")
        names = tuple(normalise(z) for z in zones)
        unknown = [z for z in names if z not in self.zones]
        if unknown:
            known = ", ".join(repr(z) for z in self.zones) or "none"
            raise BroadcastError(f"unknown zone {unknown[0]!r}; configured zones: {known}")
        return names

    async def _submit(self, job: Job) -> dict[str, Any]:
        verdict: Verdict = await self.engine.submit(job)
        return {"job_id": job.id, "outcome": verdict.outcome, "reason": verdict.reason or None, **job.describe()}

    # ---- operations ------------------------------------------------------------------------------------------

    async def upsert_programme(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and not data.get("id"):
            data = {**data, "id": f"p-{uuid.uuid4().hex[:8]}"}
        try:
            programme = parse_programme(data)
            check_zones(programme, self.zones)
        except ModelError as exc:
            raise BroadcastError(str(exc)) from None
        existing = self.programmes.get(programme.id)
        if existing is not None and existing.origin == "config":
            raise BroadcastError(f"programme {programme.id!r} comes from hub.toml; change it there")
        await self.catalogue.put_programme(programme, "api")
        self.programmes[programme.id] = StoredProgramme(programme, "api")
        self._wake.set()
        warnings = [
            o.describe()
            for o in self._overlaps()
            if programme.id
            in (self.schedules[o.first].schedule.programme_id, self.schedules[o.second].schedule.programme_id)
        ]
        return {"programme": programme.as_json(), "warnings": warnings}

    async def delete_programme(self, programme_id: str) -> dict[str, Any]:
        stored = self.programmes.get(programme_id)
        if stored is None:
            raise BroadcastError(f"no programme {programme_id!r}")
        if stored.origin == "config":
            raise BroadcastError(f"programme {programme_id!r} comes from hub.toml; remove it there")
        users = sorted(sid for sid, s in self.schedules.items() if s.schedule.programme_id == programme_id)
        if users:
            raise BroadcastError(
                f"programme {programme_id!r} is used by schedule(s) {', '.join(map(repr, users))}; delete them first"
            )
        await self.catalogue.delete_programme(programme_id)
        del self.programmes[programme_id]
        return {"deleted": programme_id}

    async def upsert_schedule(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and not data.get("id"):
            data = {**data, "id": f"s-{uuid.uuid4().hex[:8]}"}
        try:
            schedule = parse_schedule(data)
        except ModelError as exc:
            raise BroadcastError(str(exc)) from None
        if schedule.programme_id not in self.programmes:
            known = ", ".join(repr(p) for p in self.programmes) or "none"
            raise BroadcastError(
                f"schedule {schedule.id!r}: no programme {schedule.programme_id!r}; programmes: {known}"
            )
        existing = self.schedules.get(schedule.id)
        if existing is not None and existing.origin == "config":
            raise BroadcastError(f"schedule {schedule.id!r} comes from hub.toml; change it there")
        now = self.clock.now()
        stored = await self.catalogue.put_schedule(schedule, "api", now)
        self.schedules[schedule.id] = stored
        self._watermarks[schedule.id] = max(stored.watermark, self._watermarks.get(schedule.id, stored.watermark))
        self._wake.set()
        warnings = [o.describe() for o in self._overlaps(only=schedule.id)]
        warnings += self._quiet_warnings(schedule)
        upcoming = next_occurrence(schedule, now, self.tz)
        return {
            "schedule": schedule.as_json(),
            "next": upcoming.isoformat() if upcoming else None,
            "warnings": warnings,
        }

    def _quiet_warnings(self, schedule: Schedule) -> list[str]:
        programme = self.programmes[schedule.programme_id].programme
        if programme.level_value >= Level.EMERGENCY:
            return []
        times = list(schedule.times)
        at = schedule.at_local(self.tz)
        if at is not None:
            times.append(at.time())
        out = []
        for t in times:
            window = quiet(self.settings.quiet_windows(), dt.datetime.combine(dt.date.today(), t))
            if window is not None:
                out.append(
                    f"{t.strftime('%H:%M')} is in quiet hours {window[0].strftime('%H:%M')}-"
                    f"{window[1].strftime('%H:%M')}: it will be blocked"
                )
        return out

    async def delete_schedule(self, schedule_id: str) -> dict[str, Any]:
        stored = self.schedules.get(schedule_id)
        if stored is None:
            raise BroadcastError(f"no schedule {schedule_id!r}")
        if stored.origin == "config":
            raise BroadcastError(f"schedule {schedule_id!r} comes from hub.toml; remove it there")
        await self.catalogue.delete_schedule(schedule_id)
        del self.schedules[schedule_id]
        self._watermarks.pop(schedule_id, None)
        return {"deleted": schedule_id}

    def _overlaps(self, only: str | None = None) -> list[Any]:
        return overlaps(
            [s.schedule for s in self.schedules.values()],
            {pid: p.programme for pid, p in self.programmes.items()},
            self.clock.now(),
            self.tz,
            durations=self.engine.durations,
            only=only,
        )

    def catalog(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "zones": list(self.zones),
            "programmes": [{**p.programme.as_json(), "origin": p.origin} for p in self.programmes.values()],
            "schedules": [
                {
                    **s.schedule.as_json(),
                    "origin": s.origin,
                    "next": _iso(next_occurrence(s.schedule, max(now, s.watermark), self.tz)),
                    "last_occurrence": _iso(s.last_occurrence),
                }
                for s in self.schedules.values()
            ],
            "overlaps": [o.describe() for o in self._overlaps()],
        }

    def busy(self) -> dict[str, Any]:
        """Read-only, for the update service: is something playing or queued, and when is the next one due."""
        engine = self.engine.health()
        next_due = self._next_due(self.clock.now())
        return {
            "playing": engine["now_playing"] is not None or bool(engine["queue"]),
            "now_playing": engine["now_playing"],
            "next_at": _iso(next_due),
        }

    def upcoming(self, count: int = 5) -> list[dict[str, Any]]:
        """The next scheduled broadcasts, soonest first."""
        now = self.clock.now()
        out: list[tuple[dt.datetime, str, str]] = []
        for sid, stored in self.schedules.items():
            after = max(now, self._watermarks.get(sid, stored.watermark))
            for _ in range(count):
                t = next_occurrence(stored.schedule, after, self.tz)
                if t is None:
                    break
                out.append((t, sid, stored.schedule.programme_id))
                after = t
        out.sort()
        return [
            {
                "at": t.isoformat(),
                "schedule_id": sid,
                "programme_id": pid,
                "title": self.programmes[pid].programme.name if pid in self.programmes else None,
            }
            for t, sid, pid in out[:count]
        ]

    async def play_now(
        self,
        *,
        programme_id: str | None = None,
        items: Any = None,
        zones: Any = None,
        level: str | None = None,
        volume: int | None = None,
        who: str = "",
        chime: bool | None = None,
        dedupe_key: str | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Play a stored programme, or ad-hoc items, now (after the current item, unless it is an emergency)."""
        try:
            chosen = Level.parse(level) if level is not None else None
        except ValueError as exc:
            raise BroadcastError(str(exc)) from None
        if chosen == Level.LIVE:
            raise BroadcastError("live announcements go through start_live")
        if volume is not None and (isinstance(volume, bool) or not isinstance(volume, int) or not 0 <= volume <= 100):
            raise BroadcastError(f"volume must be an integer 0-100, not {volume!r}")
        if programme_id is not None:
            stored = self.programmes.get(str(programme_id))
            if stored is None:
                known = ", ".join(repr(p) for p in self.programmes) or "none"
                raise BroadcastError(f"no programme {programme_id!r}; programmes: {known}")
            job = self._job(stored.programme, origin="play_now", level=chosen, volume=volume)
            if zones:
                job.zones = self._check_zone_list(zones)
        else:
            if not items:
                raise BroadcastError("play_now needs a programme_id or a list of items")
            try:
                parsed = tuple(_ITEMS.validate_python(items))
            except ValidationError as exc:
                raise BroadcastError(str(ModelError.from_validation(exc, "items"))) from None
            chosen = chosen or Level.NORMAL
            announce = chime if chime is not None else self.settings.chime_before_announcements
            # An emergency read aloud always opens with the alert chime: it is cached, so it sounds at once, and
            # the text is spoken into a file while it plays (text-to-speech first would delay the cut-in).
            announce = announce or (chosen >= Level.EMERGENCY and isinstance(parsed[0], TextItem))
            if announce and not isinstance(parsed[0], ChimeItem):
                parsed = (ChimeItem(kind="chime", chime="alert" if chosen >= Level.EMERGENCY else "start"), *parsed)
            job = Job(
                level=chosen,
                items=parsed,
                zones=self._check_zone_list(zones),
                volume=self._volume(chosen, volume),
                origin="play_now",
                title=title or _title(parsed),
            )
        if not job.zones:
            raise BroadcastError("no zones to play to: configure [broadcast] zones")
        job.detail["who"] = who
        job.dedupe_key = dedupe_key or "play_now:" + _digest(
            [job.level.label, [i.model_dump(mode="json") for i in job.items], list(job.zones)]
        )
        return await self._submit(job)

    async def start_live(self, *, url: str, zones: Any = None, who: str = "") -> dict[str, Any]:
        """A live announcement (the village head's microphone, as a stream): plays until stop_live, at most
        live_max_s, before everything but emergencies."""
        if self._live is not None and not self._live.finished:
            raise BroadcastError(f"a live announcement is already on (by {self._live.detail.get('who') or '?'})")
        try:
            item = StreamItem(kind="stream", url=url, duration_s=self.settings.live_max_s, title="live")
        except ValidationError as exc:
            raise BroadcastError(str(ModelError.from_validation(exc, "live"))) from None
        job = Job(
            level=Level.LIVE,
            items=(item,),
            zones=self._check_zone_list(zones),
            volume=self.settings.default_volume,
            origin="live",
            title=f"live announcement by {who}" if who else "live announcement",
            detail={"who": who},
        )
        self._live = job
        return await self._submit(job)

    async def stop_live(self, *, who: str = "") -> dict[str, Any]:
        job = self._live
        if job is None or job.finished:
            raise BroadcastError("no live announcement is on")
        self._live = None
        reason = f"ended by {who}" if who else "ended"
        if self.arbiter.current is job:
            await self.engine.cut(Cut("stopped", reason), job)
        else:
            await self.engine.cancel(lambda j: j is job, f"live announcement {reason} before it began")
        return {"job_id": job.id, "stopped": True}

    async def stop_all(self, *, who: str = "", reason: str = "") -> dict[str, Any]:
        why = f"stopped by {who or 'someone'}" + (f": {reason}" if reason else "")
        stopped = await self.engine.cancel(lambda j: True, why)
        self._live = None
        return {"stopped": [j.id for j in stopped]}

    async def test_zone(self, *, zone: str, who: str = "") -> dict[str, Any]:
        """A short test tone on one zone (it waits for the current item like any normal broadcast)."""
        zones = self._check_zone_list([zone])
        job = Job(
            level=Level.PRIORITY,
            items=(ChimeItem(kind="chime", chime="test"),),
            zones=zones,
            volume=self.settings.default_volume,
            origin="test",
            title=f"zone test {zones[0]}",
            detail={"who": who},
        )
        return await self._submit(job)

    async def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        return await self.log.recent(max(1, min(int(limit), 500)))

    # ---- CAP -------------------------------------------------------------------------------------------------

    async def submit_cap(self, xml: bytes | str) -> dict[str, Any]:
        """A CAP 1.2 message: Alert plays (emergency for Extreme/Severe or Immediate, else priority), Update
        replaces the alert it references, Cancel stops and removes it. Expired ones are logged, not played."""
        try:
            message = parse_cap(xml)
        except CapError as exc:
            self.cap_errors += 1
            self.last_cap_error = str(exc)
            raise BroadcastError(f"CAP message refused: {exc}") from None
        key = f"{message.sender},{message.identifier}"
        result: dict[str, Any] = {"alert": key, "msg_type": message.msg_type, "status": message.status}
        if message.msg_type in ("Update", "Cancel"):
            refs = {f"{r.sender},{r.identifier}" for r in message.references}
            if not refs:
                raise BroadcastError(f"CAP {message.msg_type} {message.identifier!r} has no <references>")
            verb = "cancelled" if message.msg_type == "Cancel" else "replaced"
            why = f"{verb} by CAP {message.msg_type} {message.identifier!r} from {message.sender}"
            stopped = await self.engine.cancel(
                lambda j: j.alert_key in refs, why, kind="cancelled" if verb == "cancelled" else "replaced"
            )
            for ref in refs:
                if ref in self.alerts:
                    self.alerts[ref]["state"] = verb
            result["stopped"] = [j.id for j in stopped]
            if message.msg_type == "Cancel":
                self._remember_alert(key, {"state": "cancel", "references": sorted(refs)})
                return result
        if message.msg_type not in ("Alert", "Update"):
            return {**result, **self._cap_ignored(message, key, f"a CAP {message.msg_type} is not played")}
        if message.status != "Actual":
            return {**result, **self._cap_ignored(message, key, f"status {message.status}: only Actual alerts play")}
        job = self._cap_job(message, key)
        expires = message.expires()
        now = self.clock.now()
        if expires is not None and expires <= now:
            entry = self.engine.finish(job, "expired", f"expired at {expires.isoformat()}, received {now.isoformat()}")
            self._remember_alert(key, {"state": "expired", "job_id": job.id})
            return {**result, "job_id": job.id, "outcome": entry["outcome"], "reason": entry["reason"]}
        submitted = await self._submit(job)
        self._remember_alert(key, {"state": submitted["outcome"], "job_id": job.id})
        return {**result, **submitted}

    def _remember_alert(self, key: str, state: dict[str, Any]) -> None:
        self.alerts.pop(key, None)
        self.alerts[key] = state
        while len(self.alerts) > MAX_ALERTS_KEPT:
            del self.alerts[next(iter(self.alerts))]

    def _cap_job(self, message: CapMessage, key: str) -> Job:
        info = message.best_info(self.settings.cap_language)
        text = message.spoken_text(self.settings.cap_language)
        if info is None or not text:
            raise BroadcastError(f"CAP {message.msg_type} {message.identifier!r} has no text to read aloud")
        emergency = info.severity in CAP_EMERGENCY_SEVERITY or info.urgency in CAP_EMERGENCY_URGENCY
        level = Level.EMERGENCY if emergency else Level.PRIORITY
        voice = self.settings.voice
        items: list[Item] = [TextItem(kind="text", text=text, voice=voice)]
        if self.settings.chime_before_announcements or emergency:  # see play_now: the chime hides the TTS time
            items.insert(0, ChimeItem(kind="chime", chime="alert" if emergency else "start"))
        zones = tuple(self.settings.emergency_zones) or tuple(self.zones)
        return Job(
            level=level,
            items=tuple(items),
            zones=zones,
            volume=self._volume(level, None),
            origin="cap",
            title=info.headline or info.event,
            on_interrupt="resume",
            dedupe_key=f"cap:{key}",
            expires_at=message.expires(),
            alert_key=key,
            detail={
                "cap": {
                    "identifier": message.identifier,
                    "sender": message.sender,
                    "sent": message.sent.isoformat(),
                    "msg_type": message.msg_type,
                    "event": info.event,
                    "urgency": info.urgency,
                    "severity": info.severity,
                    "certainty": info.certainty,
                    "areas": [a.desc for a in info.areas],
                    "references": [f"{r.sender},{r.identifier}" for r in message.references],
                }
            },
        )

    def _cap_ignored(self, message: CapMessage, key: str, why: str) -> dict[str, Any]:
        job = Job(Level.NORMAL, (), (), 0, "cap", message.identifier, alert_key=key)
        job.detail["cap"] = {"identifier": message.identifier, "sender": message.sender, "msg_type": message.msg_type}
        self.engine.finish(job, "ignored", why)
        self._remember_alert(key, {"state": "ignored", "job_id": job.id})
        return {"job_id": job.id, "outcome": "ignored", "reason": why}

    # ---- uploaded media --------------------------------------------------------------------------------------

    async def _media_command(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """The upload library behind the same door as the rest (the technician page, later cloud commands)."""
        if self.media is None:
            raise BroadcastError("this hub keeps no uploaded audio")
        library = self.media()
        try:
            if name == "media_list":
                items = library.list()
                for info in items:
                    self.engine.durations[info.id] = info.duration_s
                return {"media": [info.to_state() for info in items]}
            if name == "media_add":
                chunks = data.get("chunks")
                if chunks is None:
                    raise BroadcastError("media_add needs 'chunks': the file's bytes, as an async iterable")
                size = data.get("declared_size")
                info = await library.add_stream(
                    str(data.get("filename") or ""), chunks, size if isinstance(size, int) else None
                )
                self.engine.durations[info.id] = info.duration_s
                return dict(info.to_state())
            media_id = str(data.get("id") or "")
            users = sorted(
                p.programme.id
                for p in self.programmes.values()
                if any(getattr(item, "media_id", None) == media_id for item in p.programme.items)
            )
            if users:
                raise BroadcastError(
                    f"media {media_id!r} is used by programme(s) {', '.join(map(repr, users))}; change them first"
                )
            await library.remove(media_id)
            return {"removed": media_id}
        except (ValueError, LookupError) as exc:  # UploadError, UnknownMediaError: their message says it all
            if isinstance(exc, BroadcastError):
                raise
            raise BroadcastError(str(exc).strip("'\"")) from None

    # ---- the bus ---------------------------------------------------------------------------------------------

    def _notify(self, topic: str, data: dict[str, Any]) -> None:
        self.bus.publish(topic, **data)

    def _command(self, name: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def handler(data: dict[str, Any]) -> dict[str, Any]:
            try:
                return await self.perform(name, data)
            except (ValueError, TypeError) as exc:  # BroadcastError, or a field of the wrong type ("limit": "x")
                raise CommandError(str(exc)) from None

        return handler

    async def perform(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """One operation from a bus command or message (the keys as the module docstring lists them)."""
        who = str(data.get("who") or "")
        if name == "upsert_programme":
            return await self.upsert_programme(data.get("programme", data))
        if name == "delete_programme":
            return await self.delete_programme(str(data.get("id") or ""))
        if name == "upsert_schedule":
            return await self.upsert_schedule(data.get("schedule", data))
        if name == "delete_schedule":
            return await self.delete_schedule(str(data.get("id") or ""))
        if name == "list":
            return self.catalog()
        if name == "busy":
            return self.busy()
        if name == "log":
            return {"entries": await self.recent(int(data.get("limit") or 20))}
        if name == "play_now":
            return await self.play_now(
                programme_id=data.get("programme_id"),
                items=data.get("items"),
                zones=data.get("zones"),
                level=data.get("level"),
                volume=data.get("volume"),
                who=who,
                chime=data.get("chime"),
                title=data.get("title"),
            )
        if name == "cap":
            xml = data.get("xml")
            if not isinstance(xml, str | bytes):
                raise BroadcastError("cap needs 'xml': the CAP 1.2 document")
            return await self.submit_cap(xml)
        if name == "start_live":
            return await self.start_live(url=str(data.get("url") or ""), zones=data.get("zones"), who=who)
        if name == "stop_live":
            return await self.stop_live(who=who)
        if name == "stop_all":
            return await self.stop_all(who=who, reason=str(data.get("reason") or ""))
        if name == "test_zone":
            return await self.test_zone(zone=str(data.get("zone") or ""), who=who)
        if name in MEDIA_COMMANDS:
            return await self._media_command(name, data)
        raise BroadcastError(f"unknown broadcast operation {name!r}")

    async def _listen(self, sub: Subscription) -> None:
        while True:
            message = await sub.get()
            try:
                await self._handle(message)
            except Exception:
                # One malformed message must not stop the loudspeakers: log it and go on listening.
                log.exception("broadcast: could not handle %s", message.topic)

    async def _handle(self, message: Message) -> None:
        if message.topic == "supervisor.service_running":
            if message.data.get("service") == "relays":
                await self.sequencer.redeclare("broadcast: relay service started")
            return
        name = message.topic.removeprefix("broadcast.")
        request_id = message.data.get("request_id")
        try:
            result = await self.perform(name, dict(message.data))
        except (ValueError, TypeError) as exc:
            log.warning("broadcast: %s refused: %s", name, exc)
            self.bus.publish("broadcast.result", command=name, request_id=request_id, ok=False, error=str(exc))
        else:
            self.bus.publish("broadcast.result", command=name, request_id=request_id, ok=True, result=result)

    # ---- health ----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        engine = self.engine.health()
        now = self.clock.now()
        quiet_now = quiet(self.settings.quiet_windows(), now)
        return {
            "now_playing": engine["now_playing"],
            "queue": engine["queue"],
            "next": self.upcoming(5),
            "last_broadcast": engine["last"],
            "counts": engine["counts"],
            "relays": self.sequencer.health(),
            "zones": self.zones,
            "programmes": len(self.programmes),
            "schedules": len(self.schedules),
            "quiet_now": None if quiet_now is None else f"{quiet_now[0]:%H:%M}-{quiet_now[1]:%H:%M}",
            "clock_jumps": self.clock_jumps,
            "last_jump_s": self.last_jump_s,
            "missed_not_logged": self.missed_uncounted,
            "recovered_at_start": len(self.recovered),
            "alerts": dict(list(self.alerts.items())[-10:]),
            "render_failures": self.engine.render_failures,
            "log_write_errors": self.log.write_errors,
        }

    def problems(self) -> list[str]:
        out = list(self.load_problems)
        out += self.sequencer.problems()
        if self.log.last_error:
            out.append(self.log.last_error)
        # The audio device's own health is the audio service's to report.
        if self.engine.last_failure:
            out.append(f"last item that could not be prepared: {self.engine.last_failure}")
        return out


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def _title(items: tuple[Item, ...]) -> str:
    for item in items:
        if isinstance(item, TextItem):
            return item.describe().removeprefix("text ").strip("'\"")
    return items[-1].describe() if items else "announcement"
