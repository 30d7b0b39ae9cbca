"""Turning a model's output tensors into detections in model-input coordinates (normalised to [0, 1])."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml.boxes import Box, Detection, nms
from ml.model_spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

SCORE_CLIP = 100.0  # MediaPipe clips logits before the sigmoid


def decode_anchors(
    spec: ModelSpec,
    regressors: NDArray[np.float32],
    logits: NDArray[np.float32],
    anchors: NDArray[np.float32],
    input_size: int,
    threshold: float,
) -> list[Detection]:
    """MediaPipe's TensorsToDetections, fixed-size anchors: centre = raw[0:2]/size + anchor; size = raw[2:4]/size."""
    import numpy as np

    raw = regressors.reshape(len(anchors), -1)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    found: list[Detection] = []
    for i in np.flatnonzero(scores >= threshold):
        r = raw[i] / input_size
        ax, ay = anchors[i]
        cx, cy, w, h = r[0] + ax, r[1] + ay, r[2], r[3]
        box: Box = (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))
        if spec.box_from == "pose":
            hx, hy = r[4] + ax, r[5] + ay  # keypoint 0: the middle of the hips, the body's centre
            sx, sy = r[6] + ax, r[7] + ay  # keypoint 1: on the circle that holds the whole body
            radius = float(np.hypot(sx - hx, sy - hy))
            body: Box = (float(hx - radius), float(hy - radius), float(hx + radius), float(hy + radius))
            box = (min(box[0], body[0]), min(box[1], body[1]), max(box[2], body[2]), max(box[3], body[3]))
        found.append(Detection(spec.labels[0], float(scores[i]), box))
    return nms(found, spec.iou_threshold)


def decode_boxes(spec: ModelSpec, outputs: list[Any], threshold: float) -> list[Detection]:
    """TFLite_Detection_PostProcess: boxes [1,N,4] (ymin, xmin, ymax, xmax), classes [1,N], scores [1,N], count."""
    boxes, classes, scores = outputs[0][0], outputs[1][0], outputs[2][0]
    count = int(outputs[3].reshape(-1)[0]) if len(outputs) > 3 else len(scores)
    found: list[Detection] = []
    for i in range(min(count, len(scores))):
        score = float(scores[i])
        if score < threshold:
            continue
        index = int(classes[i])
        label = spec.labels[index] if 0 <= index < len(spec.labels) else str(index)
        y0, x0, y1, x1 = (float(v) for v in boxes[i])
        found.append(Detection(label, score, (x0, y0, x1, y1)))
    return found
