"""The hub's end of the sensor-node link (spec: PROTOCOL.md): one asyncio task keeps a session alive.

    absent --port opens--> handshaking --HELLO_ACK, same major--> connected
       ^                      |   ^                                   |
       |                      |   +--- heartbeat unanswered, ---------+
       |                      |        node rebooted (NO_SESSION)
       |                      +--HELLO_ACK, other major--> incompatible (HELLO again every reconnect interval)
       +---------- the port hangs up or fails (any state) ------------------------------------------------+

Requests are stop-and-wait: one outstanding at a time, retransmitted with the same seq after
response_timeout_s, `retries` times; the node answers a retransmission from its cache instead of acting twice.
Node events (door, valve closed by the node) are acknowledged at once and delivered to subscribers; the door and
valve flags in every heartbeat answer catch an edge whose EVENT was lost, so a subscriber sees every change of
state once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, TypeVar

from drivers.base import DriverHealth, cancel_and_wait
from drivers.micropython.vhnode import protocol as p

from .interface import (
    LinkState,
    NodeEvent,
    NodeEventKind,
    NodeIncompatible,
    NodeInfo,
    NodeRefused,
    NodeStatus,
    NodeUnavailable,
    SensorReadings,
    ValveState,
)
from .port import PortError, SerialPort
from .settings import SensorNodeSettings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=p.Message)

REQUEST_NAMES = {
    p.HELLO: "HELLO",
    p.HEARTBEAT: "HEARTBEAT",
    p.READ_SENSORS: "READ_SENSORS",
    p.SET_VALVE: "SET_VALVE",
    p.GET_STATUS: "GET_STATUS",
}
EVENT_QUEUE_SIZE = 256


class _SessionLost(Exception):
    """The node no longer knows our session (it rebooted): handshake again."""


class _Subscription:
    """An EventStream: a bounded queue fed by the link; the oldest event is dropped when a reader lags."""

    def __init__(self, owner: set[_Subscription]) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[NodeEvent | None] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.dropped = 0
        self._closed = False
        owner.add(self)

    def put(self, event: NodeEvent | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.discard(self)
            self.put(None)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> NodeEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event


class SerialNodeLink:
    """The sensor node over a serial port. Implements interface.SensorNode."""

    def __init__(self, settings: SensorNodeSettings) -> None:
        self.settings = settings
        self._state = LinkState.STOPPED
        self._info: NodeInfo | None = None
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: SerialPort | None = None
        self._port_lost = asyncio.Event()
        self._lost_reason = ""
        self._connected = asyncio.Event()
        self._decoder = p.FrameDecoder()
        self._lock = asyncio.Lock()
        self._seq = 0
        self._pending: tuple[int, int, asyncio.Future[p.Message]] | None = None
        self._subscriptions: set[_Subscription] = set()
        self._last_event_seq = -1
        self._door_open: bool | None = None
        self._valve_open: bool | None = None
        self._valve_closed_unexplained = False  # the heartbeat flags showed a close whose EVENT was lost
        self._last_heartbeat: float | None = None
        self._last_rx: float | None = None
        self._bytes_in = 0
        self._bytes_out = 0
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "requests",
                "retries",
                "timeouts",
                "late_responses",
                "payload_errors",
                "unexpected_frames",
                "events",
                "duplicate_events",
                "reconnects",
                "handshakes",
                "tx_dropped",
            ),
            0,
        )

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._state = LinkState.ABSENT
        self._task = asyncio.create_task(self._run(), name=f"sensor-node {self.settings.port}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._close_port("stopped")
        self._state = LinkState.STOPPED
        self._connected.clear()
        for subscription in list(self._subscriptions):
            subscription.close()

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def info(self) -> NodeInfo | None:
        return self._info

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def subscribe(self) -> _Subscription:
        return _Subscription(self._subscriptions)

    # -- requests for hub/ ----------------------------------------------------------------------------------------
    async def read_sensors(self) -> SensorReadings:
        reply = await self._session_request(p.ReadSensors(), p.Sensors)
        received = time.monotonic()
        return SensorReadings(
            soil_raw=tuple(reply.soil),
            door_open=bool(reply.flags & p.FLAG_DOOR_OPEN),
            valve_open=bool(reply.flags & p.FLAG_VALVE_OPEN),
            air_frame=bytes(reply.air) if reply.air else None,
            air_age_s=reply.air_age_ms / 1000 if reply.air else None,
            received_at=received,
        )

    async def set_valve(self, open: bool, max_seconds: float) -> ValveState:
        max_ms = 0
        if open:
            if not 0 < max_seconds <= self.settings.max_valve_open_s:  # also refuses NaN
                raise ValueError(f"max_seconds={max_seconds}: must be > 0 and <= {self.settings.max_valve_open_s}")
            max_ms = math.ceil(max_seconds * 1000)
            info = self._info
            if info is not None and max_ms > info.max_valve_open_s * 1000:
                raise ValueError(f"max_seconds={max_seconds}: the node allows at most {info.max_valve_open_s:g} s")
        reply = await self._session_request(p.SetValve(open, max_ms), p.Valve)
        return _valve_state(reply)

    async def status(self) -> NodeStatus:
        reply = await self._session_request(p.GetStatus(), p.Status)
        return NodeStatus(
            uptime_s=reply.uptime_ms / 1000,
            valve=ValveState(reply.valve_open, reply.valve_remaining_ms / 1000, _reason(reply.valve_reason)),
            door_open=reply.door_open,
            failsafe_s=reply.failsafe_ms / 1000,
            counters=dict(zip(p.STATUS_COUNTERS, reply.counters, strict=True)),
        )

    # -- health ---------------------------------------------------------------------------------------------------
    def health(self) -> DriverHealth:
        now = time.monotonic()
        info = self._info
        d = self._decoder
        detail: dict[str, Any] = {
            "port": self.settings.port,
            "node_id": info.node_id if info else None,
            "firmware": info.firmware if info else None,
            "protocol": info.protocol if info else None,
            "hub_protocol": f"{p.PROTOCOL_MAJOR}.{p.PROTOCOL_MINOR}",
            "capabilities": sorted(info.capabilities) if info else [],
            "last_heartbeat_age_s": round(now - self._last_heartbeat, 3) if self._last_heartbeat else None,
            "last_rx_age_s": round(now - self._last_rx, 3) if self._last_rx else None,
            "door_open": self._door_open,
            "valve_open": self._valve_open,
            "frames_rx": d.frames,
            "crc_errors": d.crc_errors,
            "cobs_errors": d.cobs_errors,
            "length_errors": d.length_errors,
            "overruns": d.overruns,
            "bytes_in": self._bytes_in + (self._port.bytes_in if self._port else 0),
            "bytes_out": self._bytes_out + (self._port.bytes_out if self._port else 0),
            **self.counters,
        }
        return DriverHealth(
            ok=self._state is LinkState.CONNECTED,
            state=self._state.value,
            detail=detail,
            last_error=self._last_error,
        )

    # -- the connection task --------------------------------------------------------------------------------------
    async def _run(self) -> None:
        s = self.settings
        while True:
            port = SerialPort(s.port, s.baudrate, self._on_data, self._on_port_lost)
            try:
                await port.open()
            except PortError as exc:
                self._set_state(LinkState.ABSENT, str(exc))
                await asyncio.sleep(s.reconnect_interval_s)
                continue
            self._port = port
            self._port_lost.clear()
            self._decoder.reset()
            self._set_state(LinkState.HANDSHAKING, None)
            session = asyncio.create_task(self._session())
            lost = asyncio.create_task(self._port_lost.wait())
            try:
                await asyncio.wait({session, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (session, lost):
                    await cancel_and_wait(task)
            if session.done() and not session.cancelled() and session.exception() is not None:
                log.error("sensor node session failed", exc_info=session.exception())
            reason = self._lost_reason or "session ended"
            self._close_port(reason)
            self.counters["reconnects"] += 1
            self._set_state(LinkState.ABSENT, f"{s.port}: {reason}")
            await asyncio.sleep(s.reconnect_interval_s)

    async def _session(self) -> None:
        s = self.settings
        while True:
            port = self._port
            bytes_before = port.bytes_in if port else 0
            frames_before = self._decoder.frames
            try:
                info = await self._handshake()
            except (NodeUnavailable, NodeRefused, _SessionLost) as exc:  # _SessionLost: it reset mid-handshake
                error = str(exc)
                received = (port.bytes_in if port else 0) - bytes_before
                if received and self._decoder.frames == frames_before:
                    # Bytes arrive but never an intact frame: the commonest wiring fault, worth naming.
                    error += f"; {received} bytes received but no intact frame (baud rate? TX/RX swapped? noise?)"
                self._set_state(LinkState.HANDSHAKING, error)
                await asyncio.sleep(s.reconnect_interval_s)
                continue
            if info is None:  # incompatible: state and error already set
                await asyncio.sleep(s.reconnect_interval_s)
                continue
            try:
                await self._heartbeats()
            except (NodeUnavailable, NodeRefused, _SessionLost) as exc:
                self._connected.clear()
                self._set_state(LinkState.HANDSHAKING, str(exc))
                self._emit(NodeEventKind.DISCONNECTED, str(exc))

    async def _handshake(self) -> NodeInfo | None:
        s = self.settings
        hello = p.Hello(p.PROTOCOL_MAJOR, p.PROTOCOL_MINOR, round(s.failsafe_timeout_s * 1000))
        reply = await self._request(hello, p.HelloAck)
        self.counters["handshakes"] += 1
        self._last_event_seq = -1
        info = NodeInfo(
            node_id=reply.node_id,
            firmware=reply.firmware,
            protocol=f"{reply.major}.{reply.minor}",
            capabilities=frozenset(name for bit, name in p.CAPABILITY_NAMES.items() if reply.capabilities & bit),
            soil_probes=reply.probes,
            failsafe_s=reply.failsafe_ms / 1000,
            max_valve_open_s=reply.max_valve_ms / 1000,
        )
        self._info = info
        if reply.major != p.PROTOCOL_MAJOR:
            side = "the node's firmware" if reply.major < p.PROTOCOL_MAJOR else "the hub"
            self._set_state(
                LinkState.INCOMPATIBLE,
                f"node {reply.node_id} (firmware {reply.firmware}) speaks protocol {info.protocol}, this hub speaks "
                f"{p.PROTOCOL_MAJOR}.{p.PROTOCOL_MINOR}: update {side}",
            )
            return None
        if abs(info.failsafe_s - s.failsafe_timeout_s) > 0.001:
            log.warning(
                "sensor node keeps its fail-safe at %.3f s (asked for %.3f s)", info.failsafe_s, s.failsafe_timeout_s
            )
        # The state the node is in now is the baseline (noted on arrival, see _observe); changes from what we knew
        # before the link dropped are events.
        await self._request(p.GetStatus(), p.Status)
        self._last_heartbeat = time.monotonic()
        self._set_state(LinkState.CONNECTED, None)
        self._connected.set()
        self._emit(NodeEventKind.CONNECTED, None, node_id=info.node_id, firmware=info.firmware)
        return info

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_interval_s
        while True:
            await asyncio.sleep(interval)
            await self._request(p.Heartbeat(), p.HeartbeatAck)
            self._last_heartbeat = time.monotonic()
            if self._valve_closed_unexplained:
                await self._request(p.GetStatus(), p.Status)  # its answer gives the reason (_observe)

    # -- request / response ---------------------------------------------------------------------------------------
    async def _session_request(self, message: p.Message, expect: type[M]) -> M:
        if self._state is LinkState.INCOMPATIBLE:
            raise NodeIncompatible(self._last_error or "incompatible node")
        if self._state is not LinkState.CONNECTED:
            detail = f": {self._last_error}" if self._last_error else ""
            raise NodeUnavailable(f"sensor node {self._state.value}{detail}")
        try:
            return await self._request(message, expect)
        except _SessionLost as exc:
            raise NodeUnavailable(str(exc)) from exc

    async def _request(self, message: p.Message, expect: type[M]) -> M:
        name = REQUEST_NAMES.get(message.TYPE, hex(message.TYPE))
        s = self.settings
        async with self._lock:
            port = self._port
            if port is None or not port.is_open:
                raise NodeUnavailable(f"{s.port} is not open")
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            wire = p.encode_message(message, seq)
            future: asyncio.Future[p.Message] = asyncio.get_running_loop().create_future()
            self._pending = (message.TYPE, seq, future)
            self.counters["requests"] += 1
            try:
                for attempt in range(s.retries + 1):
                    if attempt:
                        self.counters["retries"] += 1
                    if not port.write(wire):
                        self.counters["tx_dropped"] += 1
                    await asyncio.wait({future}, timeout=s.response_timeout_s)
                    if future.done():
                        break
                else:
                    self.counters["timeouts"] += 1
                    raise NodeUnavailable(f"no answer to {name} after {s.retries + 1} tries")
            finally:
                self._pending = None
            reply = future.result()  # raises NodeUnavailable if the port was lost meanwhile
        if isinstance(reply, p.Error):
            if reply.code == p.ERR_NO_SESSION:
                raise _SessionLost(f"the node forgot the session ({name} refused): it restarted")
            raise NodeRefused(name, reply.name())
        if not isinstance(reply, expect):
            self.counters["payload_errors"] += 1
            raise NodeUnavailable(f"{name} answered with {type(reply).__name__}")
        return reply

    # -- receiving ------------------------------------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            self._last_rx = time.monotonic()
            self._on_frame(frame)

    def _on_frame(self, frame: p.Frame) -> None:
        t = frame.type
        if t == p.EVENT:
            self._on_event(frame)
            return
        pending = self._pending
        if not t & p.RESPONSE:
            self.counters["unexpected_frames"] += 1
            return
        if pending is None or frame.seq != pending[1] or t not in (pending[0] | p.RESPONSE, p.ERROR):
            # An answer to a retransmission whose first answer already arrived, or to a request given up on.
            self.counters["late_responses"] += 1
            return
        future = pending[2]
        if future.done():
            self.counters["late_responses"] += 1
            return
        try:
            message = p.decode_message(frame)
        except p.PayloadError as exc:
            # CRC-intact but undecodable: a firmware bug or version skew. Leave the request to time out and retry.
            self.counters["payload_errors"] += 1
            self._last_error = f"undecodable answer: {exc}"
            return
        self._observe(message)
        future.set_result(message)

    def _on_event(self, frame: p.Frame) -> None:
        port = self._port
        if port is not None:
            port.write(p.encode_frame(p.EVENT_ACK, frame.seq))  # ack even a duplicate: our last ack was lost
        if frame.seq == self._last_event_seq:
            self.counters["duplicate_events"] += 1
            return
        self._last_event_seq = frame.seq
        try:
            event = p.Event.decode(frame.payload)
        except p.PayloadError:
            self.counters["payload_errors"] += 1
            return
        self.counters["events"] += 1
        if event.kind == p.EVENT_DOOR:
            self._note_door(bool(event.value))
        elif event.kind == p.EVENT_VALVE_CLOSED:
            self._note_valve(False, event.value)

    # -- state tracking and events --------------------------------------------------------------------------------
    def _observe(self, message: p.Message) -> None:
        """Note the node's state from an answer as it arrives, in wire order with the EVENT frames: applied later
        (when the requester resumes) it could overwrite a newer EVENT and invent a door flip-flop."""
        if isinstance(message, p.HeartbeatAck | p.Sensors):
            self._note_flags(message.flags)
        elif isinstance(message, p.Status):
            self._note_door(message.door_open)
            self._note_valve(message.valve_open, message.valve_reason)
        elif isinstance(message, p.Valve):
            self._note_valve(message.open, message.reason)

    def _note_flags(self, flags: int) -> None:
        self._note_door(bool(flags & p.FLAG_DOOR_OPEN))
        valve_open = bool(flags & p.FLAG_VALVE_OPEN)
        if self._valve_open and not valve_open:
            # Closed by the node and its EVENT lost: the heartbeat loop asks GET_STATUS for the reason.
            self._valve_closed_unexplained = True
        self._valve_open = valve_open

    def _note_door(self, door_open: bool) -> None:
        previous, self._door_open = self._door_open, door_open
        if previous == door_open or (previous is None and not door_open):
            return
        self._emit(NodeEventKind.DOOR_OPENED if door_open else NodeEventKind.DOOR_CLOSED, None)

    def _note_valve(self, valve_open: bool, reason: int) -> None:
        was_open = self._valve_open or self._valve_closed_unexplained
        self._valve_open = valve_open
        self._valve_closed_unexplained = False
        if was_open and not valve_open and reason != p.REASON_COMMAND:
            self._emit(NodeEventKind.VALVE_CLOSED, _reason(reason))

    def _emit(self, kind: NodeEventKind, reason: str | None, **detail: str) -> None:
        event = NodeEvent(kind, time.monotonic(), reason, detail)
        for subscription in list(self._subscriptions):
            subscription.put(event)

    def _set_state(self, state: LinkState, error: str | None) -> None:
        if state is not self._state:
            log.info("sensor node %s -> %s%s", self._state.value, state.value, f" ({error})" if error else "")
        self._state = state
        if error is not None or state is LinkState.CONNECTED:
            self._last_error = error

    def _on_port_lost(self, reason: str) -> None:
        self._lost_reason = reason
        self._port_lost.set()

    def _close_port(self, reason: str) -> None:
        port, self._port = self._port, None
        if port is not None:
            self._bytes_in += port.bytes_in
            self._bytes_out += port.bytes_out
            self.counters["tx_dropped"] += port.tx_dropped
            port.close()
        pending = self._pending
        if pending is not None and not pending[2].done():
            pending[2].set_exception(NodeUnavailable(f"{self.settings.port}: {reason}"))
        if self._state is LinkState.CONNECTED:
            self._emit(NodeEventKind.DISCONNECTED, reason)
        self._connected.clear()
        self._lost_reason = ""


def _reason(code: int) -> str:
    return p.REASON_NAMES.get(code, f"reason {code}")


def _valve_state(reply: p.Valve) -> ValveState:
    return ValveState(reply.open, reply.remaining_ms / 1000, _reason(reply.reason))
