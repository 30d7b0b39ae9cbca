"""A PMS5003 wired to the sensor node: its frames arrive forwarded in the node's SENSORS answers."""

from __future__ import annotations

import time
from typing import Any, NoReturn

from drivers.base import DriverHealth
from drivers.serial_link.interface import NodeLinkError, SensorNode

from .interface import AirQualityReading, AirQualityUnavailable
from .pms5003 import PmsError, reading_from_frame
from .settings import AirQualitySettings


class NodeAirQuality:
    """Implements interface.AirQualitySensor over a SensorNode (which the caller starts and stops)."""

    def __init__(self, node: SensorNode, settings: AirQualitySettings) -> None:
        self.node = node
        self.settings = settings
        self._latest: AirQualityReading | None = None
        self._state = "waiting"
        self._last_error: str | None = None
        self.reads = 0
        self.corrupt_frames = 0

    async def start(self) -> None:
        """Nothing to open: the node link is its own driver."""

    async def stop(self) -> None:
        """Nothing to close."""

    async def read(self) -> AirQualityReading:
        self.reads += 1
        try:
            readings = await self.node.read_sensors()
        except NodeLinkError as exc:
            self._fail("no_node", f"sensor node: {exc}")
        if readings.air_frame is None or readings.air_age_s is None:
            self._fail("absent", "the node has received no PMS5003 frame")
        if readings.air_age_s > self.settings.stale_after_s:
            self._fail("stale", f"the node's last PMS5003 frame is {readings.air_age_s:.1f} s old")
        try:
            reading = reading_from_frame(readings.air_frame, readings.received_at - readings.air_age_s, "node")
        except PmsError as exc:  # the node checks frames too: this is a firmware bug or memory corruption
            self.corrupt_frames += 1
            self._fail("corrupt", f"the node forwarded a bad PMS5003 frame: {exc}")
        self._latest = reading
        self._state = "connected"
        self._last_error = None
        return reading

    def _fail(self, state: str, error: str) -> NoReturn:
        self._state = state
        self._last_error = error
        raise AirQualityUnavailable(error)

    def health(self) -> DriverHealth:
        latest = self._latest
        now = time.monotonic()
        state = self._state
        if state == "connected" and latest is not None and now - latest.measured_at > self.settings.stale_after_s:
            state = "stale"  # nobody has read for a while: say so rather than vouch for an old value
        detail: dict[str, Any] = {
            "source": "node",
            "node_link": self.node.state.value,
            "last_frame_age_s": round(now - latest.measured_at, 3) if latest else None,
            "reads": self.reads,
            "corrupt_frames": self.corrupt_frames,
        }
        if latest is not None:
            detail.update(pm1_0=latest.pm1_0, pm2_5=latest.pm2_5, pm10=latest.pm10)
        return DriverHealth(ok=state == "connected", state=state, detail=detail, last_error=self._last_error)
