"""The motion gate and the tracker on hand-made frames and detections (no model)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from drivers.camera.sim import background_scene
from ml.boxes import Detection
from ml.motion import MotionGate
from ml.tracker import Tracker, TrackerConfig

W, H = 640, 360


def scene_with_block(x: int | None, brightness: int = 0) -> NDArray[np.uint8]:
    frame = background_scene(W, H).astype(np.int16) + brightness
    if x is not None:
        frame[100:300, x : x + 80] = (20, 30, 200)
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_seeded_from_the_first_frame_a_static_scene_has_no_motion_at_once() -> None:
    gate = MotionGate()
    assert gate.update(scene_with_block(None)) == []
    # a scene that is not moving costs nothing from the second frame on (no slow learning phase)
    for _ in range(5):
        assert gate.update(scene_with_block(None)) == []


def test_a_moving_block_is_found_where_it_is() -> None:
    gate = MotionGate()
    gate.update(scene_with_block(None))
    regions = gate.update(scene_with_block(300))
    assert len(regions) == 1
    x0, y0, x1, y1 = regions[0]
    assert 280 <= x0 <= 310
    assert 370 <= x1 <= 400
    assert 80 <= y0 <= 110
    assert 290 <= y1 <= 320


def test_masked_motion_is_ignored() -> None:
    gate = MotionGate(masks=[[(0.4, 0.0), (0.7, 0.0), (0.7, 1.0), (0.4, 1.0)]])
    gate.update(scene_with_block(None))
    assert gate.update(scene_with_block(300)) == []
    assert gate.update(scene_with_block(100)) != []


def test_a_change_of_light_over_the_whole_frame_reseeds_instead_of_firing() -> None:
    gate = MotionGate()
    gate.update(scene_with_block(None))
    assert gate.update(scene_with_block(None, brightness=60)) == []
    assert gate.reseeds == 1
    assert gate.update(scene_with_block(None, brightness=60)) == []


def person(x: float, score: float = 0.9) -> Detection:
    return Detection("person", score, (x, 50.0, x + 100, 300.0))


def test_one_walk_is_one_event_with_its_best_frame() -> None:
    tracker = Tracker(TrackerConfig(min_hits=3, lost_after_s=1.0))
    frame = np.zeros((H, W, 3), np.uint8)
    kinds = []
    for i in range(10):
        events = tracker.update([person(10 + 30 * i, score=0.8 + i / 100)], i * 0.2, frame, (W, H))
        kinds += [(e.kind, round(e.at, 1)) for e in events]
    for i in range(10, 20):
        kinds += [(e.kind, round(e.at, 1)) for e in tracker.update([], i * 0.2, frame, (W, H))]
    # confirmed at the third sighting; ended about lost_after_s after the last one (1.8 s)
    assert [k for k, _ in kinds] == ["start", "end"]
    assert kinds[0][1] == 0.4
    assert 2.8 <= kinds[1][1] <= 3.0


def test_a_single_detection_never_makes_an_event() -> None:
    tracker = Tracker(TrackerConfig(min_hits=3, confirm_window_s=1.0))
    frame = np.zeros((H, W, 3), np.uint8)
    events = tracker.update([person(100)], 0.0, frame, (W, H))
    for i in range(1, 20):
        events += tracker.update([], i * 0.2, frame, (W, H))
    assert events == []
    assert tracker.tracks == []


def test_zones_entered_are_reported_once() -> None:
    gate = [(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)]
    tracker = Tracker(TrackerConfig(min_hits=2), zones={"cong": gate})
    frame = np.zeros((H, W, 3), np.uint8)
    events = []
    for i in range(12):
        events += tracker.update([person(10 + 40 * i)], i * 0.2, frame, (W, H))
    assert [(e.kind, e.zone) for e in events] == [("start", None), ("zone", "cong")]
    assert tracker.tracks[0].zones == ["cong"]
