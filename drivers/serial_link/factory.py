"""build(settings, simulated) -> the sensor-node link, and its simulator when simulated."""

from __future__ import annotations

from .link import SerialNodeLink
from .settings import SensorNodeSettings
from .sim import NodeSimulator


def build(settings: SensorNodeSettings, simulated: bool) -> tuple[SerialNodeLink, NodeSimulator | None]:
    """Simulated: a NodeSimulator is started on a pty and the link pointed at it (settings.port is ignored).
    The caller stops the simulator after the link."""
    if not simulated:
        return SerialNodeLink(settings), None
    simulator = NodeSimulator().start()
    link = SerialNodeLink(settings.model_copy(update={"port": str(simulator.path)}))
    return link, simulator
