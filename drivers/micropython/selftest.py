"""Self-test of the firmware's pure modules, for MicroPython itself (the unix port on a PC, or a board via
`mpremote run selftest.py`) and for CPython alike: it proves the shared code runs on the runtime that has
neither typing nor dataclasses. The hub's pytest suite covers the same code far more deeply under CPython.

Prints one line per failure and a closing 'selftest: N passed, M failed'; exits 1 on any failure.
"""

import sys

from vhnode import pms5003
from vhnode import protocol as p
from vhnode.node import Node, NodeConfig
from vhnode.scripted import ScriptedPins


class FakeBoard(ScriptedPins):
    def __init__(self) -> None:
        super().__init__([1000, 2000, 3000])
        self.inbox = b""
        self.outbox = bytearray()
        self.air = b""

    def valve_is_open(self) -> bool:  # a call, so that a type checker does not carry an earlier assert over
        return self.valve

    def read_hub(self) -> bytes:
        data = self.inbox
        self.inbox = b""
        return data

    def write_hub(self, data: bytes) -> None:
        self.outbox.extend(data)

    def read_air(self) -> bytes:
        data = self.air
        self.air = b""
        return data

    def take(self) -> list[p.Message]:
        frames = p.FrameDecoder().feed(bytes(self.outbox))
        self.outbox = bytearray()
        return [p.decode_message(frame) for frame in frames]


def check_crc() -> None:
    assert p.crc16(b"123456789") == 0x29B1
    assert p.crc16(b"") == 0xFFFF


def check_cobs() -> None:
    cases = [b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", bytes(range(1, 255)), bytes(range(256)) * 2]
    for data in cases:
        stuffed = p.cobs_encode(data)
        assert stuffed.find(b"\x00") < 0
        assert p.cobs_decode(stuffed) == data
    for bad in (b"\x05\x01", b"\x02\x00"):
        try:
            p.cobs_decode(bad)
        except p.CobsError:
            continue
        raise AssertionError("no CobsError")


def check_messages() -> None:
    frame = pms5003.encode_frame([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    messages = [
        p.Hello(1, 0, 30000),
        p.HelloAck(1, 0, 15, 3, 30000, 7200000, "1.0.0", "a1b2c3"),
        p.Heartbeat(),
        p.HeartbeatAck(123, 5),
        p.ReadSensors(),
        p.Sensors(2, [0, 65535, 1234], frame, 500),
        p.Sensors(0, []),
        p.SetValve(True, 60000),
        p.Valve(False, 0, p.REASON_FAILSAFE),
        p.GetStatus(),
        p.Status(1, True, 2, 3, False, 4, [5, 6, 7, 8, 9, 10, 11, 12, 13]),
        p.Event(p.EVENT_DOOR, 1, 99),
        p.EventAck(),
        p.Error(p.SET_VALVE, p.ERR_BAD_VALUE),
    ]
    wire = bytearray(b"garbage\x00\x01\x02")
    for seq, message in enumerate(messages):
        wire.extend(p.encode_message(message, seq))
        wire.extend(b"\xff\x00\x13")  # noise between frames
    decoder = p.FrameDecoder()
    frames = []
    for i in range(0, len(wire), 7):  # arbitrary chunking, as a UART delivers it
        frames.extend(decoder.feed(bytes(wire[i : i + 7])))
    assert [f.seq for f in frames] == list(range(len(messages))), frames
    for i, message in enumerate(messages):  # no zip(strict=): MicroPython's zip has no keywords
        assert p.decode_message(frames[i]) == message, (frames[i], message)
    assert decoder.errors() > 0
    corrupted = bytearray(p.encode_message(p.Heartbeat(), 1))
    corrupted[2] ^= 0x40
    decoder = p.FrameDecoder()
    assert decoder.feed(bytes(corrupted)) == []
    assert decoder.crc_errors + decoder.cobs_errors == 1


def check_pms() -> None:
    values = [10, 25, 40, 9, 22, 37, 3000, 900, 200, 20, 5, 1]
    frame = pms5003.encode_frame(values)
    assert len(frame) == 32
    assert pms5003.parse_frame(frame) == values
    stream = pms5003.PmsStream()
    got = []
    for chunk in (b"\x42\x4d\x00", frame[:10], frame[10:], b"\x42", frame, b"junk" + frame[:31] + b"\x00", frame):
        got.extend(stream.feed(chunk))
    assert got == [frame, frame, frame], got
    assert stream.errors() >= 1
    bad = bytearray(frame)
    bad[-1] ^= 1
    try:
        pms5003.parse_frame(bytes(bad))
    except pms5003.PmsChecksumError:
        return
    raise AssertionError("no PmsChecksumError")


def check_node() -> None:
    board = FakeBoard()
    node = Node(board, NodeConfig("selftest", failsafe_min_ms=100), 0)
    now = 0

    def send(message: p.Message, seq: int) -> list[p.Message]:
        board.inbox = p.encode_message(message, seq)
        node.step(now)
        return board.take()

    reply = send(p.Heartbeat(), 1)
    assert reply == [p.Error(p.HEARTBEAT, p.ERR_NO_SESSION)], reply
    reply = send(p.Hello(1, 0, 500), 2)
    assert isinstance(reply[0], p.HelloAck)
    assert reply[0].failsafe_ms == 500
    assert reply[0].probes == 3
    reply = send(p.SetValve(True, 10_000), 3)
    assert reply == [p.Valve(True, 10_000, p.REASON_COMMAND)]
    assert board.valve_is_open()
    assert send(p.SetValve(True, 10_000), 3) == reply  # a retransmission: answered again, not redone
    assert node.valve_commands == 1
    assert node.duplicates == 1
    reply = send(p.ReadSensors(), 4)
    assert isinstance(reply[0], p.Sensors)
    assert reply[0].soil == [1000, 2000, 3000]
    now = 499
    node.step(now)
    assert board.valve_is_open()  # the hub was heard at 0: the fail-safe has 1 ms to go
    now = 500
    node.step(now)
    assert not board.valve_is_open()
    assert node.valve_reason == p.REASON_FAILSAFE
    event = board.take()
    assert event == [p.Event(p.EVENT_VALVE_CLOSED, p.REASON_FAILSAFE, 500)], event
    assert not send(p.EventAck(), 1)  # the node's first event has seq 1
    assert node.pending_events() == 0
    board.door = True
    for now in (600, 700):
        node.step(now)
    event = board.take()
    assert event == [p.Event(p.EVENT_DOOR, 1, 700)], event


def main() -> int:
    passed = 0
    failed = 0
    for check in (check_crc, check_cobs, check_messages, check_pms, check_node):
        try:
            check()
            passed += 1
        except Exception as exc:
            failed += 1
            print("FAILED", check.__name__, repr(exc))
    print(f"selftest: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
