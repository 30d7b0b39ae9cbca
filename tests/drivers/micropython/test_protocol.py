"""The link's framing, CRC and messages (vhnode.protocol) under CPython: properties over arbitrary input."""

from __future__ import annotations

import binascii
import contextlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drivers.micropython.vhnode import pms5003
from drivers.micropython.vhnode import protocol as p

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
short_text = st.text(max_size=32).filter(lambda s: len(s.encode()) <= 32)
payloads = st.binary(max_size=p.MAX_PAYLOAD)
frames = st.builds(p.Frame, u8, u8, payloads)
pms_frames = st.lists(u16, min_size=12, max_size=12).map(pms5003.encode_frame)

messages = st.one_of(
    st.builds(p.Hello, u8, u8, u32),
    st.builds(p.HelloAck, u8, u8, u16, u8, u32, u32, short_text, short_text),
    st.builds(p.Heartbeat),
    st.builds(p.HeartbeatAck, u32, u8),
    st.builds(p.ReadSensors),
    st.builds(p.Sensors, u8, st.lists(u16, max_size=32), st.just(b""), st.just(0)),
    st.builds(p.Sensors, u8, st.lists(u16, max_size=32), pms_frames, u32),
    st.builds(p.SetValve, st.booleans(), u32),
    st.builds(p.Valve, st.booleans(), u32, u8),
    st.builds(p.GetStatus),
    st.builds(
        p.Status,
        u32,
        st.booleans(),
        u32,
        u8,
        st.booleans(),
        u32,
        st.lists(u32, min_size=len(p.STATUS_COUNTERS), max_size=len(p.STATUS_COUNTERS)),
    ),
    st.builds(p.Event, u8, u8, u32),
    st.builds(p.EventAck),
    st.builds(p.Error, u8, u8),
)


# -- CRC ----------------------------------------------------------------------------------------------------------
def test_crc_check_value() -> None:
    # The catalogue's check value for CRC-16/CCITT-FALSE.
    assert p.crc16(b"123456789") == 0x29B1


@given(st.binary(max_size=600))
def test_crc_matches_an_independent_implementation(data: bytes) -> None:
    # binascii.crc_hqx is CPython's C implementation of the same polynomial; with init 0xFFFF it is CCITT-FALSE.
    assert p.crc16(data) == binascii.crc_hqx(data, 0xFFFF)


# -- COBS ---------------------------------------------------------------------------------------------------------
@given(st.binary(max_size=1200))
def test_cobs_round_trip_removes_every_zero(data: bytes) -> None:
    stuffed = p.cobs_encode(data)
    assert 0 not in stuffed
    assert len(stuffed) <= len(data) + 1 + len(data) // 254
    assert p.cobs_decode(stuffed) == data


@given(st.binary(max_size=600))
def test_cobs_decode_of_anything_is_bytes_or_cobs_error(data: bytes) -> None:
    with contextlib.suppress(p.CobsError):
        p.cobs_decode(data)


# -- Frames -------------------------------------------------------------------------------------------------------
@given(frames)
def test_frame_round_trip(frame: p.Frame) -> None:
    wire = p.encode_frame(frame.type, frame.seq, frame.payload)
    assert wire[0] == 0
    assert wire[-1] == 0
    assert 0 not in wire[1:-1]
    assert len(wire) <= p.MAX_STUFFED + 2
    assert p.decode_frame(wire[1:-1]) == frame


@given(st.binary(max_size=400))
def test_decode_frame_of_anything_is_a_frame_or_frame_error(data: bytes) -> None:
    try:
        frame = p.decode_frame(data)
    except p.FrameError:
        return
    assert len(frame.payload) <= p.MAX_PAYLOAD


def test_encode_frame_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        p.encode_frame(1, 1, bytes(p.MAX_PAYLOAD + 1))
    with pytest.raises(ValueError, match="single bytes"):
        p.encode_frame(256, 0)


@given(frames, st.data())
def test_every_burst_of_up_to_16_bits_is_caught(frame: p.Frame, data: st.DataObject) -> None:
    # CRC-16 detects every error burst no longer than 16 bits: damage the unstuffed frame, stuff it again (as
    # if the damage happened before the UART), and the receiver must refuse it.
    wire = p.encode_frame(frame.type, frame.seq, frame.payload)
    raw = bytearray(p.cobs_decode(wire[1:-1]))
    bits = len(raw) * 8
    start = data.draw(st.integers(0, bits - 1), label="first bit")
    length = data.draw(st.integers(1, min(16, bits - start)), label="burst length")
    pattern = data.draw(st.integers(0, (1 << length) - 1), label="pattern") | 1 | (1 << (length - 1))
    for i in range(length):
        if pattern >> i & 1:
            bit = start + i
            raw[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(p.CrcError):
        p.decode_frame(p.cobs_encode(bytes(raw)))


@given(frames, st.data())
def test_a_damaged_byte_on_the_wire_never_raises_and_is_counted(frame: p.Frame, data: st.DataObject) -> None:
    wire = bytearray(p.encode_frame(frame.type, frame.seq, frame.payload))
    at = data.draw(st.integers(1, len(wire) - 2), label="position")
    wire[at] ^= data.draw(st.integers(1, 255), label="xor")
    decoder = p.FrameDecoder()
    got = decoder.feed(bytes(wire)) + decoder.feed(p.encode_frame(p.HEARTBEAT, 1))
    assert got[-1] == p.Frame(p.HEARTBEAT, 1)  # the next frame always gets through
    assert decoder.errors() + len(got) >= 2


@given(st.lists(frames, max_size=8), st.lists(st.binary(max_size=40), min_size=9, max_size=9), st.data())
def test_stream_resynchronises_after_garbage_in_any_chunking(
    sent: list[p.Frame], garbage: list[bytes], data: st.DataObject
) -> None:
    wire = bytearray()
    for i, frame in enumerate(sent):
        wire += garbage[i] + p.encode_frame(frame.type, frame.seq, frame.payload)
    wire += garbage[-1]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10), label="cuts"))
    decoder = p.FrameDecoder()
    got: list[p.Frame] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got.extend(decoder.feed(bytes(wire[start:cut])))
        start = cut
    # Every frame sent arrives, in order. Garbage may by chance itself be a valid frame: then it arrives too.
    remaining = iter(got)
    assert all(any(g == f for g in remaining) for f in sent)


@given(st.lists(frames, min_size=2, max_size=6), st.data())
def test_truncated_frame_loses_only_itself(sent: list[p.Frame], data: st.DataObject) -> None:
    encoded = [p.encode_frame(f.type, f.seq, f.payload) for f in sent]
    victim = data.draw(st.integers(0, len(sent) - 1), label="victim")
    body = encoded[victim]
    keep = data.draw(st.integers(1, len(body) - 2), label="kept bytes")
    encoded[victim] = body[:keep]  # the line went dead mid-frame (a reset, a loose wire)
    decoder = p.FrameDecoder()
    got = decoder.feed(b"".join(encoded))
    expected = [f for i, f in enumerate(sent) if i != victim]
    remaining = iter(got)
    assert all(any(g == f for g in remaining) for f in expected)


def test_overlong_run_is_skipped_and_counted() -> None:
    decoder = p.FrameDecoder()
    good = p.encode_frame(p.HEARTBEAT, 7)
    got = decoder.feed(b"\x00" + b"\x55" * 5000 + good)
    assert got == [p.Frame(p.HEARTBEAT, 7)]
    assert decoder.overruns == 1


# -- Messages -----------------------------------------------------------------------------------------------------
@given(messages, u8)
def test_message_round_trip(message: p.Message, seq: int) -> None:
    wire = p.encode_message(message, seq)
    (frame,) = p.FrameDecoder().feed(wire)
    assert frame.seq == seq
    assert p.decode_message(frame) == message


@given(messages, st.binary(max_size=20))
def test_decoders_skip_fields_a_later_minor_version_appends(message: p.Message, extra: bytes) -> None:
    payload = message.encode()
    assume(len(payload) + len(extra) <= p.MAX_PAYLOAD)
    assert p.decode_message(p.Frame(message.TYPE, 0, payload + extra)) == message


@given(u8, st.binary(max_size=p.MAX_PAYLOAD))
@settings(max_examples=500)
def test_decode_message_of_anything_is_a_message_or_payload_error(type_: int, payload: bytes) -> None:
    try:
        message = p.decode_message(p.Frame(type_, 0, payload))
    except p.PayloadError:
        return
    assert type_ == message.TYPE
    assert len(message.encode()) <= len(payload)  # re-encoding never invents bytes


@given(messages)
def test_every_truncation_of_a_payload_is_refused(message: p.Message) -> None:
    payload = message.encode()
    for size in range(len(payload)):
        try:
            decoded = p.decode_message(p.Frame(message.TYPE, 0, payload[:size]))
        except p.PayloadError:
            continue
        # Only fixed-size prefixes that are complete messages on their own may decode (empty messages).
        assert decoded.encode() == payload[:size]


def test_encoders_refuse_values_that_do_not_fit() -> None:
    # MicroPython's struct.pack would wrap these silently; the encoders check first, on both runtimes.
    with pytest.raises(ValueError, match="does not fit"):
        p.SetValve(True, 1 << 32).encode()
    with pytest.raises(ValueError, match="does not fit"):
        p.Sensors(0, [70000]).encode()
    with pytest.raises(ValueError, match="32 bytes"):
        p.HelloAck(1, 0, 0, 0, 0, 0, "x" * 33, "id").encode()


def test_invalid_utf8_is_a_payload_error() -> None:
    payload = p.HelloAck(1, 0, 0, 0, 0, 0, "ab", "cd").encode()
    broken = payload[:14] + b"\xff\xfe" + payload[16:]
    with pytest.raises(p.PayloadError, match="UTF-8"):
        p.HelloAck.decode(broken)
