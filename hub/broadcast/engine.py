"""The engine: plays the arbiter's queue through the relay sequence and the audio player, one job at a time.

For each job: amplifier on (if off) and its warm-up, the job's zones connected, then each item in turn —
rendered by the `Renderer` (TTS, media library, chimes; the next item is rendered while the current one plays),
played by the audio player, a stream relayed for its duration. Between items a higher level that is waiting
goes first (the job is put back and carries on afterwards). An emergency does not wait: `submit` stops the
current item at once (the player silences the device in the call), the job is put back to resume from the
cut item or logged as interrupted, as its programme says, and the emergency starts as soon as its zones are
connected. After the last job the zones are disconnected, and the amplifier goes off after the idle delay.

Every job ends in the broadcast log with its outcome; the log row is written when it is queued, when its
first sound is heard and when it ends, so a crash at any point leaves a row that says how far it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from drivers.audio import AudioError, AudioOut, PlaybackReport
from hub.broadcast.arbiter import Arbiter, Cut, Job, Verdict
from hub.broadcast.log import BroadcastLog
from hub.broadcast.model import AudioItem, ChimeItem, Item, Level, StreamItem, TextItem
from hub.broadcast.prepared import Prepared, Renderer, RenderError
from hub.broadcast.sequencer import Sequencer
from hub.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")
KEEP_ZONES_S = 2.0  # the next job starts within this: leave the zones connected in between
Notify = Callable[[str, dict[str, Any]], None]


class Engine:
    def __init__(
        self,
        *,
        arbiter: Arbiter,
        sequencer: Sequencer,
        renderer: Renderer,
        player: AudioOut,
        log: BroadcastLog,
        clock: Clock,
        voice: str = "vi",
        amplifier_idle_off_s: float = 120.0,
        stream_retry_s: float = 2.0,
        stream_fallback_after_s: float = 15.0,
        notify: Notify | None = None,
    ) -> None:
        self.arbiter = arbiter
        self.sequencer = sequencer
        self.renderer = renderer
        self.player = player
        self.log = log
        self.clock = clock
        self.voice = voice
        self.amplifier_idle_off_s = amplifier_idle_off_s
        self.stream_retry_s = stream_retry_s
        self.stream_fallback_after_s = stream_fallback_after_s
        self.notify = notify or (lambda topic, data: None)
        self._wake = asyncio.Event()
        self._cut_event = asyncio.Event()
        self._renders: dict[tuple[str, int], asyncio.Task[Prepared]] = {}
        self._idle_since = clock.monotonic()
        self.now_item: dict[str, Any] | None = None
        self.counts: Counter[str] = Counter()
        self.last: dict[str, Any] | None = None
        self.durations: dict[str, float] = {}  # media id -> seconds, learnt when rendered (overlap estimates)
        self.render_failures = 0
        self.last_failure: str | None = None

    # ---- requests --------------------------------------------------------------------------------------------

    async def submit(self, job: Job, decided: tuple[str, dt.datetime] | None = None) -> Verdict:
        """Queue a job (or log why not). An emergency stops the current item before this returns."""
        now = self.clock.now()
        job.submitted_at = now
        at = job.planned_at if job.planned_at is not None and job.planned_at > now else now
        verdict = self.arbiter.admit(job, at, self.clock.monotonic())
        if verdict.outcome != "queued":
            self.finish(job, verdict.outcome, verdict.reason, decided=decided)
            return verdict
        self.log.queued(job, decided)
        # The first two items: an alert's chime and its text are both ready by the time the chime has sounded.
        self._render_ahead(job, job.position)
        self._render_ahead(job, job.position + 1)
        if verdict.cut_current and self.arbiter.current is not None:
            await self.cut(Cut("preempted", f"{job.level.label} {job.title!r}", by=job.id))
        self._wake.set()
        self.notify("broadcast.queued", job.describe())
        return verdict

    async def cut(self, cut: Cut, job: Job | None = None) -> bool:
        """Stop the current job now (if it is `job`, when given). A cancel overrides an earlier pre-emption."""
        current = self.arbiter.current
        if current is None or (job is not None and current is not job):
            return False
        if current.cut is not None and (current.cut.kind != "preempted" or cut.kind == "preempted"):
            return False
        cut.at = self.clock.now()
        current.cut = cut
        self._cut_event.set()
        await self.player.stop()
        return True

    async def cancel(self, predicate: Callable[[Job], bool], reason: str, kind: str = "cancelled") -> list[Job]:
        """Remove matching jobs from the queue and stop the current one if it matches; each is logged."""
        removed = self.arbiter.remove(predicate)
        for job in removed:
            self._drop_renders(job)
            self.finish(job, "cancelled", reason)
        current = self.arbiter.current
        if current is not None and predicate(current):
            await self.cut(Cut("replaced" if kind == "replaced" else "cancelled", reason))
            removed.append(current)
        return removed

    # ---- the loop --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.sequencer.idle("broadcast: nothing is playing (service start)")
        self._idle_since = self.clock.monotonic()
        while True:
            job = self.arbiter.pop()
            if job is None:
                await self._idle()
                continue
            await self._run(job)

    async def _idle(self) -> None:
        self._wake.clear()
        if self.arbiter.queue:
            return
        if self.sequencer.amp_on:
            remaining = self._idle_since + self.amplifier_idle_off_s - self.clock.monotonic()
            if remaining <= 0:
                await self.sequencer.amplifier_off(f"broadcast: idle for {self.amplifier_idle_off_s:g} s")
                self.notify("broadcast.idle", {"amplifier_on": False})
                return
            await self._sleep_or(self._wake, remaining)
        else:
            await self._wake.wait()

    async def _run(self, job: Job) -> None:
        self.arbiter.current = job
        self._cut_event.clear()
        keep = False
        try:
            keep = await self._play_job(job)
        except asyncio.CancelledError:
            # The service is stopping (or restarting after a crash elsewhere): say so in the log, then go.
            self.arbiter.current = None
            self.now_item = None
            self._drop_renders(job)
            self._stopped_mid(job)
            raise
        except Exception as exc:
            log.exception("broadcast: %r failed", job.title)
            self.finish(job, "failed", f"{type(exc).__name__}: {exc}")
        self.arbiter.current = None
        self.now_item = None
        if not keep:
            self._drop_renders(job)
        upcoming = self.arbiter.peek()
        soon = upcoming is not None and (
            upcoming.start_mono is None or upcoming.start_mono - self.clock.monotonic() <= KEEP_ZONES_S
        )
        if not soon:
            await self.sequencer.disconnect(f"broadcast: {job.title} ended")
        self._idle_since = self.clock.monotonic()

    async def _play_job(self, job: Job) -> bool:
        """Play `job` from its position; True if it was put back in the queue (it will resume)."""
        now = self.clock.now()
        if job.expires_at is not None and now >= job.expires_at:
            self.finish(job, "expired", f"expired at {job.expires_at.isoformat()} before it could play")
            return False
        reason = f"broadcast: {job.title}"
        ready_at = await self.sequencer.amplifier_on(reason)
        if not await self._wait_until(ready_at):
            return self._after_cut(job)
        await self.sequencer.connect(job.zones, reason)
        if job.start_mono is not None and not await self._wait_until(job.start_mono):
            return self._after_cut(job)
        while job.position < len(job.items):
            if job.cut is not None:
                return self._after_cut(job)
            first = self.arbiter.steps_in(job, self.clock.monotonic())
            if first is not None:
                job.interruptions.append(
                    {"at": self.clock.now().isoformat(), "kind": "stepped_aside", "by": first.id, "item": job.position}
                )
                self.arbiter.requeue(job)
                return True
            now = self.clock.now()
            if job.expires_at is not None and now >= job.expires_at:
                self.finish(job, "expired" if not job.results else "interrupted", "the alert expired", now)
                return False
            quiet = self.arbiter.quiet_reason(job, now)
            if quiet is not None:
                self.finish(job, "blocked" if not job.results else "interrupted", quiet, now)
                return False
            item = job.items[job.position]
            result = await self._play_item(job, item)
            job.results.append(result)
            if _is_cut(job):
                return self._after_cut(job)
            job.position += 1
        heard = [r for r in job.results if r.get("ok")]
        failures = [f"item {r['index'] + 1}: {r['error']}" for r in job.results if r.get("error")]
        outcome = "played" if heard else "failed"
        self.finish(job, outcome, "; ".join(failures) or None, self.clock.now())
        return False

    def _after_cut(self, job: Job) -> bool:
        cut = job.cut
        assert cut is not None
        now = self.clock.now()
        if cut.kind == "preempted":
            job.interruptions.append(
                {"at": now.isoformat(), "kind": "cut", "by": cut.by, "reason": cut.reason, "item": job.position}
            )
            if job.on_interrupt == "resume" or not job.results:
                job.cut = None
                self.arbiter.requeue(job)
                return True
            self.finish(job, "interrupted", f"cut by {cut.reason}", now)
        elif cut.kind == "stopped":
            self.finish(job, "played", cut.reason, now)
        else:
            self.finish(job, "cancelled", cut.reason, now)
        return False

    # ---- items -----------------------------------------------------------------------------------------------

    async def _play_item(self, job: Job, item: Item) -> dict[str, Any]:
        index = job.position
        result: dict[str, Any] = {"index": index, "kind": item.kind, "item": item.describe(), "ok": False}
        self.now_item = {**job.describe(), "item": item.describe(), "item_index": index, "since": None}
        if isinstance(item, StreamItem):
            return await self._play_stream(job, item, result)
        try:
            prepared = await self._until_cut(self._render(job, index))
        except RenderError as exc:
            self._render_failed(str(exc))
            return {**result, "error": f"could not prepare it: {exc}"}
        if prepared is None:
            return {**result, "cut": True, "played_s": 0.0}
        self.last_failure = None
        self._render_ahead(job, index + 1)
        report, error = await self._play_source(job, prepared.source, None)
        return self._result(job, result, report, error, prepared.duration_s)

    async def _play_stream(self, job: Job, item: StreamItem, result: dict[str, Any]) -> dict[str, Any]:
        """Relay the stream for its duration: re-open it when it drops, give up after it stayed down for
        `stream_fallback_after_s`, and then play its fallback item."""
        deadline = self.clock.monotonic() + item.duration_s
        played = 0.0
        attempts = 0
        down_since: float | None = None
        errors: list[str] = []
        first: PlaybackReport | None = None
        while not self._cut_event.is_set():
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0.05:
                break
            report, error = await self._play_source(job, item.url, remaining)
            attempts += 1
            if report is not None and report.started is not None:
                first = first or report
                played += report.duration_s
                down_since = None
            if error:
                errors.append(error)
            if self._cut_event.is_set() or deadline - self.clock.monotonic() <= 0.05:
                break
            now = self.clock.monotonic()
            down_since = now if down_since is None else down_since
            if now - down_since >= self.stream_fallback_after_s:
                break
            if not await self._wait_until(min(now + self.stream_retry_s, deadline)):
                break
        out = {**result, "attempts": attempts, "played_s": round(played, 3), "cut": self._cut_event.is_set()}
        if first is not None and first.started is not None:
            out["ok"] = True
        if errors:
            out["error"] = errors[-1] if out["ok"] else f"the stream could not be played: {errors[-1]}"
        if not out["ok"] and item.fallback is not None and not self._cut_event.is_set():
            fallback = await self._play_fallback(job, item.fallback)
            out["fallback"] = fallback
            out["ok"] = bool(fallback.get("ok"))
        return out

    async def _play_fallback(self, job: Job, item: AudioItem | TextItem | ChimeItem) -> dict[str, Any]:
        result: dict[str, Any] = {"kind": item.kind, "item": item.describe(), "ok": False}
        try:
            prepared = await self._until_cut(self._prepare(item))
        except RenderError as exc:
            return {**result, "error": str(exc)}
        if prepared is None:
            return {**result, "cut": True}
        report, error = await self._play_source(job, prepared.source, None)
        return self._result(job, result, report, error, prepared.duration_s)

    def _result(
        self,
        job: Job,
        result: dict[str, Any],
        report: PlaybackReport | None,
        error: str | None,
        expected_s: float | None,
    ) -> dict[str, Any]:
        out = dict(result)
        out["played_s"] = round(report.duration_s, 3) if report is not None else 0.0
        out["expected_s"] = None if expected_s is None else round(expected_s, 3)
        out["cut"] = self._cut_event.is_set()
        out["ok"] = report is not None and report.started is not None and error is None
        if error:
            out["error"] = error
        return out

    async def _play_source(
        self, job: Job, source: str, limit_s: float | None
    ) -> tuple[PlaybackReport | None, str | None]:
        """Play one source, at most `limit_s` (streams), stopping early when the job is cut."""
        call_wall = self.clock.now()
        call_mono = time.monotonic()
        task = asyncio.ensure_future(self.player.play(source, job.volume))
        waiters: set[asyncio.Future[Any]] = {task, asyncio.ensure_future(self._cut_event.wait())}
        if limit_s is not None:
            waiters.add(asyncio.ensure_future(self.clock.sleep(limit_s)))
        already_started = job.started_at is not None
        started_noted = False
        try:
            while True:
                # Polled every 50 ms until the first sound, to record the job's start as it happens (a crash
                # mid-item must find the row saying 'playing'); then just waited for.
                done, _ = await asyncio.wait(
                    waiters, timeout=None if started_noted else 0.05, return_when=asyncio.FIRST_COMPLETED
                )
                if not started_noted:
                    started_noted = self._note_start(job, call_wall, call_mono)
                if task in done:
                    break
                if done:  # cut, or the stream's time is up: stop it and collect the report
                    await self.player.stop()
                    break
        finally:
            for waiter in waiters:
                if waiter is not task:
                    waiter.cancel()
        report: PlaybackReport | None
        try:
            report = await task
        except AudioError as exc:
            report = getattr(exc, "report", None)
            error: str | None = str(exc)
        else:
            error = report.error if report is not None else None
        if report is not None and report.started is not None and not already_started:
            exact = call_wall + dt.timedelta(seconds=report.started.mono - call_mono)
            if job.started_at is None:
                self._mark_started(job, exact)
            else:
                job.started_at = exact  # the instant the device reported, rather than when it was noticed
        return report, error

    def _note_start(self, job: Job, call_wall: dt.datetime, call_mono: float) -> bool:
        """While an item plays: the first time its sound is heard, note it (the job's actual start, if it is
        the first; health's 'since'). The report gives the exact instant at the end; this is <= 50 ms late."""
        status = self.player.health()
        current = status.detail.get("current") or {}
        if status.state != "playing" or current.get("seconds_written", 0) <= 0:
            return False
        at = call_wall + dt.timedelta(seconds=time.monotonic() - call_mono)
        if job.started_at is None:
            self._mark_started(job, at)
        elif self.now_item is not None and self.now_item.get("since") is None:
            self.now_item["since"] = at.isoformat()
        return True

    def _mark_started(self, job: Job, at: dt.datetime) -> None:
        if job.started_at is None:
            job.started_at = at
            self.log.playing(job)
            self.notify("broadcast.started", {**job.describe(), "started_at": at.isoformat()})
        if self.now_item is not None and self.now_item.get("since") is None:
            self.now_item["since"] = at.isoformat()

    # ---- rendering -------------------------------------------------------------------------------------------

    def _prepare(self, item: Item) -> Awaitable[Prepared]:
        if isinstance(item, AudioItem):
            return self._learn(item.media_id, self.renderer.audio(item.media_id))
        if isinstance(item, TextItem):
            return self.renderer.text(item.text, item.voice or self.voice)
        if isinstance(item, ChimeItem):
            return self.renderer.chime(item.chime)
        raise RenderError(f"{item.describe()} is not rendered")

    async def _learn(self, media_id: str, pending: Awaitable[Prepared]) -> Prepared:
        prepared = await pending
        if prepared.duration_s is not None:
            self.durations[media_id] = prepared.duration_s
        return prepared

    def _render_ahead(self, job: Job, index: int) -> None:
        """Start rendering item `index` of `job` in the background (TTS can take a second)."""
        if index >= len(job.items) or (job.id, index) in self._renders:
            return
        item = job.items[index]
        if isinstance(item, StreamItem):
            return
        task = asyncio.ensure_future(self._prepare(item))
        task.add_done_callback(_retrieve)
        self._renders[(job.id, index)] = task

    def _render(self, job: Job, index: int) -> asyncio.Task[Prepared]:
        self._render_ahead(job, index)
        return self._renders[(job.id, index)]

    def _drop_renders(self, job: Job) -> None:
        for key in [k for k in self._renders if k[0] == job.id]:
            self._renders.pop(key).cancel()

    def _render_failed(self, why: str) -> None:
        self.render_failures += 1
        self.last_failure = why
        log.warning("broadcast: %s", why)

    # ---- waiting ---------------------------------------------------------------------------------------------

    async def _until_cut(self, work: Awaitable[T]) -> T | None:
        """The result of `work`, or None if the job is cut first (the work goes on, for a later resume)."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(self._cut_event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        return None

    async def _wait_until(self, mono: float) -> bool:
        """Sleep until monotonic time `mono`; False if the job was cut meanwhile."""
        delay = mono - self.clock.monotonic()
        if delay > 0:
            await self._sleep_or(self._cut_event, delay)
        return not self._cut_event.is_set()

    async def _sleep_or(self, event: asyncio.Event, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()

    # ---- outcome ---------------------------------------------------------------------------------------------

    def finish(
        self,
        job: Job,
        outcome: str,
        reason: str | None,
        ended_at: dt.datetime | None = None,
        decided: tuple[str, dt.datetime] | None = None,
    ) -> dict[str, Any]:
        job.finished = True
        entry = self.log.final(job, outcome, reason, ended_at, decided)
        self.counts[outcome] += 1
        self.last = entry
        self.notify("broadcast.logged", entry)
        if outcome in ("failed", "interrupted", "missed", "blocked", "expired", "cancelled"):
            log.info("broadcast: %r %s%s", job.title, outcome, f" ({reason})" if reason else "")
        return entry

    def _stopped_mid(self, job: Job) -> None:
        if job.finished:
            return
        if job.started_at is not None or job.results:
            self.finish(job, "interrupted", "the hub stopped mid-broadcast", self.clock.now())
        else:
            self.finish(job, "cancelled", "the hub stopped before it played")

    async def stop(self) -> None:
        """The service stops: silence, the current job is logged as interrupted, the queue as cancelled."""
        with contextlib.suppress(Exception):
            await self.player.stop()
        current = self.arbiter.current
        if current is not None:
            self._stopped_mid(current)
            self.arbiter.current = None
        for job in self.arbiter.remove(lambda j: True):
            self._drop_renders(job)
            self._stopped_mid(job)

    # ---- health ----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        current = self.arbiter.current
        return {
            "now_playing": None if current is None else (self.now_item or current.describe()),
            "queue": [job.describe() for job in self.arbiter.ordered()],
            "last": self.last,
            "counts": dict(self.counts),
        }

    def is_emergency(self) -> bool:
        current = self.arbiter.current
        return current is not None and current.level >= Level.EMERGENCY


def _is_cut(job: Job) -> bool:
    return job.cut is not None  # a function, so that type checkers do not keep a narrowing across an await


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed render is reported when awaited, not as "never retrieved"
