"""What hub/ sees of the air-quality sensor: the latest PMS5003 reading, however the sensor is wired."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from drivers.base import DriverHealth


@dataclass(frozen=True)
class AirQualityReading:
    """One PMS5003 frame. Mass concentrations in ug/m3; counts of particles per 0.1 L of air."""

    pm1_0: int  # atmospheric environment: the values to report
    pm2_5: int
    pm10: int
    pm1_0_cf1: int  # CF=1 ("standard particle", factory calibration)
    pm2_5_cf1: int
    pm10_cf1: int
    particles_0_3: int  # diameter beyond 0.3 um
    particles_0_5: int
    particles_1_0: int
    particles_2_5: int
    particles_5_0: int
    particles_10: int
    measured_at: float  # time.monotonic() when the frame arrived (at the node, for a forwarded frame)
    source: str  # "uart" | "node"


class AirQualityUnavailable(Exception):
    """No fresh reading: the sensor or its link is absent, silent or sending corrupt frames."""


class AirQualitySensor(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def read(self) -> AirQualityReading:
        """The latest reading younger than stale_after_s; raises AirQualityUnavailable otherwise."""

    def health(self) -> DriverHealth: ...
