"""`hub run`: opens the store, starts the services under the supervisor, talks to systemd, stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers import airquality, audio, power, serial_link
from drivers.platform import Board, detect_board, use_simulated
from drivers.relays import Relays
from drivers.relays import build as build_relays
from hub import __version__, clock, logbuffer
from hub.audio.service import AudioService
from hub.broadcast.prepared import Renderer
from hub.broadcast.service import BroadcastService, LazyRenderer, MediaStore
from hub.bus import EventBus
from hub.clock import SystemClock
from hub.config.settings import Secrets, Settings
from hub.enroll import TokenSource
from hub.lighting.schedule import Place
from hub.lighting.service import LightingService
from hub.portal.service import PortalService
from hub.power.service import PowerService
from hub.relays.service import RelayService
from hub.sensors.service import SensorsService
from hub.service import Service
from hub.site import SITE_KEY, ZONES_KEY, SiteSettings, apply_site, apply_zones
from hub.store import RecordClass, Store, StoreLimits, Transaction
from hub.store.service import StoreService
from hub.supervisor import Supervisor
from hub.sync.clock_check import ClockCheck
from hub.sync.commands import Hooks
from hub.sync.hooks import hub_hooks
from hub.sync.inbox import CommandInbox
from hub.sync.uploader import Uploader
from hub.systemd_notify import Notifier
from hub.telemetry.service import VitalsService
from hub.updates.service import UpdateService
from hub.web.context import WebContext
from hub.web.server import ManagementServer

log = logging.getLogger(__name__)

STOP_BUDGET_S = 4.0  # systemd and the issue allow 5 s; keep a margin for the final commit
RUNNING_KEY = "hub.running"
INCIDENTS_KEY = "hub.incidents"
INCIDENTS_KEPT = 20


class Hub:
    def __init__(self, settings: Settings, secrets: Secrets, config_path: Path) -> None:
        self.settings = settings
        self.secrets = secrets
        self.config_path = config_path
        self.board: Board = detect_board()
        self.simulated = use_simulated(settings.hub.hardware, self.board)
        self.bus = EventBus()
        self.notifier = Notifier()
        self.started_mono = time.monotonic()
        self.store: Store | None = None
        self.relays: Relays | None = None
        self._simulators: list[Callable[[], object]] = []  # stopped last, after the drivers that use them
        self.power: power.PowerDrivers | None = None
        self._stopped = asyncio.Event()
        self.supervisor: Supervisor | None = None
        self.previous_run: dict[str, Any] | None = None
        self._stop = asyncio.Event()
        self._stop_reason = "stopped"
        self.restart_requested = False
        self.logs = logbuffer.install()
        self.site: SiteSettings | None = None

    # ---- composition --------------------------------------------------------------------------

    def build_sensors(self, store: Store) -> SensorsService:
        s = self.settings
        link = None
        if s.sensor_node is not None:
            link, simulator = serial_link.build(s.sensor_node, self.simulated)
            if simulator is not None:
                self._simulators.append(simulator.stop)
        air = None
        if s.air_quality.source != "none" and (s.air_quality.source == "uart" or link is not None):
            air, air_sim = airquality.build(s.air_quality, self.simulated, node=link)
            if air_sim is not None:
                self._simulators.append(air_sim.stop)
        return SensorsService(
            link, air, store, self.bus, s.sensors.interval_s, settings=s.sensors, clock=SystemClock(s.hub.timezone)
        )

    def build_services(self, store: Store, relays: Relays) -> list[Service]:
        s = self.settings
        player = audio.build(s.audio, self.simulated, data_dir=s.hub.data_dir)

        made: dict[str, Any] = {}

        def media_library() -> MediaStore:
            # Imported at the first broadcast or upload, not at start: it brings PyAV and numpy (see LazyRenderer).
            from hub.broadcast.media import MediaLibrary

            if "library" not in made:
                made["library"] = MediaLibrary(
                    s.hub.data_dir / "media",
                    store,
                    max_bytes=s.broadcast.media_max_mb * 1024 * 1024,
                    target_lufs=s.broadcast.loudness_target_lufs,
                )
            library: MediaStore = made["library"]
            return library

        def media_renderer() -> Renderer:
            from hub.broadcast.render import MediaRenderer

            media_library()
            return MediaRenderer(made["library"], s.hub.data_dir / "speech-cache")

        tokens = TokenSource(s.hub.data_dir, self.secrets.cloud_token)  # enrolled token file, else secrets
        services: list[Service] = [
            StoreService(store),
            ManagementServer(
                s.management,
                WebContext(
                    settings=s,
                    secrets=self.secrets,
                    store=store,
                    bus=self.bus,
                    health=self.health,
                    config_path=self.config_path,
                    logs=self.logs,
                    request_restart=self.request_restart,
                ),
            ),
            RelayService(relays, store, self.bus),
            # after the relay service, so that it is subscribed before lighting's first declaration
            LightingService(
                s.lighting,
                Place.create(s.village.latitude, s.village.longitude, s.hub.timezone),
                store,
                self.bus,
                relay_names=relays.bank.names,
            ),
            # One player: the audio service reports the device's health, the broadcast service plays on it.
            AudioService(player),
            # After the relay service, like lighting: subscribed before its first declaration (amplifier off).
            BroadcastService(
                s.broadcast,
                store,
                self.bus,
                player,
                LazyRenderer(media_renderer),
                tz=s.hub.timezone,
                relay_names=relays.bank.names,
                media=media_library,
            ),
            self.build_sensors(store),
            Uploader(store, s.sync, s.hub.id, tokens, self.bus),
            CommandInbox(store, s, tokens, self.bus, self._command_hooks(store, relays, tokens)),
            ClockCheck(store, self.bus),
            VitalsService(store, s.telemetry, s.hub.data_dir),
            UpdateService(
                s.ota,
                store,
                self.bus,
                health=self.health,
                request_restart=self.request_restart,
                data_dir=s.hub.data_dir,
                config_path=self.config_path,
                cloud_url=str(s.sync.cloud_url) if s.sync.cloud_url else None,
                ca_bundle=s.sync.ca_bundle,
                tz=s.hub.timezone,
            ),
        ]
        if s.camera.cameras:
            from hub.camera.service import CameraService  # numpy, PyAV and the TFLite runtime only with cameras

            services.append(CameraService(s.camera, store, self.bus, s.hub.data_dir, simulated=self.simulated))
        if s.live.enabled:
            from hub.live.service import LiveService  # aiortc itself only with the first session

            services.append(LiveService(s.live, s.camera, store, self.bus, s.hub.data_dir, simulated=self.simulated))
        if s.power is not None:
            self.power = power.build(s.power, self.simulated, prepare_shutdown=self.prepare_power_off)
            services.append(PowerService(self.power, store, self.bus))
        if s.portal is not None and s.portal.enabled:
            services.append(
                PortalService(
                    s.portal,
                    store=store,
                    bus=self.bus,
                    data_dir=s.hub.data_dir,
                    management=s.management,
                    simulated=self.simulated,
                    village=s.village.name,
                    timezone=s.hub.timezone,
                )
            )
        return services

    def _command_hooks(self, store: Store, relays: Relays, tokens: TokenSource) -> Hooks:
        return hub_hooks(
            settings=self.settings,
            secrets=self.secrets,
            store=store,
            health=self.health,
            logs=self.logs,
            config_path=self.config_path,
            request_restart=self.request_restart,
            relay_names=relays.bank.names,
            token=tokens,
        )

    async def prepare_power_off(self) -> None:
        """The battery is about to run out: record it, then stop everything cleanly before the command runs."""
        plan = self.power.plan if self.power else None
        reason = plan.reason if plan else "power-off"
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.append(RecordClass.SAFETY, "power.shutdown", {"reason": reason})
        self.request_stop(f"power-off: {reason}")
        await self._stopped.wait()

    # ---- health -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        services = self.supervisor.health() if self.supervisor else {}
        problems: list[str] = []
        failing = False
        for name, h in services.items():
            if not h["ok"]:
                problems.extend(f"{name}: {p}" for p in (h["problems"] or [h["state"]]))
                failing = failing or (h["critical"] and h["state"] != "running")
        watchdog_ok, reason = self.supervisor.watchdog_ok() if self.supervisor else (False, "starting")
        if not watchdog_ok:
            failing = True
            problems.append(reason)
        status = "failing" if failing else ("degraded" if problems else "ok")
        return {
            "hub_id": self.settings.hub.id,
            "village": self.settings.village.name,
            "version": __version__,
            "status": status,
            "problems": problems,
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "boot_id": clock.boot_id(),
            "hardware": {
                "simulated": self.simulated,
                "board": self.board.family,
                "model": self.board.model,
                "machine": self.board.machine,
            },
            "previous_run": self.previous_run,
            "services": services,
            "outbox": self.store.stats().as_dict() if self.store else None,
        }

    def status_line(self) -> str:
        if not self.supervisor or not self.store:
            return "starting"
        services = self.supervisor.health()
        ok = sum(1 for h in services.values() if h["ok"])
        counters = self.store.counters()
        sync = services.get("sync", {}).get("details", {})
        return (
            f"{ok}/{len(services)} services ok; outbox {counters['pending_count']} pending, "
            f"last seq {counters['last_seq']}; cloud {sync.get('link', '?')}"
        )

    # ---- lifecycle ----------------------------------------------------------------------------

    def _record_start(self, tx: Transaction) -> None:
        """Note how the previous run ended: a run still marked as running did not stop cleanly."""
        previous = tx.conn.execute("SELECT value FROM state WHERE key = ?", (RUNNING_KEY,)).fetchone()
        alive = tx.conn.execute("SELECT value FROM state WHERE key = 'hub.alive'").fetchone()
        prev = json.loads(previous[0]) if previous else None
        last_alive = json.loads(alive[0]) if alive else None
        if prev:
            same_boot = prev.get("boot_id") == clock.boot_id()
            self.previous_run = {"clean": False, "same_boot": same_boot, **prev, "last_alive": last_alive}
            # A new boot id means the whole box went down (power cut, brown-out, kernel crash);
            # the same boot means only the hub died (killed by the watchdog, out of memory, a bug).
            kind = "power.lost" if not same_boot else "hub.crashed"
            tx.append(
                RecordClass.SAFETY if not same_boot else RecordClass.OPERATIONS,
                kind,
                {"previous": prev, "last_alive": last_alive, "boot_id": clock.boot_id()},
            )
            # Kept on the box too (the outbox forgets what it delivered): the technician page lists recent ones.
            row = tx.conn.execute("SELECT value FROM state WHERE key = ?", (INCIDENTS_KEY,)).fetchone()
            incidents = json.loads(row[0]) if row else []
            down_at = (last_alive or {}).get("at") if isinstance(last_alive, dict) else None
            incidents.append({"kind": kind, "at": clock.wall(), "down_at": down_at})
            tx.set_state(INCIDENTS_KEY, incidents[-INCIDENTS_KEPT:])
        else:
            self.previous_run = {"clean": True} if alive else None
        run = {
            "pid": os.getpid(),
            "boot_id": clock.boot_id(),
            "started_at": clock.wall(),
            "version": __version__,
        }
        tx.set_state(RUNNING_KEY, run)
        tx.append(
            RecordClass.OPERATIONS,
            "hub.started",
            {
                "version": __version__,
                "board": self.board.family,
                "model": self.board.model,
                "simulated_hardware": self.simulated,
                "previous_run_clean": None if self.previous_run is None else self.previous_run["clean"],
            },
        )
        tx.set_state("hub.alive", {"at": clock.wall(), "boot_id": clock.boot_id(), "uptime": clock.uptime()})

    @staticmethod
    def _record_stop(tx: Transaction, reason: str) -> None:
        tx.conn.execute("DELETE FROM state WHERE key = ?", (RUNNING_KEY,))
        tx.set_state("hub.alive", {"at": clock.wall(), "boot_id": clock.boot_id(), "uptime": clock.uptime()})
        tx.append(RecordClass.OPERATIONS, "hub.stopped", {"reason": reason, "uptime_s": round(clock.uptime(), 1)})

    # ---- running ------------------------------------------------------------------------------

    def request_restart(self, reason: str) -> None:
        """Stop cleanly, then start again (systemd's Restart=always, or `hub run` re-executing itself)."""
        self.restart_requested = True
        self.request_stop(reason)

    def request_stop(self, reason: str) -> None:
        log.info("stop requested: %s", reason)
        self._stop_reason = reason
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.bus.bind(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        s = self.settings
        # Before anything else: every relay to its safe state (amplifier off, lights as configured), so a
        # restart never leaves a relay in whatever state the last run or the power cut left it.
        relays = build_relays(s.relays, self.simulated)
        self.relays = relays
        await relays.bank.safe_state("boot")
        store = await asyncio.to_thread(Store.open, s.hub.data_dir, StoreLimits.from_settings(s.store))
        self.store = store
        # The install wizard's site details (village, coordinates, cloud URL) over hub.toml's.
        self.settings, self.site = apply_site(self.settings, store.get_state(SITE_KEY))
        self.settings = apply_zones(self.settings, store.get_state(ZONES_KEY))
        await store.write(self._record_start)
        self.supervisor = Supervisor(self.build_services(store, relays), s.supervisor, self.bus)
        self.supervisor.start()
        await self.supervisor.wait_running(timeout=10)
        ready_after = time.monotonic() - self.started_mono
        log.info(
            "village hub %s ready in %.2fs (%s hardware); %s",
            __version__,
            ready_after,
            "simulated" if self.simulated else self.board.model,
            self.status_line(),
        )
        self.notifier.ready(self.status_line())
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        await self._stop.wait()
        self.notifier.stopping()
        watchdog.cancel()
        await self._shutdown()
        self._stopped.set()
        if self.power is not None and self.power.plan.state in ("preparing", "running"):
            # The shutdown command runs after everything is stopped and stored; wait for it before exiting.
            result = await asyncio.wait_for(self.power.plan.wait(), timeout=120)
            log.info("power-off command finished: %s", result)
        return 0

    async def _watchdog(self) -> None:
        """Feed systemd only while the loop runs on time and every critical service beats."""
        interval = self.notifier.watchdog_interval() or 5.0
        tick = min(interval, 5.0)
        expected = time.monotonic() + tick
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            lag = now - expected
            expected = now + tick
            assert self.supervisor is not None
            ok, reason = self.supervisor.watchdog_ok()
            if lag > interval:
                ok, reason = False, f"event loop blocked for {lag:.1f}s"
            if ok:
                self.notifier.watchdog()
            else:
                log.error("not feeding the watchdog: %s", reason)
            self.notifier.status(self.status_line() if ok else f"unhealthy: {reason}")

    async def _shutdown(self) -> None:
        deadline = time.monotonic() + STOP_BUDGET_S
        assert self.supervisor is not None
        assert self.store is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.supervisor.stop(timeout=1.0), timeout=STOP_BUDGET_S - 1.0)
        if self.relays is not None:
            try:
                await asyncio.wait_for(self.relays.bank.safe_state("shutdown"), timeout=1.0)
                await asyncio.wait_for(self.relays.close(), timeout=0.5)
            except Exception:
                log.exception("could not put the relays in their safe state")
        for stop_simulator in self._simulators:
            try:
                stop_simulator()
            except Exception:
                log.exception("could not stop a simulator")
        store = self.store
        reason = self._stop_reason
        try:
            await asyncio.wait_for(store.write(lambda tx: self._record_stop(tx, reason)), timeout=1.0)
        except Exception:
            log.exception("could not record the stop")
        remaining = max(0.1, deadline - time.monotonic())
        await asyncio.to_thread(store.close, remaining)
        log.info("stopped (%s)", reason)
