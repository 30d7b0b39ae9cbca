"""The node firmware's logic (vhnode.node.Node) on a scripted board with exact time: the safety rules first.

The board here stands for the hardware (pins, ADC, UARTs), not for any of our code: the Node, its protocol
and its parsers are the real ones.
"""

from __future__ import annotations

import pytest

from drivers.micropython.vhnode import pms5003
from drivers.micropython.vhnode import protocol as p
from drivers.micropython.vhnode.node import Node, NodeConfig
from drivers.micropython.vhnode.scripted import ScriptedPins


class Pins(ScriptedPins):
    def __init__(self, probes: int = 3) -> None:
        super().__init__([100 * (i + 1) for i in range(probes)])
        self.valve_writes: list[bool] = []
        self.rx = bytearray()
        self.tx = bytearray()
        self.air = bytearray()

    def set_valve(self, open: bool) -> None:
        super().set_valve(open)
        self.valve_writes.append(open)

    def is_open(self) -> bool:  # a call, so that mypy does not carry an earlier assert on the attribute over
        return self.valve

    def read_hub(self) -> bytes:
        data, self.rx = bytes(self.rx), bytearray()
        return data

    def write_hub(self, data: bytes) -> None:
        self.tx.extend(data)

    def read_air(self) -> bytes:
        data, self.air = bytes(self.air), bytearray()
        return data


class Hub:
    """Drives a Node through its UART bytes and decodes what it answers."""

    def __init__(self, node: Node, pins: Pins) -> None:
        self.node = node
        self.pins = pins
        self.now = 0
        self.seq = 0
        self.decoder = p.FrameDecoder()

    def step(self, to_ms: int | None = None) -> None:
        if to_ms is not None:
            self.now = to_ms
        self.node.step(self.now)

    def frames(self) -> list[p.Frame]:
        data, self.pins.tx = bytes(self.pins.tx), bytearray()
        return self.decoder.feed(data)

    def send(self, message: p.Message, seq: int | None = None) -> list[p.Message]:
        if seq is None:
            self.seq = (self.seq + 1) & 0xFF
            seq = self.seq
        self.pins.rx.extend(p.encode_message(message, seq))
        self.step()
        return [p.decode_message(f) for f in self.frames()]

    def hello(self, failsafe_ms: int = 1000, major: int = p.PROTOCOL_MAJOR) -> p.HelloAck:
        (ack,) = [m for m in self.send(p.Hello(major, 0, failsafe_ms)) if isinstance(m, p.HelloAck)]
        return ack


def make(probes: int = 3, **config: int) -> tuple[Hub, Node, Pins]:
    pins = Pins(probes)
    node = Node(pins, NodeConfig("n1", **config), 0)  # type: ignore[arg-type]
    return Hub(node, pins), node, pins


def test_valve_is_driven_closed_at_boot() -> None:
    _, node, pins = make()
    assert pins.valve_writes == [False]
    assert not node.valve_open


def test_requests_before_hello_are_refused_with_no_session() -> None:
    hub, _, pins = make()
    assert hub.send(p.SetValve(True, 1000)) == [p.Error(p.SET_VALVE, p.ERR_NO_SESSION)]
    assert not pins.is_open()


def test_hello_ack_describes_the_node_and_clamps_the_failsafe() -> None:
    hub, node, _ = make(probes=4, failsafe_min_ms=500, failsafe_max_ms=60_000)
    ack = hub.hello(failsafe_ms=10)
    assert ack == p.HelloAck(1, 0, 0x0F, 4, 500, 7_200_000, node.config.firmware, "n1")
    assert hub.hello(failsafe_ms=10**9).failsafe_ms == 60_000
    assert hub.hello(failsafe_ms=2000).failsafe_ms == 2000


def test_failsafe_closes_the_valve_exactly_when_the_hub_falls_silent() -> None:
    hub, node, pins = make()
    hub.hello(failsafe_ms=1000)
    hub.send(p.SetValve(True, 60_000))
    assert pins.is_open()
    # Heartbeats every 900 ms keep it open well past the fail-safe timeout.
    for t in range(900, 5000, 900):
        hub.step(t)
        hub.send(p.Heartbeat())
    assert pins.is_open()
    last_heard = hub.now
    hub.step(last_heard + 999)
    assert pins.is_open()
    hub.step(last_heard + 1000)
    assert not pins.is_open()
    assert node.valve_reason == p.REASON_FAILSAFE
    assert node.failsafe_trips == 1
    (event,) = [p.decode_message(f) for f in hub.frames()]
    assert event == p.Event(p.EVENT_VALVE_CLOSED, p.REASON_FAILSAFE, last_heard + 1000)


def test_any_intact_request_counts_as_the_hub_being_alive() -> None:
    hub, _, pins = make()
    hub.hello(failsafe_ms=1000)
    hub.send(p.SetValve(True, 60_000))
    hub.step(800)
    hub.send(p.GetStatus())
    hub.step(1500)
    assert pins.is_open()
    # Garbage and damaged frames are not the hub speaking.
    hub.pins.rx.extend(b"\x00\x13\x37\x00" + p.encode_message(p.Heartbeat(), 9)[:-3] + b"\x00")
    hub.step(1799)
    assert pins.is_open()
    hub.step(1800)
    assert not pins.is_open()


def test_valve_closes_by_itself_at_its_max_duration() -> None:
    hub, node, pins = make()
    hub.hello(failsafe_ms=100_000)
    (valve,) = hub.send(p.SetValve(True, 3000))
    assert valve == p.Valve(True, 3000, p.REASON_COMMAND)
    hub.step(1000)
    (status,) = hub.send(p.GetStatus())
    assert isinstance(status, p.Status)
    assert status.valve_remaining_ms == 2000
    hub.step(2999)
    assert pins.is_open()
    hub.step(3000)
    assert not pins.is_open()
    assert node.valve_reason == p.REASON_MAX_DURATION
    # Opening again while open moves the deadline (declared state), it does not stack.
    hub.send(p.SetValve(True, 1000))
    hub.step(3500)
    hub.send(p.SetValve(True, 1000))
    hub.step(4499)
    assert pins.is_open()
    hub.step(4500)
    assert not pins.is_open()


@pytest.mark.parametrize("max_open_ms", [0, 7_200_001])
def test_valve_open_without_a_sane_deadline_is_refused(max_open_ms: int) -> None:
    hub, _, pins = make()
    hub.hello()
    assert hub.send(p.SetValve(True, max_open_ms)) == [p.Error(p.SET_VALVE, p.ERR_BAD_VALUE)]
    assert not pins.is_open()


def test_a_retransmitted_request_is_answered_again_not_done_again() -> None:
    hub, node, pins = make()
    hub.hello(failsafe_ms=100_000)
    first = hub.send(p.SetValve(True, 5000), seq=42)
    hub.step(1000)
    again = hub.send(p.SetValve(True, 5000), seq=42)  # the answer was lost; same seq
    assert again == first  # the cached answer: remaining 5000, not 4000
    assert node.valve_commands == 1
    assert node.duplicates == 1
    assert pins.valve_writes == [False, True]
    # A new seq is a new command.
    hub.send(p.SetValve(False, 0), seq=43)
    assert node.valve_commands == 2
    assert not pins.is_open()


def test_read_requests_are_answered_fresh_and_a_reused_seq_is_a_new_command() -> None:
    hub, node, pins = make()
    hub.hello(failsafe_ms=100_000)
    (before,) = hub.send(p.Heartbeat(), seq=7)
    pins.door = True
    hub.step(100)
    hub.step(200)
    hub.frames()
    (again,) = hub.send(p.Heartbeat(), seq=7)  # a retransmission of a read: the current state, not a stale copy
    assert isinstance(before, p.HeartbeatAck)
    assert isinstance(again, p.HeartbeatAck)
    assert not before.flags & p.FLAG_DOOR_OPEN
    assert again.flags & p.FLAG_DOOR_OPEN
    assert node.duplicates == 0
    # seq wraps after 256 requests: the same seq after other requests is a new SET_VALVE, not a duplicate.
    hub.send(p.SetValve(True, 1000), seq=9)
    hub.send(p.Heartbeat(), seq=10)
    hub.send(p.SetValve(False, 0), seq=9)
    assert node.valve_commands == 2
    assert not pins.is_open()


def test_hello_of_another_major_ends_the_session_and_closes_the_valve() -> None:
    hub, node, pins = make()
    hub.hello(failsafe_ms=100_000)
    hub.send(p.SetValve(True, 50_000))
    ack = hub.hello(major=2)
    assert ack.major == 1  # still answered, so the hub can say which side to update
    assert not node.session
    assert not pins.is_open()
    assert hub.send(p.Heartbeat()) == [p.Error(p.HEARTBEAT, p.ERR_NO_SESSION)]


def test_unknown_and_malformed_requests() -> None:
    hub, _, _ = make()
    hub.hello()
    assert hub.send(p.Event(1, 1, 1)) == []  # not something a hub sends: ignored
    assert hub.node.unexpected == 1
    hub.pins.rx.extend(p.encode_frame(0x3E, 5, b""))
    hub.step()
    assert [p.decode_message(f) for f in hub.frames()] == [p.Error(0x3E, p.ERR_UNKNOWN_TYPE)]
    hub.pins.rx.extend(p.encode_frame(p.SET_VALVE, 6, b"\x01"))
    hub.step()
    assert [p.decode_message(f) for f in hub.frames()] == [p.Error(p.SET_VALVE, p.ERR_BAD_PAYLOAD)]


def test_capabilities_missing_valve_refuses_it() -> None:
    hub, _, pins = make(capabilities=p.CAP_SOIL)
    ack = hub.hello()
    assert ack.capabilities == p.CAP_SOIL
    assert hub.send(p.SetValve(True, 1000)) == [p.Error(p.SET_VALVE, p.ERR_UNSUPPORTED)]
    assert not pins.is_open()


def test_door_is_debounced_and_reported_until_acknowledged() -> None:
    hub, node, pins = make(door_debounce_ms=50, event_retry_ms=250, event_max_tries=3)
    hub.hello(failsafe_ms=100_000)
    # A bounce shorter than the debounce time is not an event.
    pins.door = True
    hub.step(10)
    pins.door = False
    hub.step(40)
    hub.step(200)
    assert hub.frames() == []
    pins.door = True
    hub.step(300)
    hub.step(349)
    assert hub.frames() == []
    hub.step(350)
    (frame,) = hub.frames()
    assert p.decode_message(frame) == p.Event(p.EVENT_DOOR, 1, 350)
    # Not acknowledged: sent again after the retry time with the same seq, then dropped after max tries.
    hub.step(599)
    assert hub.frames() == []
    hub.step(600)
    (again,) = hub.frames()
    assert again == frame
    hub.step(850)
    assert len(hub.frames()) == 1
    hub.step(1100)
    assert hub.frames() == []
    assert node.events_dropped == 1
    # The next one is acknowledged and is not repeated.
    pins.door = False
    hub.step(1200)
    hub.step(1250)
    (closed,) = hub.frames()
    assert p.decode_message(closed) == p.Event(p.EVENT_DOOR, 0, 1250)
    assert hub.send(p.EventAck(), seq=closed.seq) == []
    hub.step(2000)
    assert hub.frames() == []
    assert node.pending_events() == 0
    # Heartbeat flags carry the door state whatever happened to the events.
    pins.door = True
    hub.step(2100)
    hub.step(2200)
    hub.frames()  # its event, which this hub does not acknowledge
    (ack,) = [m for m in hub.send(p.Heartbeat()) if isinstance(m, p.HeartbeatAck)]
    assert ack.flags & p.FLAG_DOOR_OPEN


def test_events_wait_for_a_session_and_the_queue_is_bounded() -> None:
    hub, node, pins = make(door_debounce_ms=0, event_queue=2)
    for t in range(1, 8):
        pins.door = not pins.door
        hub.step(t * 10)
        hub.step(t * 10 + 1)
    assert hub.frames() == []  # no session: nobody to tell
    assert node.pending_events() == 2
    assert node.events_dropped >= 5
    replies = hub.send(p.Hello(p.PROTOCOL_MAJOR, 0, 1000))
    assert [type(m) for m in replies] == [p.HelloAck, p.Event]  # the oldest kept event goes out at once


def test_sensors_carry_probes_door_and_the_last_air_frame() -> None:
    hub, _, pins = make(probes=2)
    hub.hello(failsafe_ms=100_000)
    (empty,) = hub.send(p.ReadSensors())
    assert empty == p.Sensors(0, [100, 200])
    frame = pms5003.encode_frame([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    pins.air.extend(b"\x42\x4d\xff" + frame[:20])  # noise and a cut frame first
    hub.step(1000)
    pins.air.extend(frame[20:] + frame)
    hub.step(1500)
    pins.soil = [65535, 0]
    pins.door = True
    hub.step(1600)
    hub.step(1700)
    (door_event,) = hub.frames()
    hub.send(p.EventAck(), seq=door_event.seq)
    (sensors,) = hub.send(p.ReadSensors())
    assert sensors == p.Sensors(p.FLAG_DOOR_OPEN | p.FLAG_AIR_OK, [65535, 0], frame, 200)
    assert hub.node.air.errors() >= 1
    hub.step(1500 + 10_000)
    (later,) = hub.send(p.ReadSensors())
    assert isinstance(later, p.Sensors)
    assert not later.flags & p.FLAG_AIR_OK
    assert later.air_age_ms == 10_000


def test_status_reports_counters() -> None:
    hub, _, _ = make()
    hub.hello(failsafe_ms=100_000)
    hub.pins.rx.extend(b"\x00\x01\x02\x03\x00")
    hub.send(p.SetValve(False, 0), seq=5)
    hub.send(p.SetValve(False, 0), seq=5)
    (status,) = hub.send(p.GetStatus())
    assert isinstance(status, p.Status)
    counters = dict(zip(p.STATUS_COUNTERS, status.counters, strict=True))
    assert counters["rx_frames"] == 4
    assert counters["rx_framing_errors"] + counters["rx_crc_errors"] == 1
    assert counters["duplicates"] == 1
