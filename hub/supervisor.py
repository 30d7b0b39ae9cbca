"""Runs the services: restarts a crashed one with exponential backoff while the others go on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.bus import EventBus
from hub.config.settings import SupervisorSection
from hub.service import Service, ServiceState

log = logging.getLogger(__name__)


class ServiceExitedError(RuntimeError):
    pass


@dataclass
class ServiceStatus:
    state: ServiceState = ServiceState.STOPPED
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    started_at: float | None = None  # monotonic
    next_restart_in: float | None = None


class _Runner:
    def __init__(self, service: Service, settings: SupervisorSection, bus: EventBus) -> None:
        self.service = service
        self.settings = settings
        self.bus = bus
        self.status = ServiceStatus()
        self.task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._delay = settings.restart_initial_s

    async def loop(self) -> None:
        svc = self.service
        while not self._stopping.is_set():
            self.status.state = ServiceState.STARTING
            started = time.monotonic()
            try:
                await svc.start()
                svc.beat()
                self.status.state = ServiceState.RUNNING
                self.status.started_at = started
                self.bus.publish("supervisor.service_running", service=svc.name)
                await svc.run()
                raise ServiceExitedError(f"{svc.name}.run() returned")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    return
                await self._crashed(exc, time.monotonic() - started)

    async def _crashed(self, exc: Exception, ran_for: float) -> None:
        svc = self.service
        # Not "running" from here on: health must never report a crashed service as running while stop() runs.
        self.status.state = ServiceState.BACKOFF
        self.status.restarts += 1
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        self.status.last_error_at = time.time()
        log.error(
            "service %s crashed after %.1fs: %s\n%s",
            svc.name,
            ran_for,
            self.status.last_error,
            "".join(traceback.format_exception(exc)).rstrip(),
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(svc.stop(), timeout=5)
        if ran_for >= self.settings.stable_after_s:
            self._delay = self.settings.restart_initial_s
        delay = self._delay
        self._delay = min(self._delay * 2, self.settings.restart_max_s)
        self.status.next_restart_in = delay
        self.bus.publish("supervisor.service_crashed", service=svc.name, error=self.status.last_error, delay=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        self.status.next_restart_in = None

    async def stop(self, timeout: float) -> None:
        self._stopping.set()
        self.status.state = ServiceState.STOPPING
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
                await asyncio.wait_for(self.task, timeout=timeout)
        try:
            await asyncio.wait_for(self.service.stop(), timeout=timeout)
        except Exception as exc:
            log.warning("service %s did not stop cleanly: %s", self.service.name, exc)
        self.status.state = ServiceState.STOPPED


class Supervisor:
    def __init__(self, services: Sequence[Service], settings: SupervisorSection, bus: EventBus) -> None:
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique: {names}")
        self.settings = settings
        self.bus = bus
        self._runners = {s.name: _Runner(s, settings, bus) for s in services}

    @property
    def services(self) -> list[Service]:
        return [r.service for r in self._runners.values()]

    def start(self) -> None:
        for runner in self._runners.values():
            runner.status.state = ServiceState.STARTING
            runner.task = asyncio.create_task(runner.loop(), name=f"service:{runner.service.name}")

    async def wait_running(self, timeout: float) -> bool:
        """Wait until every service has started once (or crashed: it is then in backoff, not blocking)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r.status.state != ServiceState.STARTING for r in self._runners.values()):
                return True
            await asyncio.sleep(0.01)
        return False

    async def stop(self, timeout: float = 3.0) -> None:
        """Stop services in reverse order of start: later ones may depend on earlier ones."""
        for runner in reversed(list(self._runners.values())):
            await runner.stop(timeout)

    def status(self, name: str) -> ServiceStatus:
        return self._runners[name].status

    def health(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for name, runner in self._runners.items():
            st = runner.status
            svc = runner.service
            problems = svc.problems() if st.state == ServiceState.RUNNING else []
            stale = svc.critical and st.state == ServiceState.RUNNING and not self._fresh(svc)
            if stale:
                problems = [*problems, f"no heartbeat for {svc.heartbeat_age():.0f}s"]
            out[name] = {
                "state": st.state.value,
                "ok": st.state == ServiceState.RUNNING and not problems,
                "critical": svc.critical,
                "restarts": st.restarts,
                "last_error": st.last_error,
                "last_error_at": st.last_error_at,
                "uptime_s": round(now - st.started_at, 1)
                if st.started_at and st.state == ServiceState.RUNNING
                else None,
                "next_restart_in_s": st.next_restart_in,
                "heartbeat_age_s": round(svc.heartbeat_age(), 1),
                "problems": problems,
                "details": _safe_details(svc),
            }
        return out

    def watchdog_ok(self) -> tuple[bool, str]:
        """True while every critical service runs and beats; the reason otherwise."""
        for runner in self._runners.values():
            svc = runner.service
            if not svc.critical:
                continue
            # A short backoff is the supervisor's to handle; only a critical service that stays down or
            # silent past the heartbeat timeout is left to systemd, which restarts the whole hub.
            if not self._fresh(svc):
                state = runner.status.state.value
                return False, f"critical service {svc.name} {state}, silent for {svc.heartbeat_age():.0f}s"
        return True, "ok"

    def _fresh(self, svc: Service) -> bool:
        return svc.heartbeat_age() <= self.settings.heartbeat_timeout_s


def _safe_details(svc: Service) -> dict[str, Any]:
    try:
        return svc.health()
    except Exception as exc:  # a broken health() must not break /api/health for everyone
        return {"error": f"health() failed: {type(exc).__name__}: {exc}"}
