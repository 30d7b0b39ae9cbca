"""The default models' files, where they come from, and their pinned SHA-256 (checked at fetch and at load).

They are taken from the mediapipe==0.10.14 wheel on PyPI (Apache-2.0) by scripts/fetch-models at install
time; mediapipe itself is never installed and nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"

WHEEL_REQUIREMENT = "mediapipe==0.10.14"
WHEEL_PLATFORM = "manylinux_2_17_x86_64"  # the models inside are the same in every platform's wheel
WHEEL_PYTHON = "3.11"
WHEEL_NAME = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"

# file name -> (path inside the wheel, sha256)
FILES: dict[str, tuple[str, str]] = {
    "pose_detection.tflite": (
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path) -> bool:
    """Whether `path` is one of the pinned files with its pinned content (other files: True if present)."""
    if not path.is_file():
        return False
    pinned = FILES.get(path.name)
    return pinned is None or sha256(path) == pinned[1]
