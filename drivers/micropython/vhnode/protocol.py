"""The hub <-> sensor node serial link, version 1.0: framing, CRC and messages (spec: drivers/serial_link/PROTOCOL.md).

This one module runs on both ends: under CPython in the hub (drivers/serial_link) and under MicroPython on the
node. So it uses only what both have: `struct`, bytes/bytearray, plain classes and exceptions. No `typing`,
no dataclasses, no `from __future__` (MicroPython has none of them built in); annotations are written so that
CPython can evaluate them and MicroPython, which ignores annotations, never needs to. Names follow the spec.
"""

import struct

# -- Versions ---------------------------------------------------------------------------------------------------
# A different MAJOR is incompatible; a higher MINOR only appends optional fields and message types, which an older
# peer ignores (payload bytes beyond the known fields are skipped, unknown request types get ERROR UNKNOWN_TYPE).
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0

# -- Frame limits -----------------------------------------------------------------------------------------------
HEADER_SIZE = 2  # type, seq
CRC_SIZE = 2
MAX_PAYLOAD = 240
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE  # 244 bytes before stuffing
# COBS adds one code byte per started run of 254 bytes: at most 2 here.
MAX_STUFFED = MAX_FRAME + 2
DELIMITER = 0x00

# -- Message types (spec section 4). Bit 7: response. Bit 6: the node originated the exchange. -------------------
RESPONSE = 0x80
HELLO = 0x01
HEARTBEAT = 0x02
READ_SENSORS = 0x03
SET_VALVE = 0x04
GET_STATUS = 0x05
HELLO_ACK = HELLO | RESPONSE
HEARTBEAT_ACK = HEARTBEAT | RESPONSE
SENSORS = READ_SENSORS | RESPONSE
VALVE = SET_VALVE | RESPONSE
STATUS = GET_STATUS | RESPONSE
EVENT = 0x40
EVENT_ACK = EVENT | RESPONSE
ERROR = 0xFF  # a response to any request that could not be carried out

# ERROR codes
ERR_UNKNOWN_TYPE = 1
ERR_BAD_PAYLOAD = 2
ERR_NO_SESSION = 3
ERR_INCOMPATIBLE = 4
ERR_BAD_VALUE = 5
ERR_UNSUPPORTED = 6
ERROR_NAMES = {
    ERR_UNKNOWN_TYPE: "unknown_type",
    ERR_BAD_PAYLOAD: "bad_payload",
    ERR_NO_SESSION: "no_session",
    ERR_INCOMPATIBLE: "incompatible",
    ERR_BAD_VALUE: "bad_value",
    ERR_UNSUPPORTED: "unsupported",
}

# Capabilities (HELLO_ACK)
CAP_SOIL = 0x0001
CAP_DOOR = 0x0002
CAP_AIR = 0x0004
CAP_VALVE = 0x0008
CAPABILITY_NAMES = {CAP_SOIL: "soil", CAP_DOOR: "door", CAP_AIR: "air", CAP_VALVE: "valve"}

# HEARTBEAT_ACK / SENSORS flags
FLAG_VALVE_OPEN = 0x01
FLAG_DOOR_OPEN = 0x02
FLAG_AIR_OK = 0x04

# Why the valve is in its state (VALVE, STATUS, EVENT VALVE_CLOSED)
REASON_BOOT = 0
REASON_COMMAND = 1
REASON_MAX_DURATION = 2
REASON_FAILSAFE = 3
REASON_NAMES = {
    REASON_BOOT: "boot",
    REASON_COMMAND: "command",
    REASON_MAX_DURATION: "max_duration",
    REASON_FAILSAFE: "failsafe",
}

# EVENT kinds
EVENT_DOOR = 1  # value: 1 open, 0 closed
EVENT_VALVE_CLOSED = 2  # value: REASON_*

PMS_FRAME_SIZE = 32  # an air-quality frame is forwarded whole (see vhnode.pms5003)


# -- Errors: every malformed input raises one of these, never anything else ---------------------------------------
class ProtocolError(ValueError):
    """Base of every error raised on malformed link data."""


class FrameError(ProtocolError):
    """A frame could not be recovered from the bytes between two delimiters."""


class CobsError(FrameError):
    """Byte stuffing is inconsistent (a code byte points past the end, or a zero inside the frame)."""


class FrameLengthError(FrameError):
    """Shorter than header + CRC, or longer than MAX_FRAME."""


class CrcError(FrameError):
    """CRC-16/CCITT-FALSE does not match: the frame was corrupted on the wire."""


class PayloadError(ProtocolError):
    """A frame was intact but its payload does not decode as its message type."""


# -- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final xor; check("123456789") = 0x29B1 -------
def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray, crc: int = 0xFFFF) -> int:
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


# -- COBS (Cheshire & Baker, 1999): removes every 0x00 so that 0x00 can delimit frames ------------------------------
def cobs_encode(data: bytes) -> bytes:
    out = bytearray(b"\x00")  # placeholder for the first code byte
    code_at = 0
    code = 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:  # a full run of 254 non-zero bytes: the code 0xFF means "no zero follows"
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError("zero byte inside a stuffed frame")
        end = i + code
        if end > n:
            raise CobsError(f"code byte {code} at {i} runs past the end ({n} bytes)")
        block = data[i + 1 : end]
        if block.find(b"\x00") >= 0:
            raise CobsError("zero byte inside a stuffed frame")
        out.extend(block)
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# -- Frames -------------------------------------------------------------------------------------------------------
class Frame:
    """type (u8), seq (u8), payload (0..MAX_PAYLOAD bytes); on the wire followed by CRC-16 and stuffed."""

    def __init__(self, type: int, seq: int, payload: bytes = b"") -> None:
        self.type = type
        self.seq = seq
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Frame)
            and self.type == other.type
            and self.seq == other.seq
            and self.payload == other.payload
        )

    def __repr__(self) -> str:
        return f"Frame(type=0x{self.type:02x}, seq={self.seq}, payload={self.payload!r})"

    def is_response(self) -> bool:
        return bool(self.type & RESPONSE)


def encode_frame(type: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes to write: delimiter, COBS(type, seq, payload, CRC-16 big-endian), delimiter.

    The leading delimiter ends whatever partial frame the receiver holds (noise, a frame cut by a reset), so this
    frame is never glued to it and lost."""
    if not 0 <= type <= 0xFF or not 0 <= seq <= 0xFF:
        raise ValueError("type and seq are single bytes")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytearray((type, seq))
    body.extend(payload)
    crc = crc16(body)
    body.append(crc >> 8)
    body.append(crc & 0xFF)
    return b"\x00" + cobs_encode(bytes(body)) + b"\x00"


def decode_frame(stuffed: bytes) -> Frame:
    """One frame from the bytes between two delimiters (the delimiters excluded). Raises FrameError."""
    if len(stuffed) > MAX_STUFFED:
        raise FrameLengthError(f"{len(stuffed)} stuffed bytes exceed {MAX_STUFFED}")
    raw = cobs_decode(stuffed)
    n = len(raw)
    if n < HEADER_SIZE + CRC_SIZE:
        raise FrameLengthError(f"frame of {n} bytes is shorter than header and CRC")
    if n > MAX_FRAME:
        raise FrameLengthError(f"frame of {n} bytes exceeds {MAX_FRAME}")
    body = raw[: n - CRC_SIZE]
    if crc16(body) != (raw[n - 2] << 8) | raw[n - 1]:
        raise CrcError("CRC mismatch")
    return Frame(raw[0], raw[1], raw[HEADER_SIZE : n - CRC_SIZE])


class FrameDecoder:
    """Turns a byte stream into frames, resynchronising on the next delimiter after anything it cannot decode.

    Never raises on input: garbage, truncated frames (a gap in the stream), bad CRCs and runs longer than a frame
    are counted and dropped. Bytes before the first delimiter are part of a frame whose start was missed: counted
    as a framing error like any other fragment."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overrun = False
        self.frames = 0
        self.cobs_errors = 0
        self.length_errors = 0
        self.crc_errors = 0
        self.overruns = 0

    def errors(self) -> int:
        return self.cobs_errors + self.length_errors + self.crc_errors + self.overruns

    def reset(self) -> None:
        """Forget a partial frame (the port was reopened)."""
        self._buf = bytearray()
        self._overrun = False

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        start = 0
        n = len(data)
        while start < n:
            end = data.find(b"\x00", start)
            stop = n if end < 0 else end
            if not self._overrun and stop > start:
                if len(self._buf) + stop - start > MAX_STUFFED:
                    # Longer than any frame: noise, or a missed delimiter. Skip to the next delimiter.
                    self._overrun = True
                    self.overruns += 1
                    self._buf = bytearray()
                else:
                    self._buf.extend(data[start:stop])
            if end < 0:
                break
            if self._overrun:
                self._overrun = False
            elif len(self._buf):
                frame = self._decode(bytes(self._buf))
                if frame is not None:
                    frames.append(frame)
                self._buf = bytearray()
            start = end + 1
        return frames

    def _decode(self, stuffed: bytes) -> "Frame | None":
        try:
            frame = decode_frame(stuffed)
        except CrcError:
            self.crc_errors += 1
            return None
        except FrameLengthError:
            self.length_errors += 1
            return None
        except CobsError:
            self.cobs_errors += 1
            return None
        self.frames += 1
        return frame


# -- Payload helpers ----------------------------------------------------------------------------------------------
def _need(payload: bytes, size: int, name: str) -> None:
    if len(payload) < size:
        raise PayloadError(f"{name} payload of {len(payload)} bytes, at least {size} expected")


def _check(value: int, bits: int, name: str) -> int:
    # struct.pack on MicroPython truncates out-of-range values silently: check before packing, on both ends.
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name}={value} does not fit in {bits} bits")
    return value


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except ValueError:  # UnicodeDecodeError in CPython, UnicodeError in MicroPython: both are ValueErrors
        raise PayloadError(f"{name} is not UTF-8") from None


def _short_text(text: str, name: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 32:
        raise ValueError(f"{name} longer than 32 bytes")
    return bytes((len(data),)) + data


# -- Messages (spec section 5). Each has TYPE, encode() -> payload, and a static decode(payload). -----------------
class Message:
    TYPE = -1

    def encode(self) -> bytes:
        return b""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        return type(self).__name__ + repr(self.__dict__)


class Hello(Message):
    """hub -> node: opens a session. failsafe_ms: how long the node may go without hearing the hub before it
    closes the valve (the node clamps it to its own limits and answers the value in force)."""

    TYPE = HELLO

    def __init__(self, major: int, minor: int, failsafe_ms: int) -> None:
        self.major = major
        self.minor = minor
        self.failsafe_ms = failsafe_ms

    def encode(self) -> bytes:
        return struct.pack(
            ">BBI", _check(self.major, 8, "major"), _check(self.minor, 8, "minor"), _check(self.failsafe_ms, 32, "ms")
        )

    @staticmethod
    def decode(payload: bytes) -> "Hello":
        _need(payload, 6, "HELLO")
        major, minor, failsafe_ms = struct.unpack_from(">BBI", payload, 0)
        return Hello(major, minor, failsafe_ms)


class HelloAck(Message):
    """node -> hub: who the node is. Always sent, even when the versions are incompatible, so that the hub can
    say which side must be updated. Its first two bytes stay major, minor in every protocol version."""

    TYPE = HELLO_ACK

    def __init__(
        self,
        major: int,
        minor: int,
        capabilities: int,
        probes: int,
        failsafe_ms: int,
        max_valve_ms: int,
        firmware: str,
        node_id: str,
    ) -> None:
        self.major = major
        self.minor = minor
        self.capabilities = capabilities
        self.probes = probes
        self.failsafe_ms = failsafe_ms
        self.max_valve_ms = max_valve_ms
        self.firmware = firmware
        self.node_id = node_id

    def encode(self) -> bytes:
        head = struct.pack(
            ">BBHBII",
            _check(self.major, 8, "major"),
            _check(self.minor, 8, "minor"),
            _check(self.capabilities, 16, "capabilities"),
            _check(self.probes, 8, "probes"),
            _check(self.failsafe_ms, 32, "failsafe_ms"),
            _check(self.max_valve_ms, 32, "max_valve_ms"),
        )
        return head + _short_text(self.firmware, "firmware") + _short_text(self.node_id, "node_id")

    @staticmethod
    def decode(payload: bytes) -> "HelloAck":
        _need(payload, 15, "HELLO_ACK")
        major, minor, caps, probes, failsafe_ms, max_valve_ms = struct.unpack_from(">BBHBII", payload, 0)
        at = 13
        fw_len = payload[at]
        _need(payload, at + 1 + fw_len + 1, "HELLO_ACK")
        firmware = _text(payload[at + 1 : at + 1 + fw_len], "firmware")
        at += 1 + fw_len
        id_len = payload[at]
        _need(payload, at + 1 + id_len, "HELLO_ACK")
        node_id = _text(payload[at + 1 : at + 1 + id_len], "node_id")
        return HelloAck(major, minor, caps, probes, failsafe_ms, max_valve_ms, firmware, node_id)


class Heartbeat(Message):
    """hub -> node: I am alive (resets the node's fail-safe timer); also the link check."""

    TYPE = HEARTBEAT

    @staticmethod
    def decode(payload: bytes) -> "Heartbeat":
        return Heartbeat()


class HeartbeatAck(Message):
    TYPE = HEARTBEAT_ACK

    def __init__(self, uptime_ms: int, flags: int) -> None:
        self.uptime_ms = uptime_ms
        self.flags = flags

    def encode(self) -> bytes:
        return struct.pack(">IB", _check(self.uptime_ms, 32, "uptime_ms"), _check(self.flags, 8, "flags"))

    @staticmethod
    def decode(payload: bytes) -> "HeartbeatAck":
        _need(payload, 5, "HEARTBEAT_ACK")
        uptime_ms, flags = struct.unpack_from(">IB", payload, 0)
        return HeartbeatAck(uptime_ms, flags)


class ReadSensors(Message):
    TYPE = READ_SENSORS

    @staticmethod
    def decode(payload: bytes) -> "ReadSensors":
        return ReadSensors()


class Sensors(Message):
    """node -> hub: raw readings. soil: ADC counts per probe, scaled to 0..65535 (read_u16). air: the last intact
    PMS5003 frame (32 bytes, forwarded verbatim so the hub parses it with the same code as a sensor on its own
    UART) and its age, or b"" when there is none."""

    TYPE = SENSORS

    def __init__(self, flags: int, soil: list[int], air: bytes = b"", air_age_ms: int = 0) -> None:
        self.flags = flags
        self.soil = soil
        self.air = air
        self.air_age_ms = air_age_ms

    def encode(self) -> bytes:
        if len(self.soil) > 32:
            raise ValueError("at most 32 soil probes")
        if len(self.air) not in (0, PMS_FRAME_SIZE):
            raise ValueError("air is one whole PMS5003 frame or nothing")
        out = bytearray(struct.pack(">BB", _check(self.flags, 8, "flags"), len(self.soil)))
        for raw in self.soil:
            out.extend(struct.pack(">H", _check(raw, 16, "soil")))
        out.append(len(self.air))
        if self.air:
            out.extend(self.air)
            out.extend(struct.pack(">I", _check(self.air_age_ms, 32, "air_age_ms")))
        return bytes(out)

    @staticmethod
    def decode(payload: bytes) -> "Sensors":
        _need(payload, 3, "SENSORS")
        flags = payload[0]
        count = payload[1]
        if count > 32:
            raise PayloadError(f"SENSORS with {count} soil probes")
        _need(payload, 2 + 2 * count + 1, "SENSORS")
        soil = [struct.unpack_from(">H", payload, 2 + 2 * i)[0] for i in range(count)]
        at = 2 + 2 * count
        air_len = payload[at]
        if air_len == 0:
            return Sensors(flags, soil)
        if air_len != PMS_FRAME_SIZE:
            raise PayloadError(f"SENSORS with an air frame of {air_len} bytes")
        _need(payload, at + 1 + air_len + 4, "SENSORS")
        air = payload[at + 1 : at + 1 + air_len]
        (air_age_ms,) = struct.unpack_from(">I", payload, at + 1 + air_len)
        return Sensors(flags, soil, air, air_age_ms)


class SetValve(Message):
    """hub -> node: open (with the longest time it may stay open without a new command) or close the valve.
    Repeating an open while open moves the deadline: the hub declares the state, the node keeps it bounded."""

    TYPE = SET_VALVE

    def __init__(self, open: bool, max_open_ms: int) -> None:
        self.open = open
        self.max_open_ms = max_open_ms

    def encode(self) -> bytes:
        return struct.pack(">BI", 1 if self.open else 0, _check(self.max_open_ms, 32, "max_open_ms"))

    @staticmethod
    def decode(payload: bytes) -> "SetValve":
        _need(payload, 5, "SET_VALVE")
        state, max_open_ms = struct.unpack_from(">BI", payload, 0)
        if state > 1:
            raise PayloadError(f"SET_VALVE state {state}")
        return SetValve(state == 1, max_open_ms)


class Valve(Message):
    TYPE = VALVE

    def __init__(self, open: bool, remaining_ms: int, reason: int) -> None:
        self.open = open
        self.remaining_ms = remaining_ms
        self.reason = reason

    def encode(self) -> bytes:
        return struct.pack(
            ">BIB", 1 if self.open else 0, _check(self.remaining_ms, 32, "remaining_ms"), _check(self.reason, 8, "r")
        )

    @staticmethod
    def decode(payload: bytes) -> "Valve":
        _need(payload, 6, "VALVE")
        state, remaining_ms, reason = struct.unpack_from(">BIB", payload, 0)
        if state > 1:
            raise PayloadError(f"VALVE state {state}")
        return Valve(state == 1, remaining_ms, reason)


class GetStatus(Message):
    TYPE = GET_STATUS

    @staticmethod
    def decode(payload: bytes) -> "GetStatus":
        return GetStatus()


# STATUS counters, in wire order (each u32, wrapping)
STATUS_COUNTERS = (
    "rx_frames",
    "rx_crc_errors",
    "rx_framing_errors",
    "duplicates",
    "failsafe_trips",
    "air_frames",
    "air_errors",
    "events_dropped",
    "mem_free",
)


class Status(Message):
    TYPE = STATUS

    def __init__(
        self,
        uptime_ms: int,
        valve_open: bool,
        valve_remaining_ms: int,
        valve_reason: int,
        door_open: bool,
        failsafe_ms: int,
        counters: list[int],
    ) -> None:
        self.uptime_ms = uptime_ms
        self.valve_open = valve_open
        self.valve_remaining_ms = valve_remaining_ms
        self.valve_reason = valve_reason
        self.door_open = door_open
        self.failsafe_ms = failsafe_ms
        self.counters = counters

    def encode(self) -> bytes:
        if len(self.counters) != len(STATUS_COUNTERS):
            raise ValueError(f"STATUS has {len(STATUS_COUNTERS)} counters")
        out = bytearray(
            struct.pack(
                ">IBIBBI",
                _check(self.uptime_ms, 32, "uptime_ms"),
                1 if self.valve_open else 0,
                _check(self.valve_remaining_ms, 32, "valve_remaining_ms"),
                _check(self.valve_reason, 8, "valve_reason"),
                1 if self.door_open else 0,
                _check(self.failsafe_ms, 32, "failsafe_ms"),
            )
        )
        for value in self.counters:
            out.extend(struct.pack(">I", _check(value, 32, "counter")))
        return bytes(out)

    @staticmethod
    def decode(payload: bytes) -> "Status":
        size = 15 + 4 * len(STATUS_COUNTERS)
        _need(payload, size, "STATUS")
        uptime_ms, valve_open, remaining_ms, reason, door_open, failsafe_ms = struct.unpack_from(">IBIBBI", payload, 0)
        counters = [struct.unpack_from(">I", payload, 15 + 4 * i)[0] for i in range(len(STATUS_COUNTERS))]
        return Status(uptime_ms, valve_open != 0, remaining_ms, reason, door_open != 0, failsafe_ms, counters)


class Event(Message):
    """node -> hub, unsolicited: something changed. Repeated until EVENT_ACK with the same seq arrives."""

    TYPE = EVENT

    def __init__(self, kind: int, value: int, uptime_ms: int) -> None:
        self.kind = kind
        self.value = value
        self.uptime_ms = uptime_ms

    def encode(self) -> bytes:
        return struct.pack(
            ">BBI", _check(self.kind, 8, "kind"), _check(self.value, 8, "value"), _check(self.uptime_ms, 32, "uptime")
        )

    @staticmethod
    def decode(payload: bytes) -> "Event":
        _need(payload, 6, "EVENT")
        kind, value, uptime_ms = struct.unpack_from(">BBI", payload, 0)
        return Event(kind, value, uptime_ms)


class EventAck(Message):
    TYPE = EVENT_ACK

    @staticmethod
    def decode(payload: bytes) -> "EventAck":
        return EventAck()


class Error(Message):
    """node -> hub: the request (type request_type, same seq) was not carried out; code: ERR_*."""

    TYPE = ERROR

    def __init__(self, request_type: int, code: int) -> None:
        self.request_type = request_type
        self.code = code

    def encode(self) -> bytes:
        return struct.pack(">BB", _check(self.request_type, 8, "request_type"), _check(self.code, 8, "code"))

    @staticmethod
    def decode(payload: bytes) -> "Error":
        _need(payload, 2, "ERROR")
        request_type, code = struct.unpack_from(">BB", payload, 0)
        return Error(request_type, code)

    def name(self) -> str:
        return ERROR_NAMES.get(self.code, f"error {self.code}")


def decode_message(frame: Frame) -> Message:
    """The message a frame carries. Raises PayloadError (unknown type, payload too short or out of range)."""
    t = frame.type
    p = frame.payload
    if t == HELLO:
        return Hello.decode(p)
    if t == HELLO_ACK:
        return HelloAck.decode(p)
    if t == HEARTBEAT:
        return Heartbeat.decode(p)
    if t == HEARTBEAT_ACK:
        return HeartbeatAck.decode(p)
    if t == READ_SENSORS:
        return ReadSensors.decode(p)
    if t == SENSORS:
        return Sensors.decode(p)
    if t == SET_VALVE:
        return SetValve.decode(p)
    if t == VALVE:
        return Valve.decode(p)
    if t == GET_STATUS:
        return GetStatus.decode(p)
    if t == STATUS:
        return Status.decode(p)
    if t == EVENT:
        return Event.decode(p)
    if t == EVENT_ACK:
        return EventAck.decode(p)
    if t == ERROR:
        return Error.decode(p)
    raise PayloadError(f"unknown message type 0x{t:02x}")


def encode_message(message: Message, seq: int) -> bytes:
    """The wire bytes of a message in a frame with this seq."""
    return encode_frame(message.TYPE, seq, message.encode())
