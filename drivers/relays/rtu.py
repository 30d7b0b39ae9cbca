"""Modbus RTU framing, as the simulated boards need it (the driver itself uses pymodbus).

Names follow "MODBUS over Serial Line, V1.02" (the ADU: address, PDU, CRC) and "MODBUS Application
Protocol, V1.1b3" (function and exception codes). Written apart from pymodbus on purpose: the simulator
is the other end of the wire, and should not share the client's understanding of it.
"""

from __future__ import annotations

import struct

READ_COILS = 0x01
READ_DISCRETE_INPUTS = 0x02
READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
WRITE_SINGLE_COIL = 0x05
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_COILS = 0x0F
WRITE_MULTIPLE_REGISTERS = 0x10

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03

BROADCAST_ADDRESS = 0
COIL_ON = 0xFF00
COIL_OFF = 0x0000
MAX_ADU = 256

_FIXED_REQUEST_FUNCTIONS = (
    READ_COILS,
    READ_DISCRETE_INPUTS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    WRITE_SINGLE_COIL,
    WRITE_SINGLE_REGISTER,
)


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS: polynomial 0xA001 (reflected 0x8005), initial value 0xFFFF (Serial Line §6.2.2)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def adu(address: int, pdu: bytes) -> bytes:
    """Address + PDU + CRC; the CRC goes low byte first, unlike every other field of the protocol."""
    body = bytes([address]) + pdu
    return body + struct.pack("<H", crc16(body))


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and struct.unpack("<H", frame[-2:])[0] == crc16(frame[:-2])


def request_length(buffer: bytes) -> int | None:
    """Length of the request ADU at the start of `buffer`; None until enough bytes are there to tell,
    0 for a function code whose length cannot be known (the frame ends at the next silence)."""
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in _FIXED_REQUEST_FUNCTIONS:
        return 8  # address, function, 2-byte address, 2-byte quantity or value, CRC
    if function in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        if len(buffer) < 7:
            return None
        return 9 + buffer[6]  # address, function, start, quantity, byte count, values, CRC
    return 0


def exception_pdu(function: int, code: int) -> bytes:
    return bytes([function | 0x80, code])


def pack_bits(bits: list[bool]) -> bytes:
    """Coil and discrete-input status: the first bit in the low bit of the first byte (Application §6.1)."""
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)
