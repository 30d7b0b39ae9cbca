"""Anchors, boxes, polygons and resizing: the arithmetic the detector and the masks rest on."""

from __future__ import annotations

import numpy as np

from ml.anchors import ssd_anchors
from ml.boxes import Detection, iou, nms
from ml.draw import draw_box
from ml.masks import black_out, contains, rasterize
from ml.preprocess import crop_resize, full_frame_square, square_around


def test_anchor_counts_match_the_mediapipe_models() -> None:
    pose = ssd_anchors(224, (8, 16, 32, 32, 32))
    face = ssd_anchors(128, (8, 16, 16, 16))
    assert pose.shape == (2254, 2)
    assert face.shape == (896, 2)
    # first cell of the 28×28 map, two anchors per cell; the 7×7 maps share cells six anchors at a time
    assert np.allclose(pose[0], (0.5 / 28, 0.5 / 28))
    assert np.allclose(pose[1], pose[0])
    assert np.allclose(pose[-1], (6.5 / 7, 6.5 / 7))
    assert np.allclose(pose[-6], pose[-1])


def test_iou_and_nms() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9
    kept = nms([Detection("p", 0.6, (0, 0, 10, 10)), Detection("p", 0.9, (1, 0, 11, 10))], 0.3)
    assert [d.score for d in kept] == [0.9]


def test_polygon_rasterize_and_contains() -> None:
    square = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]
    mask = rasterize([square], 100, 40)
    assert mask.sum() == 50 * 20
    assert mask[20, 50]
    assert not mask[0, 0]
    triangle = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    assert contains(triangle, 0.2, 0.2)
    assert not contains(triangle, 0.8, 0.8)
    frame = np.full((40, 100, 3), 200, np.uint8)
    out = black_out(frame, mask)
    assert out[20, 50].tolist() == [0, 0, 0]
    assert out[0, 0].tolist() == [200, 200, 200]
    assert frame[20, 50].tolist() == [200, 200, 200], "the original frame is left alone"


def test_squares_stay_inside_the_frame_and_letterbox_pads_black() -> None:
    # 1.4 × the longer side, pushed inside the frame
    assert square_around((600, 300, 640, 360), 640, 360) == (556.0, 276.0, 640.0, 360.0)
    region = full_frame_square(640, 360)
    assert region == (0.0, -140.0, 640.0, 500.0)
    frame = np.full((360, 640, 3), 255, np.uint8)
    out = crop_resize(frame, region, 224)
    assert out.shape == (224, 224, 3)
    assert out[112, 112].tolist() == [255, 255, 255]
    assert out[2, 112].tolist() == [0, 0, 0]
    # a gradient survives resizing monotonic
    grad = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (256, 1, 3))
    row = crop_resize(grad, (0, 0, 256, 256), 64)[8, :, 0]
    assert np.all(np.diff(row.astype(int)) > 0)


def test_draw_box_outlines_only() -> None:
    frame = np.zeros((50, 50, 3), np.uint8)
    draw_box(frame, (10, 10, 40, 40), thickness=2)
    assert frame[10, 25].any()
    assert frame[25, 10].any()
    assert frame[39, 25].any()
    assert not frame[25, 25].any()
