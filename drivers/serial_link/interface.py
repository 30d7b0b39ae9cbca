"""What hub/ sees of the sensor node: a small async Protocol and the values it exchanges.

Readings are raw (ADC counts, the door switch, the forwarded PMS5003 frame): calibration (dry/wet counts to
percent) and thresholds belong to the sensors service. Air quality is parsed by drivers.airquality.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from drivers.base import DriverHealth


class LinkState(enum.StrEnum):
    STOPPED = "stopped"  # start() not called, or stop() called
    ABSENT = "absent"  # the port cannot be opened, or it hung up (device unplugged)
    HANDSHAKING = "handshaking"  # the port is open; no session with the node (it is silent, or rebooting)
    CONNECTED = "connected"  # session open, heartbeats answered
    INCOMPATIBLE = "incompatible"  # the node answers but speaks another major protocol version


@dataclass(frozen=True)
class NodeInfo:
    """Who the node said it is in its HELLO_ACK."""

    node_id: str
    firmware: str
    protocol: str  # "major.minor"
    capabilities: frozenset[str]  # of "soil", "door", "air", "valve"
    soil_probes: int
    failsafe_s: float  # the fail-safe timeout in force on the node
    max_valve_open_s: float  # the node's own bound on one opening


@dataclass(frozen=True)
class SensorReadings:
    soil_raw: tuple[int, ...]  # ADC counts 0..65535 per probe, in wiring order (higher = drier for most probes)
    door_open: bool  # cabinet door / tamper switch; a cut wire reads as open
    valve_open: bool
    air_frame: bytes | None  # the last intact PMS5003 frame the node received, verbatim (32 bytes)
    air_age_s: float | None  # how old that frame was when the node answered
    received_at: float  # time.monotonic() when the answer arrived


@dataclass(frozen=True)
class ValveState:
    open: bool
    remaining_s: float  # until the node closes it by itself (max duration); 0 when closed
    reason: str  # why it is in this state: "boot" | "command" | "max_duration" | "failsafe"


@dataclass(frozen=True)
class NodeStatus:
    uptime_s: float
    valve: ValveState
    door_open: bool
    failsafe_s: float
    counters: dict[str, int]  # the node's own: rx_frames, rx_crc_errors, ..., mem_free (protocol.STATUS_COUNTERS)


class NodeEventKind(enum.StrEnum):
    DOOR_OPENED = "door_opened"  # tamper: the cabinet was opened (or its switch wire cut)
    DOOR_CLOSED = "door_closed"
    VALVE_CLOSED = "valve_closed"  # closed by the node itself: reason "max_duration" | "failsafe" | "boot"
    CONNECTED = "connected"  # a session with the node began
    DISCONNECTED = "disconnected"  # the session ended: reason says what was seen


@dataclass(frozen=True)
class NodeEvent:
    kind: NodeEventKind
    at: float  # time.monotonic()
    reason: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


class NodeLinkError(Exception):
    """Base of what the link's request methods raise."""


class NodeUnavailable(NodeLinkError):
    """No session with the node (absent, silent, handshaking), or it did not answer after the retries."""


class NodeIncompatible(NodeUnavailable):
    """The node speaks another major protocol version: one side's software must be updated."""


class NodeRefused(NodeLinkError):
    """The node answered the request with ERROR (code: protocol.ERROR_NAMES, e.g. "bad_value")."""

    def __init__(self, request: str, code: str) -> None:
        super().__init__(f"the node refused {request}: {code}")
        self.request = request
        self.code = code


class EventStream(Protocol):
    """Events from the moment of subscribe() on; iteration ends when the stream or the link is closed."""

    def __aiter__(self) -> AsyncIterator[NodeEvent]: ...

    async def __anext__(self) -> NodeEvent: ...

    def close(self) -> None: ...


class SensorNode(Protocol):
    async def start(self) -> None:
        """Begin connecting in the background; returns at once (a missing node is not an error)."""

    async def stop(self) -> None: ...

    @property
    def state(self) -> LinkState: ...

    @property
    def info(self) -> NodeInfo | None: ...

    async def wait_connected(self, timeout: float) -> bool: ...

    async def read_sensors(self) -> SensorReadings: ...

    async def set_valve(self, open: bool, max_seconds: float) -> ValveState:
        """Open (for at most max_seconds, after which the node closes it by itself) or close the valve."""

    async def status(self) -> NodeStatus: ...

    def subscribe(self) -> EventStream: ...

    def health(self) -> DriverHealth: ...
