"""The store as a supervised service: its writer's heartbeat feeds the watchdog; its health is the outbox's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hub.service import Service
from hub.store.store import Store

# The writer wakes at least once a second; this long without a beat means it is stuck (e.g. in fsync).
WRITER_STALL_S = 10.0


class StoreService(Service):
    name = "store"
    critical = True

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    async def run(self) -> None:
        while True:
            if not self.store.writer_alive():
                raise RuntimeError("store writer thread has died")
            if time.monotonic() - self.store.last_beat < WRITER_STALL_S:
                self.beat()
            await asyncio.sleep(1.0)

    def health(self) -> dict[str, Any]:
        stats = self.store.stats()
        size = sum(p.stat().st_size for p in self.store.path.parent.glob(self.store.path.name + "*") if p.is_file())
        return {
            "path": str(self.store.path),
            "file_bytes": size,
            "commits": self.store.commits,
            "writes": self.store.committed_ops,
            "writer_last_beat_s": round(time.monotonic() - self.store.last_beat, 1),
            "last_error": self.store.last_error,
            "reset": None
            if self.store.reset_report is None
            else {
                "moved_to": str(self.store.reset_report.moved_to),
                "problems": self.store.reset_report.problems,
            },
            "outbox": stats.as_dict(),
        }

    def problems(self) -> list[str]:
        out = []
        stats = self.store.stats()
        if any(stats.dropped.values()):
            dropped = ", ".join(f"{k} {v}" for k, v in stats.dropped.items() if v)
            out.append(f"outbox was full and evicted records: {dropped}")
        if self.store.reset_report is not None:
            out.append(f"database was corrupt and was moved to {self.store.reset_report.moved_to}")
        if self.store.last_error:
            out.append(self.store.last_error)
        return out
