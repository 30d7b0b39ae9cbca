"""Plantower PMS5003 (and PMS7003/PMSA003, same frame) active-mode output: the 32-byte frame and a stream parser.

Shared like `protocol`: the node uses it to pick intact frames out of its sensor UART before forwarding them,
the hub uses it to parse forwarded frames and a sensor wired to one of its own UARTs (drivers/airquality).

Frame (datasheet "Appendix I", all words big-endian):
    0x42 0x4D | frame length = 2*13+2 = 28 | 13 data words | check code = sum of the 30 preceding bytes (u16)
Data words: PM1.0, PM2.5, PM10 in ug/m3 with CF=1 (factory "standard particle"); PM1.0, PM2.5, PM10 under
atmospheric environment; particle counts beyond 0.3, 0.5, 1.0, 2.5, 5.0, 10 um in 0.1 L of air; reserved.
"""

import struct

START = b"\x42\x4d"
FRAME_SIZE = 32
FRAME_LENGTH = 28  # the length field: data words and check code
DATA_WORDS = 13
FIELDS = (
    "pm1_0_cf1",
    "pm2_5_cf1",
    "pm10_cf1",
    "pm1_0",
    "pm2_5",
    "pm10",
    "particles_0_3",
    "particles_0_5",
    "particles_1_0",
    "particles_2_5",
    "particles_5_0",
    "particles_10",
)


class PmsError(ValueError):
    """Base of every error raised on a malformed PMS5003 frame."""


class PmsStartError(PmsError):
    """The frame does not begin with 0x42 0x4D."""


class PmsLengthError(PmsError):
    """Not 32 bytes, or the length field is not 28."""


class PmsChecksumError(PmsError):
    """The check code is not the sum of the preceding bytes."""


def checksum(data: bytes | bytearray) -> int:
    return sum(data) & 0xFFFF


def parse_frame(frame: bytes) -> list[int]:
    """The 12 measurement words (FIELDS order; the reserved word is left out) of one frame. Raises PmsError."""
    if len(frame) != FRAME_SIZE:
        raise PmsLengthError(f"a frame is {FRAME_SIZE} bytes, not {len(frame)}")
    if frame[0:2] != START:
        raise PmsStartError("frame does not start with 0x42 0x4D")
    length = (frame[2] << 8) | frame[3]
    if length != FRAME_LENGTH:
        raise PmsLengthError(f"length field {length}, expected {FRAME_LENGTH}")
    if checksum(frame[: FRAME_SIZE - 2]) != (frame[30] << 8) | frame[31]:
        raise PmsChecksumError("check code mismatch")
    return [struct.unpack_from(">H", frame, 4 + 2 * i)[0] for i in range(len(FIELDS))]


def encode_frame(values: list[int], reserved: int = 0) -> bytes:
    """A frame carrying these 12 words (FIELDS order): what the sensor sends, for simulators and tests."""
    if len(values) != len(FIELDS):
        raise ValueError(f"{len(FIELDS)} values expected")
    out = bytearray(START)
    out.extend(struct.pack(">H", FRAME_LENGTH))
    words = list(values)
    words.append(reserved)
    for value in words:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{value} does not fit in a 16-bit word")
        out.extend(struct.pack(">H", value))
    out.extend(struct.pack(">H", checksum(out)))
    return bytes(out)


class PmsStream:
    """Intact frames out of a byte stream that may hold garbage, cut frames and corrupted bytes.

    Hunts for the start bytes, checks the length field, waits for the whole frame, checks the sum. On any
    mismatch it skips one byte and hunts again, so a frame that begins inside the rejected bytes is still
    found. Never raises on input; what it rejects is counted."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames = 0
        self.checksum_errors = 0
        self.length_errors = 0
        self.skipped = 0  # bytes dropped while hunting for a start

    def errors(self) -> int:
        return self.checksum_errors + self.length_errors

    def reset(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf.extend(data)
        out: list[bytes] = []
        while True:
            buf = self._buf
            at = bytes(buf).find(START)
            if at < 0:
                # Keep a trailing 0x42: it may be the first half of a start split across reads.
                keep = 1 if len(buf) and buf[-1] == START[0] else 0
                self.skipped += len(buf) - keep
                self._buf = buf[len(buf) - keep :]
                return out
            if at:
                self.skipped += at
                buf = buf[at:]
                self._buf = buf
            if len(buf) < 4:
                return out
            if ((buf[2] << 8) | buf[3]) != FRAME_LENGTH:
                self.length_errors += 1
                self.skipped += 1
                self._buf = buf[1:]
                continue
            if len(buf) < FRAME_SIZE:
                return out
            frame = bytes(buf[:FRAME_SIZE])
            if checksum(frame[: FRAME_SIZE - 2]) == (frame[30] << 8) | frame[31]:
                self.frames += 1
                out.append(frame)
                self._buf = buf[FRAME_SIZE:]
            else:
                self.checksum_errors += 1
                self.skipped += 1
                self._buf = buf[1:]
