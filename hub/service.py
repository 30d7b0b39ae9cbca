"""The shape every hub subsystem has: start, run, stop, health — and a heartbeat the watchdog trusts."""

from __future__ import annotations

import abc
import enum
import time
from typing import Any, ClassVar


class ServiceState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed; waiting to be restarted
    STOPPING = "stopping"
    STOPPED = "stopped"


class Service(abc.ABC):
    """A hub subsystem run by the supervisor.

    `start` acquires what the service needs (raising means it could not start); `run` is its main loop and
    returns only when cancelled; `stop` releases resources and must be prompt. A crash in `start` or `run`
    makes the supervisor call `stop`, wait with backoff, and start it again.

    A *critical* service must call `beat()` at least every `heartbeat_timeout_s`: while one of them is
    silent, the systemd watchdog is not fed and systemd restarts the whole hub.
    """

    name: ClassVar[str]
    critical: ClassVar[bool] = False

    def __init__(self) -> None:
        self.last_beat = time.monotonic()

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def heartbeat_age(self) -> float:
        return time.monotonic() - self.last_beat

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources. Default: nothing to acquire."""

    @abc.abstractmethod
    async def run(self) -> None:
        """The service's main loop."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Default: nothing to release."""

    def health(self) -> dict[str, Any]:
        """Service-specific details for /api/health, `hub doctor` and the technician page."""
        return {}

    def problems(self) -> list[str]:
        """Conditions that make this service unhealthy even though it runs (e.g. cloud unreachable)."""
        return []
