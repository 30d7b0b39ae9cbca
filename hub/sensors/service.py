"""Reads the sensor node and the air-quality sensor, records what they say, and drives the irrigation valve.

Raw readings go to the outbox as telemetry at a fixed interval (air quality as the mean over the interval), with
each soil probe's calibrated moisture; a cabinet door opening is a security event (tamper) the moment the node
reports it; the node closing the valve by itself (fail-safe, maximum duration) and the link coming and going are
operations events.

On top of the readings: the hourly and daily VN_AQI (aqi.py) each hour, with alerts on category crossings
(alerts.py); probe faults (calibration.py) and a silent node as alerts; the irrigation controller (irrigation.py)
fed every check, its every valve decision carried out on the node and recorded with its reason. The computations
are synchronous methods without I/O (process_soil, process_air), the same ones bench/sensors_cpu.py measures.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from drivers.airquality import AirQualityReading, AirQualitySensor, AirQualityUnavailable
from drivers.serial_link import NodeEvent, NodeEventKind, NodeLinkError, SensorReadings, SerialNodeLink
from hub.bus import CommandError, EventBus, Message
from hub.clock import SystemClock
from hub.clock import WallClock as Clock
from hub.service import Service
from hub.store import RecordClass, Store, Transaction

from .alerts import AqiAlarm
from .aqi import AirQualityTracker, HourSummary, interval_mean
from .calibration import ProbeReading, SoilCalibrator
from .irrigation import IrrigationController, IrrigationRefused, ValveDecision
from .settings import SensorsSettings

log = logging.getLogger(__name__)

AIR_POLL_S = 2.0
RUN_TOPIC = "irrigation.run"
AQI_STATE_KEY = "sensors.aqi"
AQI_HISTORY_KEY = "sensors.aqi.history"

EVENT_CLASS = {
    NodeEventKind.DOOR_OPENED: RecordClass.SECURITY,
    NodeEventKind.DOOR_CLOSED: RecordClass.SECURITY,
    NodeEventKind.VALVE_CLOSED: RecordClass.OPERATIONS,
    NodeEventKind.CONNECTED: RecordClass.OPERATIONS,
    NodeEventKind.DISCONNECTED: RecordClass.OPERATIONS,
}

# (class, kind, payload): what a processing step wants written, in order.
Record = tuple[RecordClass, str, dict[str, Any]]


class SensorsService(Service):
    name = "sensors"

    def __init__(
        self,
        link: SerialNodeLink | None,
        air: AirQualitySensor | None,
        store: Store,
        bus: EventBus,
        interval_s: float,
        settings: SensorsSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.link = link
        self.air = air
        self.store = store
        self.bus = bus
        self.interval_s = interval_s
        self.settings = settings = settings or SensorsSettings()
        self.clock: Clock = clock or SystemClock("Asia/Ho_Chi_Minh")
        self.last_soil: dict[str, Any] | None = None
        self.last_air: dict[str, Any] | None = None
        self.events = 0
        self._air_samples: list[AirQualityReading] = []
        self.calibrator = SoilCalibrator(settings.soil)
        self.last_probes: list[ProbeReading] = []
        self.tracker = AirQualityTracker(
            self.clock.monotonic(),
            min_coverage=settings.air.min_hour_coverage,
            min_day_hours=settings.air.min_day_hours,
        )
        self.aqi_alarm = AqiAlarm(settings.air.alert_from, settings.air.hysteresis_aqi)
        irrigation = settings.irrigation
        self.irrigation = IrrigationController(irrigation, self.clock) if irrigation.enabled and link else None
        self._watched = set(irrigation.probes)
        self.stale_after_s = irrigation.stale_after_s
        self._started_at = self.clock.monotonic()
        self._last_read_ok: float | None = None
        self.faults: dict[str, str] = {}  # source ("node" or a probe name) -> fault, while it lasts
        self.errors = {"node_reads": 0, "air_reads": 0, "valve_commands": 0}
        self._valve_lock = asyncio.Lock()

    async def start(self) -> None:
        self.restore_air_quality()
        if self.link is not None:
            await self.link.start()
        if self.air is not None:
            await self.air.start()

    def restore_air_quality(self) -> None:
        """The hourly means and the active alert from before the restart (a power cut must neither blank the index
        for a day nor raise the same alert again)."""
        saved = self.store.get_state(AQI_HISTORY_KEY)
        if isinstance(saved, dict) and isinstance(saved.get("hours"), dict):
            elapsed = self.clock.now().timestamp() - float(saved.get("at") or 0)
            missed = int(elapsed // 3600) if elapsed > 0 else 0
            self.tracker.restore(saved["hours"], missed)
            log.info("sensors: air-quality history restored (%d hours missed while stopped)", missed)
        alert = self.store.get_state(AQI_STATE_KEY + ".alert")
        if isinstance(alert, dict) and alert.get("state") != "cleared":
            self.aqi_alarm.restore(alert.get("category"))

    async def stop(self) -> None:
        if self.air is not None:
            await self.air.stop()
        if self.link is not None:
            await self.link.stop()

    async def run(self) -> None:
        withdraw = self.bus.serve("irrigation.run", self._run_command) if self.irrigation is not None else None
        try:
            await self._run_tasks()
        finally:
            if withdraw is not None:
                withdraw()

    async def _run_command(self, data: dict[str, Any]) -> dict[str, Any]:
        result = await self.run_irrigation(data.get("seconds"), str(data.get("who") or "unknown"))
        if not result["accepted"]:
            raise CommandError(str(result["error"]))
        return result

    async def _run_tasks(self) -> None:
        async with asyncio.TaskGroup() as group:
            if self.link is not None:
                group.create_task(self._node_events(self.link))
            if self.air is not None:
                group.create_task(self._poll_air(self.air))
            if self.irrigation is not None:
                group.create_task(self._run_requests())
            group.create_task(self._sample())

    # -- air quality ----------------------------------------------------------------------------------------------
    async def _poll_air(self, air: AirQualitySensor) -> None:
        """Read the sensor every few seconds (it sends about once a second): the health stays current and
        each recorded value is the mean over the whole interval, not one frame picked at the moment."""
        while True:
            try:
                reading = await air.read()
            except AirQualityUnavailable:
                self.errors["air_reads"] += 1
            else:
                await self.ingest_air(reading)
            await asyncio.sleep(AIR_POLL_S)

    async def ingest_air(self, reading: AirQualityReading) -> None:
        """One air reading into the interval mean and the hourly index; writes what an ended hour gives."""
        await self._write(self.process_air(reading))

    def process_air(self, reading: AirQualityReading) -> list[Record]:
        self._air_samples.append(reading)
        return self._hours_ended(self.tracker.add(self.clock.monotonic(), reading.pm2_5, reading.pm10))

    def _hours_ended(self, summaries: list[HourSummary]) -> list[Record]:
        records: list[Record] = []
        for summary in summaries:
            records.append((RecordClass.TELEMETRY, "sensors.aqi", summary.as_dict()))
            alert = self.aqi_alarm.update(summary.hourly)
            if alert is not None and summary.hourly is not None:
                records.append((alert.record_class, "sensors.aqi.alert", alert.payload(summary.hourly)))
        return records

    # -- the node -------------------------------------------------------------------------------------------------
    async def _node_events(self, link: SerialNodeLink) -> None:
        async for event in link.subscribe():
            await self._record_event(event)

    async def _record_event(self, event: NodeEvent) -> None:
        self.events += 1
        payload = {"event": event.kind.value, "reason": event.reason, **event.detail}
        await self.store.append(EVENT_CLASS[event.kind], f"node.{event.kind.value}", payload)
        self.bus.publish(f"sensors.node.{event.kind.value}", **payload)

    async def _sample(self) -> None:
        tick = self.interval_s
        if self.irrigation is not None:
            tick = min(tick, self.settings.irrigation.check_interval_s)
        next_record = self.clock.monotonic()
        while True:
            self.beat()
            readings: SensorReadings | None = None
            if self.link is not None:
                # One lock from the reading to the valve command: a manual run started in between would otherwise be
                # judged on a reading from before it (valve closed) and taken for the node closing it.
                async with self._valve_lock:
                    try:
                        readings = await self.link.read_sensors()
                    except NodeLinkError:
                        self.errors["node_reads"] += 1
                    records, decision = self.process_soil(readings)
                    await self._write(records)
                    if decision is not None:
                        await self._apply(decision)
            await self._write(self._hours_ended(self.tracker.tick(self.clock.monotonic())))
            now = self.clock.monotonic()
            if now >= next_record:
                # Not a catch-up burst after a stall (slow store, slow node): the next record one interval on.
                next_record = max(next_record + self.interval_s, now)
                await self._write(self.telemetry_records(readings))
            await asyncio.sleep(tick)

    def process_soil(self, readings: SensorReadings | None) -> tuple[list[Record], ValveDecision | None]:
        """One answer of the node (None: it did not answer): calibrated probes, fault alerts, the irrigation
        decision."""
        now = self.clock.monotonic()
        records: list[Record] = []
        if readings is not None:
            self._last_read_ok = now
            self.last_probes = self.calibrator.read(readings.soil_raw)
            for probe in self.last_probes:
                records.extend(self._fault(probe.name, None if probe.fault is None else probe.fault.value))
        heard = self._started_at if self._last_read_ok is None else self._last_read_ok
        silent = now - heard >= self.stale_after_s
        records.extend(self._fault("node", "sensor_silent" if silent else None))
        if self.irrigation is None:
            return records, None
        moisture: float | None = None
        fault: str | None = "sensor_silent" if silent else None
        if readings is not None:
            watched = [p for p in self.last_probes if p.name in self._watched]
            faulty = [f"{p.name} {p.fault.value}" for p in watched if p.fault is not None]
            if faulty:
                fault = ", ".join(faulty)
            else:
                moisture = sum(p.percent for p in watched if p.percent is not None) / len(watched)
        decision = self.irrigation.observe(moisture, fault, None if readings is None else readings.valve_open)
        return records, decision

    def _fault(self, source: str, fault: str | None) -> list[Record]:
        """A record when a source's fault appears, changes or clears; nothing while it stays the same."""
        previous = self.faults.get(source)
        if fault == previous:
            return []
        if fault is None:
            del self.faults[source]
        else:
            self.faults[source] = fault
        payload = {"source": source, "fault": fault or previous, "state": "cleared" if fault is None else "raised"}
        return [(RecordClass.OPERATIONS, "sensors.fault", payload)]

    def telemetry_records(self, readings: SensorReadings | None) -> list[Record]:
        """The interval's telemetry: the node's last answer with calibrated probes, the air mean over the interval."""
        records: list[Record] = []
        if readings is not None:
            self.last_soil = {
                "soil_raw": list(readings.soil_raw),
                "valve_open": readings.valve_open,
                "probes": [p.as_dict() for p in self.last_probes],
            }
            records.append((RecordClass.TELEMETRY, "sensors.soil", self.last_soil))
        if self._air_samples:
            samples, self._air_samples = self._air_samples, []
            self.last_air = interval_mean(samples)
            records.append((RecordClass.TELEMETRY, "sensors.air", self.last_air))
        return records

    async def _write(self, records: list[Record]) -> None:
        if not records:
            return
        for cls, kind, payload in records:
            if kind.startswith("sensors.aqi"):
                history = {"at": self.clock.now().timestamp(), "hours": self.tracker.history()}
                await self.store.write(_with_aqi_state(cls, kind, payload, history))
            elif kind in ("sensors.air", "sensors.soil"):
                await self.store.write(_with_history(cls, kind, payload, self.clock.now().timestamp()))
            else:
                await self.store.append(cls, kind, payload)
            self.bus.publish(kind, **payload)

    # -- irrigation -----------------------------------------------------------------------------------------------
    async def run_irrigation(self, seconds: object, who: str) -> dict[str, Any]:
        """A manual run of `seconds` (technician page, cloud command, bus topic irrigation.run): whether it started,
        and why not. `seconds` is checked here because it arrives from the bus and the cloud unchecked."""
        if self.irrigation is None:
            return {"accepted": False, "error": "irrigation is not enabled on this hub"}
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            return {"accepted": False, "error": f"seconds must be a number, got {seconds!r}"}
        async with self._valve_lock:
            try:
                decision = self.irrigation.manual(float(seconds), who)
            except IrrigationRefused as exc:
                return {"accepted": False, "error": str(exc)}
            ok, error = await self._apply(decision)
        return {"accepted": ok, "error": error, "seconds": seconds, "who": who}

    async def _run_requests(self) -> None:
        requests = self.bus.subscribe(RUN_TOPIC)
        try:
            while True:
                message: Message = await requests.get()
                if message.topic != RUN_TOPIC:
                    continue
                who = str(message.data.get("who") or "unknown")
                result = await self.run_irrigation(message.data.get("seconds"), who)
                self.bus.publish("sensors.irrigation.run_result", **result)
        finally:
            requests.close()

    async def _apply(self, decision: ValveDecision) -> tuple[bool, str | None]:
        """Carry a decision out on the node and record it. A close that cannot be sent (node silent) is recorded
        all the same: the node's fail-safe closes the valve by itself, and the controller's declared state is
        closed, so it is sent again once the node answers and still reports it open."""
        ok, error = True, None
        if decision.command:
            assert self.link is not None
            max_seconds = min(decision.max_seconds, self.link.settings.max_valve_open_s)
            try:
                await self.link.set_valve(decision.open, max_seconds if decision.open else 0.0)
            except (NodeLinkError, ValueError) as exc:
                ok, error = False, str(exc)
                self.errors["valve_commands"] += 1
                if decision.open and self.irrigation is not None:
                    self.irrigation.open_failed()
                log.warning("irrigation valve %s failed: %s", "open" if decision.open else "close", exc)
        payload = {**decision.as_dict(), "commanded": decision.command, "ok": ok, "error": error}
        await self._write([(RecordClass.OPERATIONS, "irrigation.valve", payload)])
        return ok, error

    # -- health ---------------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        last = self.tracker.last
        active = self.aqi_alarm.active
        return {
            "node": None if self.link is None else self.link.health().as_dict(),
            "air_quality": None if self.air is None else self.air.health().as_dict(),
            "last_soil": self.last_soil,
            "last_air": self.last_air,
            "last_reading_age_s": None
            if self._last_read_ok is None
            else round(self.clock.monotonic() - self._last_read_ok, 1),
            "events": self.events,
            "errors": dict(self.errors),
            "faults": dict(self.faults),
            "aqi": None if last is None else last.as_dict(),
            "aqi_alert": None if active is None else active.key,
            "irrigation": None if self.irrigation is None else self.irrigation.state(),
        }

    def problems(self) -> list[str]:
        out = []
        for what, device in (("sensor node", self.link), ("air-quality sensor", self.air)):
            if device is None:
                continue
            health = device.health()
            if not health.ok:
                out.append(f"{what} {health.state}" + (f": {health.last_error}" if health.last_error else ""))
        out.extend(f"{source}: {fault}" for source, fault in sorted(self.faults.items()) if source != "node")
        return out


HISTORY_KEEP_S = 48 * 3600


def history_metrics(kind: str, payload: dict[str, Any]) -> dict[str, float]:
    """The numbers of a telemetry record worth a chart: PM2.5/PM10 and each probe's moisture."""
    if kind == "sensors.air":
        return {
            f"air.{key}": float(payload[key]) for key in ("pm2_5", "pm10") if isinstance(payload.get(key), int | float)
        }
    if kind == "sensors.soil":
        return {
            f"soil.{probe['name']}": float(probe["percent"])
            for probe in payload.get("probes", [])
            if isinstance(probe.get("percent"), int | float)
        }
    return {}


def _with_history(cls: RecordClass, kind: str, payload: dict[str, Any], wall: float) -> Any:
    """The record and its values in the per-minute history (the technician page's 24 h chart) in one transaction;
    the history keeps two days, so it stays a few hundred kilobytes on the SD card."""
    minute = int(wall // 60)

    def op(tx: Transaction) -> int:
        seq = tx.append(cls, kind, payload)
        values = history_metrics(kind, payload)
        if values:
            tx.conn.executemany(
                "INSERT OR REPLACE INTO readings (metric, minute, value) VALUES (?, ?, ?)",
                [(metric, minute, value) for metric, value in values.items()],
            )
            if minute % 60 == 0:
                tx.conn.execute("DELETE FROM readings WHERE minute < ?", (minute - HISTORY_KEEP_S // 60,))
        return seq

    return op


def _with_aqi_state(cls: RecordClass, kind: str, payload: dict[str, Any], history: dict[str, Any]) -> Any:
    """The AQI record, the latest-AQI state and the hourly history in one transaction: the technician page reads
    the state, the cloud the record, a restart the history, and they cannot disagree after a power cut."""

    def op(tx: Transaction) -> int:
        seq = tx.append(cls, kind, payload)
        tx.set_state(AQI_STATE_KEY if kind == "sensors.aqi" else AQI_STATE_KEY + ".alert", payload)
        tx.set_state(AQI_HISTORY_KEY, history)
        return seq

    return op
