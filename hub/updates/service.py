"""The update service ("ota"): check for signed releases, stage them in the inactive slot, install in the
maintenance window when no broadcast plays or is due, then commit once healthy or roll back.

Three modes, decided at start:
- slots: the hub runs from `<root>/slots/<x>` (an installed box). Checks every `check_interval_s` (only with a
  trusted clock, ota/timetrust.py), downloads and builds the inactive slot at any hour, and switches to it only
  inside the window (or on `ota.install_now`) and never while a broadcast plays or is due within the margin;
  health says why it waits. After the switch the hub restarts (systemd starts `current`); the new version, on
  trial, commits once every critical service runs, else rolls back and restarts. Crash loops are the boot
  guard's (ota/guard.py).
- balena: the balena supervisor owns updates; the hub holds its update lock while a broadcast plays or is due.
- off: not running from a slot (a developer's tree, the demo) or disabled: reports the version only.

Every step is an outbox event (`ota.*`); the slot layer notes its own steps in the state file (the guard runs
without the store) and this service reports them when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import platform
import sys
import time
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from hub import __version__
from hub.bus import CommandError, EventBus, Subscription
from hub.service import Service
from hub.store import RecordClass, Store
from hub.store.migrations import SCHEMA_VERSION
from hub.updates.settings import OtaSettings
from ota import balena, slots
from ota.errors import ClockUntrustedError, MetadataError, OtaError, RollbackError, TargetError
from ota.installer import Built, InstallError, build_slot, have_blob
from ota.manifest import is_newer

log = logging.getLogger(__name__)

SECURITY_ERRORS = (MetadataError, TargetError, RollbackError)
WAIT_POLL_S = 15.0
SETTLE_S = 3.0  # healthy for at least this long after start before committing (not a single lucky sample)
GUARD_FILES = ("guard.py", "slots.py")
ROLLBACK_SHOWN_S = 24 * 3600.0  # a rollback stays a problem on the overview for a day


class Client(Protocol):
    """What the service needs of ota.client.UpdateClient (helper A's); a Protocol so tests may give a real one."""

    def check(self, installed_version: str) -> Any: ...

    def plan(self, release: Any, have: Callable[[str], Path | None]) -> Any: ...

    def fetch(self, plan: Any, staging_dir: Path, progress: Callable[[int], None] | None = None) -> None: ...


ClientFactory = Callable[[], Client]


def in_window(now: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return True  # a window of the whole day
    if start < end:
        return start <= now < end
    return now >= start or now < end  # crosses midnight


class UpdateService(Service):
    name = "ota"

    def __init__(
        self,
        settings: OtaSettings,
        store: Store,
        bus: EventBus,
        *,
        health: Callable[[], dict[str, Any]],
        request_restart: Callable[[str], None],
        data_dir: Path,
        config_path: Path,
        cloud_url: str | None = None,
        ca_bundle: Path | None = None,
        tz: str = "Asia/Ho_Chi_Minh",
        client_factory: ClientFactory | None = None,
        prefix: str | None = None,
        env: Mapping[str, str] | None = None,
        wall: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.bus = bus
        self._hub_health = health
        self._request_restart = request_restart
        self.data_dir = data_dir
        self.config_path = config_path
        self.repo_url = str(settings.repo_url or cloud_url or "") or None
        self.ca_bundle = ca_bundle
        self.tz = zoneinfo.ZoneInfo(tz)
        self._client_factory = client_factory
        self._wall = wall or (lambda: dt.datetime.now(self.tz))
        self.layout = slots.Layout(settings.root)
        self.balena_env = balena.detect(env)
        self.lock = balena.UpdateLock(self.balena_env.lock_path) if self.balena_env else None
        self.slot = self.layout.running_from_slot(prefix if prefix is not None else sys.prefix)
        self.mode = self._mode()
        self._trigger = asyncio.Event()
        self._install_now = False
        self.waiting: str | None = None
        self.phase = "idle"
        self.last_check: dict[str, Any] | None = None
        self.staged: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}
        self.progress: dict[str, int] = {}

    def _mode(self) -> str:
        if self.balena_env is not None:
            return "balena"
        if not self.settings.enabled or self.slot is None:
            return "off"
        return "slots"

    # ---- running -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        withdraw = [
            self.bus.serve("ota.install_now", self._cmd_install_now),
            self.bus.serve("ota.check_now", self._cmd_check_now),
            self.bus.serve("ota.status", self._cmd_status),
        ]
        try:
            if self.mode == "slots":
                await self._run_slots()
            elif self.mode == "balena":
                await self._run_balena()
            else:
                while True:
                    self.beat()
                    await asyncio.sleep(3600)
        finally:
            for undo in withdraw:
                undo()
            if self.lock is not None:
                self.lock.release()

    async def _run_slots(self) -> None:
        await asyncio.to_thread(self._note_runtime)
        await self._report_events()
        trial = self.state.get("trial")
        if trial and trial.get("slot") == self.slot:
            await self._watch_trial(trial)
        else:
            await asyncio.to_thread(self._install_guard)
        await self._updater()

    def _note_runtime(self) -> None:
        """What the guard and a later rollback need to know about this slot: data dir, schema, config path."""
        with slots.locked(self.layout) as state:
            slots.reconcile(self.layout, state)
            state["data_dir"] = str(self.data_dir)
            state["config_path"] = str(self.config_path)
            state["max_boots"] = self.settings.max_boots
            state.setdefault("schema", {})[self.slot or "?"] = SCHEMA_VERSION
            self.state = json.loads(json.dumps(state))

    def _install_guard(self) -> None:
        """Copy the boot guard out of this (committed) slot to the stable path systemd runs it from."""
        here = Path(slots.__file__).parent
        target = self.layout.guard_dir
        target.mkdir(parents=True, exist_ok=True)
        for name in GUARD_FILES:
            data = (here / name).read_bytes()
            dest = target / name
            if not dest.exists() or dest.read_bytes() != data:
                slots.write_atomic(dest, data)

    async def _report_events(self) -> None:
        """The slot layer's and the guard's events (kept in the state file) into the outbox, then forgotten."""
        # Health first: once the outbox says "committed", /api/health must not still show the state before it.
        await asyncio.to_thread(self._refresh_state)
        events = await asyncio.to_thread(slots.pending_events, self.layout)
        if events:

            def write(tx: Any) -> None:
                for event in events:
                    payload = {k: v for k, v in event.items() if k not in ("kind", "id")}
                    tx.append(RecordClass.OPERATIONS, str(event["kind"]), payload)

            await self.store.write(write)
            await asyncio.to_thread(slots.drop_events, self.layout, {str(e.get("id")) for e in events})
        await asyncio.to_thread(self._refresh_state)

    def _refresh_state(self) -> None:
        self.state = slots.load_state(self.layout)

    async def _event(self, kind: str, cls: RecordClass = RecordClass.OPERATIONS, **payload: Any) -> None:
        log.info("ota: %s %s", kind, payload)
        self.bus.publish(kind, **payload)
        with contextlib.suppress(Exception):
            await self.store.append(cls, kind, payload)

    # ---- trial: commit or roll back ------------------------------------------------------------------------

    def code_mismatch(self) -> str | None:
        """Why the code running is not the slot's release, if it is not.

        `python3 -m hub` puts the working directory first on sys.path: started from a source checkout without
        -P, a slot's interpreter runs the checkout's hub. Committing (or installing again) on the strength of
        that code's health would be wrong, and it would see its own release as newer forever.
        """
        if self.mode != "slots":
            return None
        release = self.layout.version(self.slot)
        if release is None or release == __version__:
            return None
        where = Path(__file__).resolve().parents[1]  # this hub package
        return (
            f"the hub running is {__version__} from {where}, not slot {self.slot}'s release {release} "
            "(started with the working directory's code first on sys.path? the unit runs `python3 -P -m hub run`)"
        )

    def critical_problems(self) -> list[str]:
        """Why the hub is not healthy enough to commit: critical services not running, a stalled watchdog, or the
        release's own code not being what runs."""
        health = self._hub_health()
        out: list[str] = []
        mismatch = self.code_mismatch()
        if mismatch:
            out.append(mismatch)
        for name, service in (health.get("services") or {}).items():
            if name != self.name and service.get("critical") and service.get("state") != "running":
                out.append(f"{name} {service.get('state')}")
        if health.get("status") == "failing" and not out:
            out.extend(health.get("problems") or ["hub failing"])
        return out

    async def _watch_trial(self, trial: dict[str, Any]) -> None:
        self.phase = "trial"
        window = self.settings.health_window_s
        started = time.monotonic()
        healthy_since: float | None = None
        problems: list[str] = ["not checked yet"]
        while time.monotonic() - started < window:
            self.beat()
            problems = self.critical_problems()
            now = time.monotonic()
            if problems:
                healthy_since = None
            elif healthy_since is None:
                healthy_since = now
            elif now - healthy_since >= SETTLE_S:
                committed = await asyncio.to_thread(slots.commit, self.layout, health="critical services running")
                if committed is not None:
                    await asyncio.to_thread(self._install_guard)
                await self._report_events()
                self.phase = "idle"
                return
            await asyncio.sleep(0.5)
        reason = f"not healthy within {window:g} s: {'; '.join(problems)}"

        def roll_back() -> dict[str, Any] | None:
            with slots.locked(self.layout) as state:
                return slots.rollback(self.layout, state, reason)

        result = await asyncio.to_thread(roll_back)
        await self._report_events()
        self.phase = "rolled-back"
        log.error("ota: rolled back %s: %s (%s)", trial.get("version"), reason, result)
        self._request_restart(f"ota rollback of {trial.get('version')}")
        await asyncio.Event().wait()  # the hub is stopping

    # ---- checking, staging, installing ---------------------------------------------------------------------

    async def _updater(self) -> None:
        next_check = time.monotonic() + min(60.0, self.settings.check_interval_s)
        while True:
            self.beat()
            timeout = max(0.0, next_check - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._trigger.wait(), timeout=min(timeout, 60.0))
            if not self._trigger.is_set() and time.monotonic() < next_check:
                continue
            self._trigger.clear()
            next_check = time.monotonic() + self.settings.check_interval_s
            built = await self._check_and_stage()
            if built is None:
                self._install_now = False  # nothing to install: "now" does not carry over to a later release
            else:
                await self._install_when_allowed(built)

    def _client(self) -> Client:
        if self._client_factory is not None:
            return self._client_factory()
        from ota.client import UpdateClient
        from ota.manifest import parse_time
        from ota.timetrust import system_clock

        if not self.repo_url:
            raise OtaError("no release repository: set ota.repo_url or sync.cloud_url")
        try:
            root = self.settings.trusted_root.read_bytes()
        except OSError as exc:
            raise OtaError(f"cannot read the root of trust {self.settings.trusted_root}: {exc}") from None
        release = self.layout.release(self.slot or "a") or {}
        floor = None
        with contextlib.suppress(Exception):
            floor = parse_time(str(release["created_at"]))
        client = UpdateClient(
            self.layout.root / "metadata",
            self.repo_url,
            root,
            release.get("arch") or platform.machine(),
            ca_bundle=self.ca_bundle,
            max_blob_bytes=self.settings.max_blob_mb * 1024 * 1024,
            rate_limit=self.settings.download_rate_kbps * 1024 or None,
        )
        if not self.settings.trust_system_clock:
            client.now = system_clock(floor, client.cloud_time)
        return client

    async def _check_and_stage(self, staged: str | None = None) -> Built | None:
        """The newest release staged in the inactive slot, or None. With `staged` (a release already waiting
        for the window), None unless a release newer than that one has appeared."""
        self.phase = "checking"
        try:
            return await self._check_and_stage_inner(staged)
        except OtaError as exc:
            cls = RecordClass.SECURITY if isinstance(exc, SECURITY_ERRORS) else RecordClass.OPERATIONS
            result = "clock-untrusted" if isinstance(exc, ClockUntrustedError) else "failed"
            self.last_check = {"at": time.time(), "result": result, "error": str(exc)}
            await self._event("ota.check_failed", cls, error=str(exc), code=getattr(exc, "code", "ota_error"))
        except (InstallError, slots.SlotError, OSError) as exc:
            self.last_check = {"at": time.time(), "result": "failed", "error": str(exc)}
            await self._event("ota.install_failed", error=str(exc))
        finally:
            self.phase = "idle"
        return None

    async def _check_and_stage_inner(self, staged: str | None) -> Built | None:
        mismatch = self.code_mismatch()
        if mismatch:
            raise InstallError(f"not checking for updates: {mismatch}")
        client = await asyncio.to_thread(self._client)
        installed = __version__
        release = await asyncio.to_thread(client.check, installed)
        if release is None:
            self.last_check = {"at": time.time(), "result": "up-to-date", "version": installed}
            await self._event("ota.checked", result="up-to-date", version=installed)
            return None
        failed = self.state.get("failed_versions") or []
        if release.version in failed:
            self.last_check = {"at": time.time(), "result": "skipped", "version": release.version}
            await self._event("ota.checked", result="skipped-rolled-back", version=release.version)
            return None
        self.last_check = {"at": time.time(), "result": "available", "version": release.version}
        if staged is not None and not is_newer(release.version, staged):
            return None  # what waits for the window is still the newest: nothing to report again
        await self._event("ota.checked", result="available", version=release.version, installed=installed)
        plan = client.plan(release, have_blob(self.layout))
        self.phase = "downloading"
        self.progress = {"done": 0, "total": int(getattr(plan, "fetch_bytes", 0))}
        await self._event(
            "ota.download_started",
            version=release.version,
            fetch_bytes=self.progress["total"],
            reuse_bytes=int(getattr(plan, "reuse_bytes", 0)),
        )

        def progress(n: int) -> None:
            self.progress["done"] += n

        await asyncio.to_thread(client.fetch, plan, self.layout.staging, progress)
        await self._event("ota.downloaded", version=release.version, bytes=self.progress["total"])
        self.phase = "unpacking"
        built = await asyncio.to_thread(build_slot, self.layout, release.manifest_bytes, self.layout.staging / "blobs")
        self.staged = {"slot": built.slot, "version": built.version}
        await self._event(
            "ota.slot_built",
            version=built.version,
            slot=built.slot,
            files=built.files,
            reused=built.reused,
            downloaded=built.from_blobs,
        )
        return built

    async def why_wait(self) -> str | None:
        """None when an install may start now; otherwise why it waits (shown in health and on the page)."""
        if not self._install_now:
            now = self._wall().astimezone(self.tz)
            start, end = self.settings.window_start, self.settings.window_end
            if not in_window(now.time(), start, end):
                return f"outside the maintenance window {start:%H:%M}-{end:%H:%M}"
        return await self.broadcast_busy()

    async def broadcast_busy(self) -> str | None:
        if not self.bus.serves("broadcast.busy"):
            return None
        try:
            busy = await self.bus.call("broadcast.busy", timeout=5.0)
        except CommandError as exc:
            return f"cannot tell whether a broadcast is due ({exc})"
        if busy.get("playing"):
            playing = busy.get("now_playing")
            title = playing.get("title") if isinstance(playing, dict) else playing
            return f"a broadcast is playing ({title or 'queued'})"
        next_at = busy.get("next_at")
        if next_at:
            due = dt.datetime.fromisoformat(next_at)
            left = (due - self._wall()).total_seconds()
            if left <= self.settings.broadcast_margin_s:
                return f"a broadcast is due at {due.astimezone(self.tz):%H:%M} (in {max(left, 0) / 60:.0f} min)"
        return None

    async def _install_when_allowed(self, built: Built) -> None:
        self.phase = "waiting"
        # Broadcast events (started, idle) wake the check at once: an install right after a broadcast ends.
        sub = self.bus.subscribe("broadcast")
        recheck_at = time.monotonic() + self.settings.check_interval_s
        try:
            while True:
                self.beat()
                reason = await self.why_wait()
                if reason != self.waiting and reason is not None:
                    await self._event("ota.install_waiting", version=built.version, reason=reason)
                self.waiting = reason
                if reason is None:
                    break
                if self._trigger.is_set() or time.monotonic() >= recheck_at:
                    # A release can wait all day for the window: if a fix of it is published meanwhile, the
                    # box installs the fix, not the release it replaces.
                    recheck_at = time.monotonic() + self.settings.check_interval_s
                    self._trigger.clear()
                    newer = await self._check_and_stage(staged=built.version)
                    self.phase = "waiting"
                    if newer is None and self.layout.version(built.slot) != built.version:
                        # Building a newer release failed half-way (disk full…): the staged one is gone too.
                        # Back to the regular checks, which stage again; never switch to an incomplete slot.
                        self.staged, self.waiting, self.phase = None, None, "idle"
                        return
                    if newer is not None:
                        log.info("ota: %s replaces %s, which was waiting", newer.version, built.version)
                        built = newer
                        self.waiting = None  # said again for the new release
                        continue
                self._trigger.clear()
                await self._wake(sub, WAIT_POLL_S)
        finally:
            sub.close()
        self._install_now = False
        self.phase = "switching"
        trial = await asyncio.to_thread(slots.begin_trial, self.layout, built.slot, config_path=self.config_path)
        await self._report_events()
        self._request_restart(f"ota install of {trial['version']} into slot {trial['slot']}")
        await asyncio.Event().wait()  # the hub is stopping; systemd starts `current`

    async def _wake(self, sub: Subscription, timeout: float) -> None:
        """Until a command, a broadcast event or the timeout, whichever comes first."""
        waiters = {asyncio.ensure_future(self._trigger.wait()), asyncio.ensure_future(sub.get())}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # ---- balena mode ---------------------------------------------------------------------------------------

    async def _run_balena(self) -> None:
        assert self.lock is not None
        assert self.balena_env is not None
        await self._event("ota.balena_mode", version=__version__, device=self.balena_env.device_uuid)
        sub = self.bus.subscribe("broadcast")
        try:
            while True:
                self.beat()
                busy = await self.broadcast_busy()
                if busy and not self.lock.held:
                    if self.lock.acquire():
                        await self._event("ota.lock_taken", reason=busy)
                elif not busy and self.lock.held:
                    self.lock.release()
                    await self._event("ota.lock_released")
                if busy is None:
                    self.waiting = None
                elif self.lock.held:
                    self.waiting = f"holding the balena update lock: {busy}"
                else:
                    self.waiting = f"could not take the balena update lock ({self.lock.last_refusal}): {busy}"
                await self._wake(sub, WAIT_POLL_S)
        finally:
            sub.close()

    # ---- commands ------------------------------------------------------------------------------------------

    async def _cmd_install_now(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.mode != "slots":
            raise CommandError(self._not_here())
        self._install_now = True
        self._trigger.set()
        await self._event("ota.install_requested", who=str(data.get("who") or ""))
        return {"accepted": True, "phase": self.phase, "waiting": self.waiting}

    async def _cmd_check_now(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.mode != "slots":
            raise CommandError(self._not_here())
        self._trigger.set()
        return {"accepted": True, "phase": self.phase}

    async def _cmd_status(self, data: dict[str, Any]) -> dict[str, Any]:
        return self.health()

    def _not_here(self) -> str:
        if self.mode == "balena":
            return "this hub runs under balenaOS: the balena supervisor installs updates"
        if not self.settings.enabled:
            return "updates are turned off (ota.enabled = false)"
        return f"this hub does not run from an update slot under {self.layout.root}: updates are not installed"

    # ---- health --------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        state = self.state
        previous = state.get("previous")
        out: dict[str, Any] = {
            "mode": self.mode,
            "version": __version__,
            "slot": self.slot,
            "previous_slot": previous,
            "previous_version": self.layout.version(previous) if self.mode == "slots" else None,
            "trial": state.get("trial"),
            "last_result": state.get("last_result"),
            "phase": self.phase,
            "waiting": self.waiting,
            "last_check": self.last_check,
            "staged": self.staged,
            "window": f"{self.settings.window_start:%H:%M}-{self.settings.window_end:%H:%M}",
        }
        if self.phase == "downloading":
            out["progress"] = dict(self.progress)
        if self.mode == "balena" and self.lock is not None:
            out["lock_held"] = self.lock.held
        return out

    def problems(self) -> list[str]:
        out: list[str] = []
        last = self.state.get("last_result") or {}
        recent = time.time() - float(last.get("at") or 0) < ROLLBACK_SHOWN_S
        if last.get("result") == "rolled-back" and recent:
            out.append(f"release {last.get('failed_version')} was rolled back: {last.get('reason')}")
        if self.last_check and self.last_check.get("result") == "failed":
            out.append(f"update check failed: {self.last_check.get('error')}")
        elif mismatch := self.code_mismatch():
            out.append(mismatch)
        return out
