"""What a detection model is: its file, how its input is prepared and how its outputs are decoded.

A better model is a config change, not a code change: any TFLite model whose outputs are either
MediaPipe-style SSD regressors over fixed anchors (`decoding = "anchors"`) or the standard
TFLite_Detection_PostProcess tensors of the TensorFlow Object Detection API (`decoding = "boxes"`: boxes,
classes, scores, count — SSD MobileNet, EfficientDet-Lite) can be described here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Decoding = Literal["anchors", "boxes"]
# How the anchors decoder turns one anchor's regressors into an object box:
#   "box": the first four values (the face detector's box);
#   "pose": the BlazePose person detector's body circle, keypoint 0 (hips) with the radius to keypoint 1,
#           joined with its face box (the model regresses the face box, the body is in its keypoints).
BoxFrom = Literal["box", "pose"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    file: Path
    decoding: Decoding
    labels: tuple[str, ...]
    score_threshold: float = 0.5
    iou_threshold: float = 0.3
    # Float inputs: (pixel - mean) / std; quantised (uint8) inputs take pixels as they are.
    mean: float = 127.5
    std: float = 127.5
    # anchors decoding
    strides: tuple[int, ...] = ()
    anchors_per_layer: int = 2
    box_from: BoxFrom = "box"
    # Which labels make events ("person", "car" …); empty: all of them.
    event_labels: tuple[str, ...] = field(default=())

    def with_file(self, file: Path) -> ModelSpec:
        return dataclasses.replace(self, file=file)


# The default models, extracted from the mediapipe==0.10.14 wheel by scripts/fetch-models (Apache-2.0).
POSE_PERSON = ModelSpec(
    name="mediapipe-pose-detection",
    file=Path("pose_detection.tflite"),
    decoding="anchors",
    labels=("person",),
    score_threshold=0.5,
    strides=(8, 16, 32, 32, 32),
    box_from="pose",
)
FACE_SHORT_RANGE = ModelSpec(
    name="mediapipe-face-detection-short-range",
    file=Path("face_detection_short_range.tflite"),
    decoding="anchors",
    labels=("face",),
    score_threshold=0.5,
    strides=(8, 16, 16, 16),
    box_from="box",
)
BUILTIN: dict[str, ModelSpec] = {"person": POSE_PERSON, "face": FACE_SHORT_RANGE}
