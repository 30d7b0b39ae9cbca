"""One camera's analysis of one frame: motion gate → detector on squares around motion → tracker.

The detector sees only squares around what moved (as the best NVRs do), cropped to its input size; a static
scene costs one small grey diff per frame. The first
frame after a (re)connect is searched whole, so a person already standing there when the camera came up is
not missed. A detection counts only where something moved or where a track already is: a detector that fires
on a static structure (the pose detector does, on some) inside a square around motion is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ml.boxes import Box, Detection, area, nms, union
from ml.motion import MotionGate
from ml.preprocess import full_frame_square, square_around
from ml.tracker import Tracker, TrackEvent

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DetectFn = Callable[["NDArray[np.uint8]", Box | None], list[Detection]]

MAX_SQUARES = 3  # more separate squares than this: one look at the whole frame is cheaper
MIN_SIDE = 0.5  # a square is at least this fraction of the frame's height: people far away stay recognisable
FOLLOW_S = 0.5  # a track not seen for longer is no longer looked for where it was (it left, or stands still)


@dataclass
class FrameResult:
    events: list[TrackEvent] = field(default_factory=list)
    motion: list[Box] = field(default_factory=list)
    squares: list[Box] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def merge_squares(boxes: list[Box], width: int, height: int) -> list[Box]:
    """Squares around the boxes, overlapping ones merged into one square around both."""
    squares = [square_around(b, width, height, min_side=MIN_SIDE * height) for b in boxes]
    merged = True
    while merged and len(squares) > 1:
        merged = False
        for i in range(len(squares)):
            for j in range(i + 1, len(squares)):
                if _overlaps(squares[i], squares[j]):
                    joined = square_around(union(squares[i], squares[j]), width, height, margin=1.0)
                    squares = [s for k, s in enumerate(squares) if k not in (i, j)] + [joined]
                    merged = True
                    break
            if merged:
                break
    return squares


class FrameAnalyzer:
    def __init__(self, detect: DetectFn, motion: MotionGate, tracker: Tracker, event_labels: tuple[str, ...] = ()):
        self.detect = detect
        self.motion = motion
        self.tracker = tracker
        self.event_labels = event_labels
        self.frames = 0
        self.inferences = 0
        self._search_whole = True

    def restart(self, now: float) -> list[TrackEvent]:
        """The source reconnected: forget the background and search the next frame whole."""
        self.motion.reset()
        self._search_whole = True
        return self.tracker.flush(now)

    def analyse(self, frame: NDArray[np.uint8], now: float) -> FrameResult:
        h, w = frame.shape[:2]
        self.frames += 1
        result = FrameResult()
        result.motion = self.motion.update(frame)
        followed = [t.box for t in self.tracker.tracks if now - t.last_seen <= FOLLOW_S]
        if self._search_whole:
            self._search_whole = False
            result.squares = [full_frame_square(w, h)]
        elif result.motion:
            # squares around motion only: looking again where a track was once it stopped moving cost ~15% more
            # calls (bench/camera_cpu.py) and found nothing the next movement does not find
            squares = merge_squares(result.motion, w, h)
            result.squares = squares if len(squares) <= MAX_SQUARES else [full_frame_square(w, h)]
        found: list[Detection] = []
        for square in result.squares:
            found.extend(self.detect(frame, square))
            self.inferences += 1
        first_look = len(result.squares) == 1 and result.squares[0] == full_frame_square(w, h) and not result.motion
        evidence = result.motion + followed
        result.detections = [
            d
            for d in nms(found, 0.3)
            if (not self.event_labels or d.label in self.event_labels)
            and area(d.box) > 0
            and (first_look or any(_overlaps(d.box, e) for e in evidence))
        ]
        result.events = self.tracker.update(result.detections, now, frame, (w, h))
        return result
