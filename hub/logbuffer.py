"""The hub's recent log lines, kept in memory for the technician page's live log and the diagnostics bundle.

journald keeps the full log on the box; this ring is what the page can show without a shell, and it works the
same in a container where there is no journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class LogLine:
    id: int
    at: float
    level: str
    logger: str
    service: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "level": self.level,
            "logger": self.logger,
            "service": self.service,
            "message": self.message,
        }


def service_of(logger: str) -> str:
    """The part of the hub a logger belongs to: hub.lighting.service -> lighting, drivers.relays.gpio -> relays."""
    parts = logger.split(".")
    if parts[0] in ("hub", "drivers") and len(parts) > 1:
        return parts[1]
    return parts[0]


def level_at_least(level: str, minimum: str) -> bool:
    try:
        return LEVELS.index(level) >= LEVELS.index(minimum)
    except ValueError:
        return True


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: deque[LogLine] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._lock_lines = threading.Lock()
        self._listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[LogLine]]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        except Exception:  # a broken format string in someone's log call must not break logging
            message = str(record.msg)
        with self._lock_lines:
            line = LogLine(
                next(self._ids), record.created, record.levelname, record.name, service_of(record.name), message
            )
            self.lines.append(line)
            listeners = list(self._listeners)
        for loop, queue in listeners:
            with contextlib.suppress(RuntimeError):  # the loop closed while we were logging
                loop.call_soon_threadsafe(self._offer, queue, line)

    @staticmethod
    def _offer(queue: asyncio.Queue[LogLine], line: LogLine) -> None:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(line)

    def recent(self, limit: int = 500, service: str | None = None, level: str = "DEBUG") -> list[LogLine]:
        with self._lock_lines:
            lines = list(self.lines)
        picked = [
            line for line in lines if (not service or line.service == service) and level_at_least(line.level, level)
        ]
        return picked[-limit:]

    def services(self) -> list[str]:
        with self._lock_lines:
            return sorted({line.service for line in self.lines})

    def listen(self) -> asyncio.Queue[LogLine]:
        queue: asyncio.Queue[LogLine] = asyncio.Queue(maxsize=1000)
        with self._lock_lines:
            self._listeners.add((asyncio.get_running_loop(), queue))
        return queue

    def unlisten(self, queue: asyncio.Queue[LogLine]) -> None:
        with self._lock_lines:
            self._listeners = {(loop, q) for loop, q in self._listeners if q is not queue}


_installed: LogBuffer | None = None


def install(capacity: int = 2000) -> LogBuffer:
    """One buffer per process, on the root logger (called by `hub run`; tests get their own)."""
    global _installed
    if _installed is None:
        _installed = LogBuffer(capacity)
        logging.getLogger().addHandler(_installed)
    return _installed
