"""The [camera] section: the documented example loads; mistakes are named."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

import hub.camera.settings as camera_settings
from hub.camera.service import model_spec
from hub.camera.settings import CameraSettings
from ml.model_files import MODELS_DIR


def example() -> str:
    doc = camera_settings.__doc__ or ""
    return doc.split("```toml")[1].split("```")[0]


def test_the_documented_example_loads() -> None:
    settings = CameraSettings.model_validate(tomllib.loads(example())["camera"])
    camera = settings.cameras[0]
    assert camera.name == "cong-lang"
    assert camera.analysis_url.endswith("/102")
    assert camera.record.enabled
    assert camera.zones["gate"][0] == [0.3, 0.5]
    spec = model_spec(settings)
    assert spec.file == MODELS_DIR / "pose_detection.tflite"
    assert spec.labels == ("person",)


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ({"masks": [[[0.0, 0.0], [1.0, 0.0]]]}, "at least 3 points"),
        ({"privacy_masks": [[[0.0, 0.0], [1.5, 0.0], [1.0, 1.0]]]}, "fractions of the frame"),
        ({"fps": 0.0}, "greater than 0"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_named(camera: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CameraSettings.model_validate({"cameras": [{"name": "a", "url": "x.mp4", **camera}]})


def test_a_custom_model_needs_its_table_and_duplicate_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="custom"):
        CameraSettings.model_validate({"detector": {"model": "custom"}})
    with pytest.raises(ValidationError, match="unique"):
        CameraSettings.model_validate({"cameras": [{"name": "a", "url": "x"}, {"name": "a", "url": "y"}]})
    custom = CameraSettings.model_validate(
        {"detector": {"model": "custom", "custom": {"file": "ssd.tflite", "labels": ["person", "car"]}}}
    )
    assert model_spec(custom).decoding == "boxes"
    assert model_spec(custom).file == MODELS_DIR / "ssd.tflite"
