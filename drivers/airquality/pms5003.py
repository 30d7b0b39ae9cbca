"""PMS5003 frames as typed readings. The byte-level parser is the node firmware's (vhnode.pms5003), shared so
that a frame is judged by the same code on the node and on the hub."""

from __future__ import annotations

from drivers.micropython.vhnode.pms5003 import (
    FIELDS,
    FRAME_SIZE,
    PmsChecksumError,
    PmsError,
    PmsLengthError,
    PmsStartError,
    PmsStream,
    encode_frame,
    parse_frame,
)

from .interface import AirQualityReading

__all__ = [
    "FIELDS",
    "FRAME_SIZE",
    "PmsChecksumError",
    "PmsError",
    "PmsLengthError",
    "PmsStartError",
    "PmsStream",
    "encode_frame",
    "parse_frame",
    "reading_from_frame",
]


def reading_from_frame(frame: bytes, measured_at: float, source: str) -> AirQualityReading:
    """Raises PmsError (a ValueError) if the frame is not an intact PMS5003 frame."""
    v = parse_frame(frame)  # data words 1..12, FIELDS order
    return AirQualityReading(
        pm1_0=v[3],
        pm2_5=v[4],
        pm10=v[5],
        pm1_0_cf1=v[0],
        pm2_5_cf1=v[1],
        pm10_cf1=v[2],
        particles_0_3=v[6],
        particles_0_5=v[7],
        particles_1_0=v[8],
        particles_2_5=v[9],
        particles_5_0=v[10],
        particles_10=v[11],
        measured_at=measured_at,
        source=source,
    )
