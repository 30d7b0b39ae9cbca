"""Reads the sensor node and the air-quality sensor, and records what they say.

Raw readings go to the outbox as telemetry at a fixed interval; a cabinet door opening is a security
event (tamper) the moment the node reports it; the node closing the valve by itself (fail-safe, maximum
duration) and the link coming and going are operations events. Calibration, air-quality indices and
thresholds are the sensors issue's work on top of these readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from typing import Any

from drivers.airquality import AirQualityReading, AirQualitySensor, AirQualityUnavailable
from drivers.serial_link import NodeEvent, NodeEventKind, NodeLinkError, SerialNodeLink
from hub.bus import EventBus
from hub.service import Service
from hub.store import RecordClass, Store

log = logging.getLogger(__name__)

AIR_POLL_S = 2.0

EVENT_CLASS = {
    NodeEventKind.DOOR_OPENED: RecordClass.SECURITY,
    NodeEventKind.DOOR_CLOSED: RecordClass.SECURITY,
    NodeEventKind.VALVE_CLOSED: RecordClass.OPERATIONS,
    NodeEventKind.CONNECTED: RecordClass.OPERATIONS,
    NodeEventKind.DISCONNECTED: RecordClass.OPERATIONS,
}


class SensorsService(Service):
    name = "sensors"

    def __init__(
        self,
        link: SerialNodeLink | None,
        air: AirQualitySensor | None,
        store: Store,
        bus: EventBus,
        interval_s: float,
    ) -> None:
        super().__init__()
        self.link = link
        self.air = air
        self.store = store
        self.bus = bus
        self.interval_s = interval_s
        self.last_soil: dict[str, Any] | None = None
        self.last_air: dict[str, Any] | None = None
        self.events = 0
        self._air_samples: list[AirQualityReading] = []

    async def start(self) -> None:
        if self.link is not None:
            await self.link.start()
        if self.air is not None:
            await self.air.start()

    async def stop(self) -> None:
        if self.air is not None:
            await self.air.stop()
        if self.link is not None:
            await self.link.stop()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            if self.link is not None:
                group.create_task(self._node_events(self.link))
            if self.air is not None:
                group.create_task(self._poll_air(self.air))
            group.create_task(self._sample())

    async def _poll_air(self, air: AirQualitySensor) -> None:
        """Read the sensor every few seconds (it sends about once a second): the health stays current and
        each recorded value is the mean over the whole interval, not one frame picked at the moment."""
        while True:
            with contextlib.suppress(AirQualityUnavailable):
                reading = await air.read()
                self._air_samples.append(reading)
            await asyncio.sleep(AIR_POLL_S)

    async def _node_events(self, link: SerialNodeLink) -> None:
        async for event in link.subscribe():
            await self._record_event(event)

    async def _record_event(self, event: NodeEvent) -> None:
        self.events += 1
        payload = {"event": event.kind.value, "reason": event.reason, **event.detail}
        await self.store.append(EVENT_CLASS[event.kind], f"node.{event.kind.value}", payload)
        self.bus.publish(f"sensors.node.{event.kind.value}", **payload)

    async def _sample(self) -> None:
        while True:
            self.beat()
            if self.link is not None:
                with contextlib.suppress(NodeLinkError):
                    readings = await self.link.read_sensors()
                    self.last_soil = {"soil_raw": list(readings.soil_raw), "valve_open": readings.valve_open}
                    await self.store.append(RecordClass.TELEMETRY, "sensors.soil", self.last_soil)
            if self._air_samples:
                samples, self._air_samples = self._air_samples, []
                self.last_air = {
                    "pm1_0": round(statistics.fmean(r.pm1_0 for r in samples), 1),
                    "pm2_5": round(statistics.fmean(r.pm2_5 for r in samples), 1),
                    "pm10": round(statistics.fmean(r.pm10 for r in samples), 1),
                    "samples": len(samples),
                    "source": samples[-1].source,
                }
                await self.store.append(RecordClass.TELEMETRY, "sensors.air", self.last_air)
            await asyncio.sleep(self.interval_s)

    def health(self) -> dict[str, Any]:
        return {
            "node": None if self.link is None else self.link.health().as_dict(),
            "air_quality": None if self.air is None else self.air.health().as_dict(),
            "last_soil": self.last_soil,
            "last_air": self.last_air,
            "events": self.events,
        }

    def problems(self) -> list[str]:
        out = []
        for what, device in (("sensor node", self.link), ("air-quality sensor", self.air)):
            if device is None:
                continue
            health = device.health()
            if not health.ok:
                out.append(f"{what} {health.state}" + (f": {health.last_error}" if health.last_error else ""))
        return out
