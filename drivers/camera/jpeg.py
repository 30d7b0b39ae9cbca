"""JPEG encoding with FFmpeg's mjpeg encoder (PyAV): no imaging library on the box."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


def encode_jpeg(rgb: NDArray[np.uint8], quality: int = 80) -> bytes:
    """An RGB frame as JPEG bytes; `quality` 1..100 like libjpeg's."""
    import av

    height, width = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(rgb[: height // 2 * 2, : width // 2 * 2], format="rgb24")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = frame.width, frame.height
    codec.pix_fmt = "yuvj420p"
    # mjpeg's qscale 2 (best) .. 31 (worst), mapped from a libjpeg-like quality
    qscale = max(2, min(31, round(2 + (100 - quality) * 29 / 100)))
    codec.options = {"qmin": str(qscale), "qmax": str(qscale)}
    packets = codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)
