"""build(settings, simulated, node) -> the air-quality sensor, and its simulator when one is needed."""

from __future__ import annotations

from drivers.serial_link.interface import SensorNode

from .interface import AirQualitySensor
from .node import NodeAirQuality
from .settings import AirQualitySettings
from .sim import Pms5003Simulator
from .uart import Pms5003Uart


def build(
    settings: AirQualitySettings, simulated: bool, node: SensorNode | None = None
) -> tuple[AirQualitySensor | None, Pms5003Simulator | None]:
    """source 'none' -> (None, None). 'node' needs the sensor-node link (simulated or not: the node simulator
    carries its own PMS5003). 'uart' simulated: a Pms5003Simulator on a pty, which the caller stops after the
    sensor."""
    if settings.source == "none":
        return None, None
    if settings.source == "node":
        if node is None:
            raise ValueError("air_quality.source = 'node' needs the sensor node link")
        return NodeAirQuality(node, settings), None
    if not simulated:
        return Pms5003Uart(settings), None
    simulator = Pms5003Simulator().start()
    return Pms5003Uart(settings.model_copy(update={"port": str(simulator.path)})), simulator
