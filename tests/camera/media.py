"""What the camera tests share: the default models (fetched once, hashes checked), sample photos that ship
inside scikit-image, and synthetic clips of a person walking across a still scene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from drivers.camera.sim import Walk, background_scene, frames, person_photo, write_video
from ml.model_files import FILES, MODELS_DIR, verified
from ml.model_spec import POSE_PERSON, ModelSpec

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 640, 360


def ensure_models() -> Path:
    """The pinned models in ml/models (scripts/fetch-models, which scripts/bootstrap runs, put them there)."""
    if not all(verified(MODELS_DIR / name) for name in FILES):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch-models")], check=True)
    return MODELS_DIR


def person_spec() -> ModelSpec:
    return POSE_PERSON.with_file(ensure_models() / POSE_PERSON.file.name)


def rgb(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    out: NDArray[np.uint8] = np.ascontiguousarray(image[..., :3])
    return out


def astronaut() -> NDArray[np.uint8]:
    photo = person_photo()
    assert photo is not None, "scikit-image is a test dependency"
    return photo


def walking_clip(path: Path, walks: list[Walk], seconds: float, fps: float = 10.0) -> Path:
    """A still scene with the astronaut crossing it during each walk."""
    images = frames(background_scene(WIDTH, HEIGHT), astronaut(), walks, fps, seconds)
    return write_video(path, images, fps)


def decode_jpeg(data: bytes, directory: Path) -> NDArray[np.uint8]:
    """A JPEG as RGB, decoded by FFmpeg (through a file: the image2 demuxer knows .jpg)."""
    import av

    assert data[:2] == b"\xff\xd8", "not a JPEG"
    path = directory / "decoded.jpg"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        out: NDArray[np.uint8] = frame.to_ndarray(format="rgb24")  # type: ignore[assignment]
    return out
