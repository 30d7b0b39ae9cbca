"""SSD anchors as MediaPipe's SsdAnchorsCalculator makes them (fixed anchor size, square input).

Consecutive layers with the same stride share one feature map: their anchors are interleaved per cell, which
is the order the model's 2254 (pose) or 896 (face) outputs follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


def ssd_anchors(
    input_size: int, strides: Sequence[int], anchors_per_layer: int = 2, offset: float = 0.5
) -> NDArray[np.float32]:
    """Anchor centres, shape [n, 2] (x, y), normalised to [0, 1]."""
    import numpy as np

    out: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        per_cell = 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += anchors_per_layer
            layer += 1
        cells = -(-input_size // stride)  # ceil
        for y in range(cells):
            for x in range(cells):
                centre = ((x + offset) / cells, (y + offset) / cells)
                out.extend([centre] * per_cell)
    return np.asarray(out, dtype=np.float32)
