"""The motion gate: cheap change detection on a small grayscale copy of the frame, so the detector runs only
on regions around motion and a static scene costs almost nothing.

The background is a running average, *seeded from the first frame*: a model that learns a scene slowly fires
on a static scene for tens of seconds after every (re)start and costs as much as running the detector on every
frame meanwhile. A change over most of the frame (auto-exposure, the IR cut filter at dusk, a camera that
moved) reseeds it instead of reporting motion everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml.boxes import Box
from ml.masks import Polygon, rasterize

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

CELL = 4  # cells of CELL×CELL pixels of the small frame are grouped into regions


@dataclass(frozen=True, slots=True)
class MotionConfig:
    width: int = 160  # the small frame's width (height follows the aspect ratio)
    threshold: int = 20  # grey-level change that counts as a changed pixel
    min_area: float = 0.002  # smallest changed area that counts, as a fraction of the frame
    alpha: float = 0.05  # background learning rate per analysed frame
    reseed_fraction: float = 0.5  # more of the frame changed than this: reseed, report nothing
    cell_fraction: float = 0.15  # a cell is active when this fraction of its pixels changed


class MotionGate:
    def __init__(self, config: MotionConfig | None = None, masks: Sequence[Polygon] = ()) -> None:
        self.config = config or MotionConfig()
        self.masks = list(masks)
        self._background: NDArray[np.float32] | None = None
        self._keep: NDArray[np.bool_] | None = None  # False where masked
        self._step = 1
        self.reseeds = 0
        self.last_changed_fraction = 0.0

    def reset(self) -> None:
        """Forget the background (after a reconnect: the camera may have moved or the light changed)."""
        self._background = None

    def _small_grey(self, frame: NDArray[np.uint8]) -> NDArray[np.float32]:
        import numpy as np

        small = frame[:: self._step, :: self._step]
        grey: NDArray[np.float32] = small.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return grey

    def update(self, frame: NDArray[np.uint8]) -> list[Box]:
        """Regions (frame pixels) that moved since the background; updates the background."""
        import numpy as np

        cfg = self.config
        if self._background is None:
            self._step = max(1, frame.shape[1] // cfg.width)
            grey = self._small_grey(frame)
            self._background = grey.copy()
            h, w = grey.shape
            self._keep = ~rasterize(self.masks, w, h)
            return []
        grey = self._small_grey(frame)
        bg = self._background
        changed = np.abs(grey - bg) > cfg.threshold
        assert self._keep is not None
        changed &= self._keep
        fraction = float(changed.mean())
        self.last_changed_fraction = fraction
        if fraction > cfg.reseed_fraction:
            self._background = grey.copy()
            self.reseeds += 1
            return []
        # Learn slowly where something moves, so a person standing still is not absorbed at once.
        rate = np.where(changed, np.float32(cfg.alpha / 5), np.float32(cfg.alpha))
        bg += (grey - bg) * rate
        h, w = changed.shape
        if fraction * h * w < cfg.min_area * h * w or not changed.any():
            return []
        return self._regions(changed)

    def _regions(self, changed: NDArray[np.bool_]) -> list[Box]:
        import numpy as np

        cfg = self.config
        h, w = changed.shape
        ch, cw = h // CELL, w // CELL
        cells = changed[: ch * CELL, : cw * CELL].reshape(ch, CELL, cw, CELL).sum(axis=(1, 3))
        active = cells >= cfg.cell_fraction * CELL * CELL
        seen = np.zeros_like(active)
        regions: list[Box] = []
        min_pixels = cfg.min_area * h * w
        for y, x in zip(*np.nonzero(active), strict=True):
            if seen[y, x]:
                continue
            # flood fill over the (small) grid of cells, 8-connected
            stack = [(int(y), int(x))]
            seen[y, x] = True
            y0 = y1 = int(y)
            x0 = x1 = int(x)
            pixels = 0
            while stack:
                cy, cx = stack.pop()
                pixels += int(cells[cy, cx])
                y0, y1, x0, x1 = min(y0, cy), max(y1, cy), min(x0, cx), max(x1, cx)
                for ny in (cy - 1, cy, cy + 1):
                    for nx in (cx - 1, cx, cx + 1):
                        if 0 <= ny < ch and 0 <= nx < cw and active[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            if pixels >= min_pixels:
                s = CELL * self._step
                regions.append((float(x0 * s), float(y0 * s), float((x1 + 1) * s), float((y1 + 1) * s)))
        return regions
