"""A PMS5003 wired to one of the hub's own UARTs: the sensor streams a frame about every second (active mode).

The port is watched by the event loop (drivers.serial_link.port); frames are picked out of the stream by the
shared parser, which resynchronises on garbage and cut frames and counts what it rejects. A port that hangs up
or vanishes is reopened every reconnect interval; the driver is unhealthy meanwhile, and when the sensor is
silent or sends only corrupt frames for longer than stale_after_s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from drivers.base import DriverHealth, cancel_and_wait
from drivers.serial_link.port import PortError, SerialPort

from .interface import AirQualityReading, AirQualityUnavailable
from .pms5003 import PmsStream, reading_from_frame
from .settings import AirQualitySettings

log = logging.getLogger(__name__)


class Pms5003Uart:
    """Implements interface.AirQualitySensor."""

    def __init__(self, settings: AirQualitySettings) -> None:
        self.settings = settings
        self._stream = PmsStream()
        self._latest: AirQualityReading | None = None
        self._new_reading = asyncio.Event()
        self._port: SerialPort | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._task: asyncio.Task[None] | None = None
        self._state = "stopped"
        self._last_error: str | None = None
        self._opened_at: float | None = None
        self.reconnects = 0

    async def start(self) -> None:
        if self._task is None:
            self._state = "absent"
            self._task = asyncio.create_task(self._run(), name=f"pms5003 {self.settings.port}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._port is not None:
            self._port.close()
            self._port = None
        self._state = "stopped"

    def latest(self) -> AirQualityReading | None:
        return self._latest

    async def read(self) -> AirQualityReading:
        reading = self._latest
        if reading is None:
            raise AirQualityUnavailable(f"no PMS5003 frame yet on {self.settings.port} ({self._state})")
        age = time.monotonic() - reading.measured_at
        if age > self.settings.stale_after_s:
            raise AirQualityUnavailable(f"last PMS5003 frame on {self.settings.port} is {age:.1f} s old")
        return reading

    async def next_reading(self, timeout: float) -> AirQualityReading:
        """The next frame to arrive (raises AirQualityUnavailable if none within timeout)."""
        self._new_reading.clear()
        try:
            await asyncio.wait_for(self._new_reading.wait(), timeout)
        except TimeoutError:
            raise AirQualityUnavailable(f"no PMS5003 frame within {timeout} s on {self.settings.port}") from None
        assert self._latest is not None
        return self._latest

    def health(self) -> DriverHealth:
        now = time.monotonic()
        state = self._state
        latest = self._latest
        fresh = latest is not None and now - latest.measured_at <= self.settings.stale_after_s
        if state == "open":
            if fresh:
                state = "connected"
            elif (
                latest is None and self._opened_at is not None and now - self._opened_at <= self.settings.stale_after_s
            ):
                state = "waiting"  # just opened: the first frame is due within a couple of seconds
            else:
                state = "stale"
        s = self._stream
        detail: dict[str, Any] = {
            "port": self.settings.port,
            "source": "uart",
            "last_frame_age_s": round(now - latest.measured_at, 3) if latest else None,
            "frames": s.frames,
            "checksum_errors": s.checksum_errors,
            "length_errors": s.length_errors,
            "bytes_skipped": s.skipped,
            "reconnects": self.reconnects,
        }
        if latest is not None:
            detail.update(pm1_0=latest.pm1_0, pm2_5=latest.pm2_5, pm10=latest.pm10)
        error = self._last_error
        if state == "stale":
            error = "no intact PMS5003 frame for more than " + f"{self.settings.stale_after_s:g} s"
        return DriverHealth(ok=state == "connected", state=state, detail=detail, last_error=error)

    async def _run(self) -> None:
        s = self.settings
        while True:
            port = SerialPort(s.port, s.baudrate, self._on_data, self._on_lost)
            try:
                await port.open()
            except PortError as exc:
                self._state = "absent"
                self._last_error = str(exc)
                await asyncio.sleep(s.reconnect_interval_s)
                continue
            self._port = port
            self._lost.clear()
            self._stream.reset()
            self._state = "open"
            self._opened_at = time.monotonic()
            self._last_error = None
            await self._lost.wait()
            port.close()
            self._port = None
            self.reconnects += 1
            self._state = "absent"
            self._last_error = f"{s.port}: {self._lost_reason}"
            log.warning("PMS5003 port lost: %s", self._last_error)
            await asyncio.sleep(s.reconnect_interval_s)

    def _on_data(self, data: bytes) -> None:
        now = time.monotonic()
        for frame in self._stream.feed(data):
            self._latest = reading_from_frame(frame, now, "uart")
            self._new_reading.set()

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = reason
        self._lost.set()
