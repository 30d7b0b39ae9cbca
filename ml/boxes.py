"""Axis-aligned boxes (x0, y0, x1, y1) in pixels or normalised units, and the few operations on them."""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found in a frame: box in the frame's pixels."""

    label: str
    score: float
    box: Box


def area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def iou(a: Box, b: Box) -> float:
    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def clip(b: Box, width: float, height: float) -> Box:
    return (max(0.0, b[0]), max(0.0, b[1]), min(width, b[2]), min(height, b[3]))


def centre(b: Box) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def nms(detections: list[Detection], threshold: float) -> list[Detection]:
    """Greedy non-maximum suppression, best score first."""
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(d.label != k.label or iou(d.box, k.box) < threshold for k in kept):
            kept.append(d)
    return kept
