"""Drawing boxes on snapshots (numpy only: no imaging library on the box)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml.boxes import Box

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

BOX_COLOUR = (255, 64, 0)


def draw_box(frame: NDArray[np.uint8], box: Box, thickness: int = 2, colour: tuple[int, int, int] = BOX_COLOUR) -> None:
    """Draw the box's outline on the frame in place."""
    h, w = frame.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w - 1, int(box[2])), min(h - 1, int(box[3]))
    if x1 <= x0 or y1 <= y0:
        return
    t = thickness
    frame[y0 : y0 + t, x0 : x1 + 1] = colour
    frame[max(y0, y1 - t + 1) : y1 + 1, x0 : x1 + 1] = colour
    frame[y0 : y1 + 1, x0 : x0 + t] = colour
    frame[y0 : y1 + 1, max(x0, x1 - t + 1) : x1 + 1] = colour
