"""Watches the UPS: mains lost and restored, battery low, as safety events the moment they happen.

The countdown to a clean power-off on a flat battery is drivers.power's ShutdownPlan; what the hub does
before the command runs (record it, stop everything, flush the store) is the Hub's `prepare_power_off`.
"""

from __future__ import annotations

import logging
from typing import Any

from drivers.power import PowerDrivers, check_watchdog
from hub.bus import EventBus
from hub.service import Service
from hub.store import RecordClass, Store

log = logging.getLogger(__name__)

EVENT_CLASS = {
    "mains_lost": RecordClass.SAFETY,
    "mains_restored": RecordClass.SAFETY,
    "battery_low": RecordClass.SAFETY,
    "battery_ok": RecordClass.OPERATIONS,
}


class PowerService(Service):
    name = "power"

    def __init__(self, power: PowerDrivers, store: Store, bus: EventBus) -> None:
        super().__init__()
        self.power = power
        self.store = store
        self.bus = bus
        self.events = 0

    async def start(self) -> None:
        await self.power.monitor.start()

    async def stop(self) -> None:
        await self.power.monitor.stop()
        await self.power.plan.close()

    async def run(self) -> None:
        self.beat()
        async for event in self.power.monitor.events():
            self.beat()
            self.events += 1
            payload = event.as_dict()
            log.warning("power: %s (battery %s V)", event.kind, event.battery_v)
            await self.store.append(EVENT_CLASS[event.kind], f"power.{event.kind}", payload)
            self.bus.publish(f"power.{event.kind}", **payload)

    def health(self) -> dict[str, Any]:
        plan = self.power.plan
        return {
            "ups": self.power.monitor.health().as_dict(),
            "rtc": self.power.rtc.health().as_dict(),
            "watchdog": check_watchdog().as_dict(),
            "shutdown": {
                "state": plan.state,
                "reason": plan.reason,
                "command": plan.command,
                "history": plan.history[-10:],
            },
            "simulated": self.power.simulation is not None,
        }

    def problems(self) -> list[str]:
        out = []
        ups = self.power.monitor.health()
        if not ups.ok:
            out.append(f"UPS {ups.state}" + (f": {ups.last_error}" if ups.last_error else ""))
        if self.power.plan.state in ("armed", "preparing", "running"):
            out.append(f"power-off {self.power.plan.state}: {self.power.plan.reason}")
        return out
