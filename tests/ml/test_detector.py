"""The default person detector, really run (ai-edge-litert, the pinned model): it finds the person in a photo
of a person and nothing in photos without people."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from ml.detector import Detector
from ml.model_files import FILES, MODELS_DIR, sha256
from tests.camera.media import astronaut, ensure_models, person_spec, rgb

pytestmark = pytest.mark.inference

# Photos without people that scikit-image carries (cats, a rocket, coins, text, textures, microscopy …).
NO_PEOPLE = ("coffee", "chelsea", "cat", "rocket", "coins", "page", "text", "moon", "brick", "grass", "gravel",
             "hubble_deep_field", "immunohistochemistry", "logo", "colorwheel", "camera")  # fmt: skip


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(person_spec(), threads=1)


def test_models_are_the_pinned_files() -> None:
    ensure_models()
    for name, (_, digest) in FILES.items():
        assert sha256(MODELS_DIR / name) == digest


def test_finds_the_astronaut(detector: Detector) -> None:
    found = detector.detect(astronaut())
    assert len(found) == 1
    person = found[0]
    assert person.label == "person"
    assert person.score > 0.7
    # the box holds her face (around x 170–330, y 20–230 in the 512×512 photo)
    x0, y0, x1, y1 = person.box
    assert x0 < 170
    assert y0 < 60
    assert x1 > 300
    assert y1 > 230


def test_finds_the_astronaut_small_in_a_wide_frame(detector: Detector) -> None:
    frame = np.full((360, 640, 3), 90, np.uint8)
    small = astronaut()[::2, ::2]
    frame[50:306, 300:556] = small
    found = detector.detect(frame, (240.0, 0.0, 600.0, 360.0))
    assert [d.label for d in found] == ["person"]
    assert found[0].box[0] < 420
    assert found[0].box[2] > 480


@pytest.mark.parametrize("name", NO_PEOPLE)
def test_no_person_in_photos_without_people(detector: Detector, name: str) -> None:
    assert detector.detect(rgb(getattr(data, name)())) == []


def test_latency_is_measured(detector: Detector) -> None:
    for _ in range(3):
        detector.detect(astronaut())
    latency = detector.latency()
    assert latency["median_ms"] is not None
    assert latency["median_ms"] > 0
