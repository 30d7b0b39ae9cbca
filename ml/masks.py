"""Polygons in normalised frame coordinates (0..1, x right, y down) made into pixel masks.

Used for motion masks (regions to ignore: trees, the sky), zones (gate, road) and privacy masks (homes the
public camera must not look into, blacked out of everything that leaves the analysis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

Point = tuple[float, float]
Polygon = Sequence[Point]


def rasterize(polygons: Sequence[Polygon], width: int, height: int) -> NDArray[np.bool_]:
    """True inside any polygon (even-odd rule, sampled at pixel centres)."""
    import numpy as np

    mask = np.zeros((height, width), dtype=bool)
    if not polygons:
        return mask
    xs = (np.arange(width, dtype=np.float64) + 0.5) / width
    ys = (np.arange(height, dtype=np.float64) + 0.5) / height
    for polygon in polygons:
        inside = np.zeros((height, width), dtype=bool)
        n = len(polygon)
        for i in range(n):
            (xa, ya), (xb, yb) = polygon[i], polygon[(i + 1) % n]
            if ya == yb:
                continue
            # rows whose centre line crosses this edge, and where they cross it
            crosses = (ys >= min(ya, yb)) & (ys < max(ya, yb))
            x_at = xa + (ys - ya) * (xb - xa) / (yb - ya)
            left_of = xs[None, :] < x_at[:, None]
            inside ^= left_of & crosses[:, None]
        mask |= inside
    return mask


def contains(polygon: Polygon, x: float, y: float) -> bool:
    """Whether the normalised point (x, y) is inside the polygon (even-odd rule)."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (xa, ya), (xb, yb) = polygon[i], polygon[(i + 1) % n]
        if (ya > y) != (yb > y) and x < xa + (y - ya) * (xb - xa) / (yb - ya):
            inside = not inside
    return inside


def black_out(frame: NDArray[np.uint8], mask: NDArray[np.bool_] | None) -> NDArray[np.uint8]:
    """A copy of the frame with the masked pixels black (the frame itself is left as it is)."""
    if mask is None or not mask.any():
        return frame
    out = frame.copy()
    out[mask] = 0
    return out
