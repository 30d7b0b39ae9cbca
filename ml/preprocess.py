"""Preparing a model's input: a square region of the frame (it may reach past the frame's edges, which are
padded black, as MediaPipe's letterboxing does) resized to the model's input size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml.boxes import Box

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


def square_around(box: Box, width: int, height: int, margin: float = 1.4, min_side: float = 0.0) -> Box:
    """The square region centred on `box`, `margin` times its longer side (at least `min_side`), kept inside the
    frame where it fits, so a person at the edge is not cut in half by padding."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * margin
    side = max(side, min_side)
    x0, y0 = cx - side / 2, cy - side / 2
    if side <= width:
        x0 = min(max(x0, 0.0), width - side)
    if side <= height:
        y0 = min(max(y0, 0.0), height - side)
    return (x0, y0, x0 + side, y0 + side)


def full_frame_square(width: int, height: int) -> Box:
    """The whole frame, letterboxed to a square (centred)."""
    side = float(max(width, height))
    x0, y0 = (width - side) / 2, (height - side) / 2
    return (x0, y0, x0 + side, y0 + side)


def crop_resize(frame: NDArray[np.uint8], region: Box, size: int) -> NDArray[np.uint8]:
    """`region` of an RGB frame sampled to size×size (bilinear); outside the frame is black.

    Only the size×size×4 neighbours are gathered (as uint8) and blended: converting the whole frame to float
    first cost as much as the inference itself (10 ms for 640×360 here)."""
    import numpy as np

    h, w = frame.shape[:2]
    x0, y0, x1, y1 = region
    xs = x0 + (np.arange(size, dtype=np.float32) + 0.5) * ((x1 - x0) / size) - 0.5
    ys = y0 + (np.arange(size, dtype=np.float32) + 0.5) * ((y1 - y0) / size) - 0.5
    xf, yf = np.floor(xs), np.floor(ys)
    fx, fy = xs - xf, ys - yf
    xa, ya = xf.astype(np.int32), yf.astype(np.int32)
    xb, yb = xa + 1, ya + 1
    # weights of the four neighbours, zero for a neighbour outside the frame (which is how the padding is black)
    wxa = (1 - fx) * ((xa >= 0) & (xa < w))
    wxb = fx * ((xb >= 0) & (xb < w))
    wya = (1 - fy) * ((ya >= 0) & (ya < h))
    wyb = fy * ((yb >= 0) & (yb < h))
    xa, xb = np.clip(xa, 0, w - 1), np.clip(xb, 0, w - 1)
    ya, yb = np.clip(ya, 0, h - 1)[:, None], np.clip(yb, 0, h - 1)[:, None]
    top = frame[ya, xa] * wxa[None, :, None] + frame[ya, xb] * wxb[None, :, None]
    bottom = frame[yb, xa] * wxa[None, :, None] + frame[yb, xb] * wxb[None, :, None]
    out = top * wya[:, None, None] + bottom * wyb[:, None, None]
    result: NDArray[np.uint8] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return result
