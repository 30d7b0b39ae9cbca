"""The PMS5003 frame parser shared by the node and the hub (vhnode.pms5003): properties over arbitrary input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.micropython.vhnode import pms5003

words = st.lists(st.integers(0, 0xFFFF), min_size=12, max_size=12)


def datasheet_frame() -> bytes:
    # Built by hand from the datasheet's layout, independently of encode_frame.
    body = b"\x42\x4d" + struct.pack(">H", 28) + struct.pack(">13H", 11, 17, 21, 10, 16, 21, 2007, 590, 110, 9, 2, 0, 0)
    return body + struct.pack(">H", sum(body))


def test_parses_a_frame_laid_out_as_in_the_datasheet() -> None:
    frame = datasheet_frame()
    assert pms5003.encode_frame([11, 17, 21, 10, 16, 21, 2007, 590, 110, 9, 2, 0]) == frame
    assert pms5003.parse_frame(frame) == [11, 17, 21, 10, 16, 21, 2007, 590, 110, 9, 2, 0]


@given(words)
def test_round_trip(values: list[int]) -> None:
    assert pms5003.parse_frame(pms5003.encode_frame(values)) == values


@given(st.binary(max_size=64))
def test_parse_of_anything_is_values_or_pms_error(data: bytes) -> None:
    try:
        values = pms5003.parse_frame(data)
    except pms5003.PmsError:
        return
    assert len(values) == 12


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda f: f[:31], pms5003.PmsLengthError),
        (lambda f: b"\x42\x4e" + f[2:], pms5003.PmsStartError),
        (lambda f: f[:3] + b"\x14" + f[4:], pms5003.PmsLengthError),
        (lambda f: f[:10] + bytes([f[10] ^ 0x80]) + f[11:], pms5003.PmsChecksumError),
    ],
)
def test_each_damage_has_its_error(damage: object, error: type[Exception]) -> None:
    assert callable(damage)
    with pytest.raises(error):
        pms5003.parse_frame(damage(datasheet_frame()))


@given(st.lists(words, max_size=6), st.lists(st.binary(max_size=50), min_size=7, max_size=7), st.data())
def test_stream_finds_every_frame_between_garbage_in_any_chunking(
    sent: list[list[int]], garbage: list[bytes], data: st.DataObject
) -> None:
    frames = [pms5003.encode_frame(v) for v in sent]
    wire = bytearray()
    for i, frame in enumerate(frames):
        wire += garbage[i] + frame
    wire += garbage[-1]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8), label="cuts"))
    stream = pms5003.PmsStream()
    got: list[bytes] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got.extend(stream.feed(bytes(wire[start:cut])))
        start = cut
    # Garbage that happens to end in a frame's first bytes can swallow... nothing: the parser only ever skips
    # one byte on a mismatch, so every real frame is found, in order. Garbage may itself hold a valid frame.
    remaining = iter(got)
    assert all(any(g == f for g in remaining) for f in frames)
    assert all(len(g) == pms5003.FRAME_SIZE for g in got)


def test_stream_counts_what_it_rejects() -> None:
    good = datasheet_frame()
    bad = bytearray(good)
    bad[12] ^= 0x01
    stream = pms5003.PmsStream()
    got = stream.feed(b"\x00\x42\x4d\x00\x99" + bytes(bad) + b"noise" + good)
    assert got == [good]
    assert stream.checksum_errors == 1
    assert stream.length_errors >= 1
    assert stream.skipped > 0


def test_stream_buffer_stays_small_on_endless_garbage() -> None:
    stream = pms5003.PmsStream()
    for _ in range(100):
        stream.feed(b"\x42" + b"\x13" * 999)
    assert len(stream._buf) <= 1
