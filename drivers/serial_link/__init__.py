"""The sensor node on its serial link: soil probes, cabinet door, PMS5003 (forwarded), irrigation valve.

Spec of the link: PROTOCOL.md beside this file. The node's firmware: drivers/micropython/.
"""

from .factory import build
from .interface import (
    EventStream,
    LinkState,
    NodeEvent,
    NodeEventKind,
    NodeIncompatible,
    NodeInfo,
    NodeLinkError,
    NodeRefused,
    NodeStatus,
    NodeUnavailable,
    SensorNode,
    SensorReadings,
    ValveState,
)
from .link import SerialNodeLink
from .settings import SensorNodeSettings
from .sim import NodeSimulator

__all__ = [
    "EventStream",
    "LinkState",
    "NodeEvent",
    "NodeEventKind",
    "NodeIncompatible",
    "NodeInfo",
    "NodeLinkError",
    "NodeRefused",
    "NodeSimulator",
    "NodeStatus",
    "NodeUnavailable",
    "SensorNode",
    "SensorNodeSettings",
    "SensorReadings",
    "SerialNodeLink",
    "ValveState",
    "build",
]
