"""Sends the box's vitals (load, memory, disk, temperature) to the outbox at a fixed interval."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

from hub import clock, sysinfo
from hub.config.settings import TelemetrySection
from hub.service import Service
from hub.store import RecordClass, Store, Transaction


class VitalsService(Service):
    name = "telemetry"

    def __init__(self, store: Store, settings: TelemetrySection, data_dir: Path) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.data_dir = data_dir
        self.last: dict[str, Any] | None = None
        self.samples = 0

    async def run(self) -> None:
        while True:
            sample = await asyncio.to_thread(sysinfo.vitals, self.data_dir)
            await self.store.write(functools.partial(self._record, sample=sample))
            self.last = sample
            self.samples += 1
            self.beat()
            await asyncio.sleep(self.settings.vitals_interval_s)

    @staticmethod
    def _record(tx: Transaction, *, sample: dict[str, Any]) -> None:
        tx.append(RecordClass.TELEMETRY, "telemetry.vitals", sample)
        # The last moment the hub was known alive: after a power cut, the outage is dated from it.
        tx.set_state("hub.alive", {"at": clock.wall(), "boot_id": clock.boot_id(), "uptime": clock.uptime()})

    def health(self) -> dict[str, Any]:
        return {"interval_s": self.settings.vitals_interval_s, "samples": self.samples, "last": self.last}

    def problems(self) -> list[str]:
        if not self.last:
            return []
        out = []
        disk = self.last["disk"]
        if disk["total_bytes"] and disk["free_bytes"] / disk["total_bytes"] < 0.05:
            out.append(f"disk almost full: {disk['free_bytes'] // 2**20} MiB free")
        temp = self.last.get("cpu_temp_c")
        if temp is not None and temp >= 80:
            out.append(f"CPU hot: {temp:.0f} °C")
        return out
