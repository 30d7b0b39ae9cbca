"""One camera's pipeline on a synthetic video (a still scene, the astronaut walking across it): real decoding,
real motion gate, real inference, real tracker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drivers.camera.sim import Walk
from hub.camera.pipeline import Analysed, CameraPipeline
from hub.camera.settings import CameraEntry, CameraSettings
from ml.detector import Detector
from tests.camera.media import person_spec, walking_clip

pytestmark = pytest.mark.inference

ENTER_S = 2.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return walking_clip(tmp_path_factory.mktemp("clip") / "walk.mp4", [Walk(ENTER_S, 6.0)], seconds=9.0)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(person_spec(), threads=1)


def run(clip: Path, detector: Detector, **camera: object) -> tuple[list[Analysed], CameraPipeline]:
    entry = CameraEntry.model_validate({"name": "cong", "url": str(clip), "realtime": False, **camera})
    settings = CameraSettings(cameras=[entry])
    events: list[Analysed] = []
    lock = threading.Lock()

    def sink(_: CameraPipeline, analysed: Analysed) -> None:
        with lock:
            events.append(analysed)

    pipeline = CameraPipeline(entry, settings, detector.detect, sink, event_labels=("person",))
    pipeline.start()
    assert pipeline.source.finished.wait(30)
    pipeline.stop()  # flushes: a track still open ends here
    return events, pipeline


def test_one_walk_makes_exactly_one_event_within_a_second(clip: Path, detector: Detector) -> None:
    events, pipeline = run(clip, detector)
    assert [a.event.kind for a in events] == ["start", "end"]
    start = events[0].event
    assert ENTER_S <= start.at <= ENTER_S + 1.0, f"event at {start.at:.2f} s, person from {ENTER_S} s"
    track = start.track
    assert track.best_frame is not None
    assert track.best_score > 0.8
    assert events[1].event.track is track
    # the gate kept the detector off the empty scene: far fewer inferences than analysed frames
    assert pipeline.analyzer.inferences < pipeline.analysed * 0.7
    assert pipeline.analysed >= 40


def test_motion_masked_where_the_person_walks_makes_no_event(clip: Path, detector: Detector) -> None:
    everything = [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]
    events, pipeline = run(clip, detector, masks=everything)
    assert events == []
    assert pipeline.analyzer.inferences == 1  # the first frame's look at the whole scene, then nothing
