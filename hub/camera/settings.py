"""The `[camera]` section of hub.toml: the cameras, the detector and its model, the motion gate, storage.

```toml
[camera.detector]
model = "person"                 # the default: MediaPipe's BlazePose person detector (fetched at install)
threads = 2

[camera.storage]
budget_mb = 4096                 # clips and snapshots together; continuous footage goes first
event_days = 14
continuous_hours = 24

[[camera.cameras]]
name = "cong-lang"               # the village gate
url = "rtsp://user:pass@192.168.1.64:554/Streaming/Channels/101"      # main stream (recording)
sub_url = "rtsp://user:pass@192.168.1.64:554/Streaming/Channels/102"  # sub-stream (analysis)
fps = 5
masks = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.25], [0.0, 0.25]]]          # the sky and the bamboo: ignore motion
privacy_masks = [[[0.7, 0.3], [1.0, 0.3], [1.0, 0.8], [0.7, 0.8]]]    # a house: blacked out everywhere
zones = { gate = [[0.3, 0.5], [0.6, 0.5], [0.6, 1.0], [0.3, 1.0]] }
record = { enabled = true, segment_s = 10, pre_s = 10, post_s = 10 }
```

Polygons are lists of [x, y] points in fractions of the frame (0..1; x to the right, y down), so they stay
right when the stream's resolution changes. Another model (SSD MobileNet for vehicles and animals) is a
`model = "custom"` and a `[camera.detector.custom]` table (see CustomModelSettings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, Strict, field_validator, model_validator

from hub.section import Section

PathStr = Annotated[Path, Strict(False)]
PolygonList = list[list[float]]


def check_polygon(points: PolygonList) -> PolygonList:
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    for point in points:
        if len(point) != 2 or not all(0.0 <= v <= 1.0 for v in point):
            raise ValueError(f"a point is [x, y] with both in 0..1 (fractions of the frame), not {point}")
    return points


class RecordSettings(Section):
    enabled: bool = Field(default=False, title="Record clips", description="Record the main stream in segments.")
    segment_s: float = Field(default=10.0, ge=2.0, le=600.0, title="Segment length (s)")
    pre_s: float = Field(default=10.0, ge=0.0, le=300.0, title="Pre-roll (s)", description="Kept before an event.")
    post_s: float = Field(default=10.0, ge=0.0, le=300.0, title="Post-roll (s)", description="Kept after an event.")
    reencode_privacy: bool = Field(
        default=True,
        title="Mask clips by re-encoding",
        description="With privacy masks, decode and re-encode the recording to black them out (costly on a Pi). "
        "False: record as the camera sends it — set the masks in the camera's own privacy-mask menu then.",
    )


class CameraEntry(Section):
    name: str = Field(title="Camera name", description="Short id, e.g. 'cong-lang'.", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    url: str = Field(
        title="Main stream",
        description="RTSP URL of the main stream (recording), or a video file (simulation, tests).",
        min_length=1,
    )
    sub_url: str | None = Field(
        default=None, title="Sub-stream", description="Low-resolution stream for analysis; empty: the main stream."
    )
    fps: float = Field(default=5.0, gt=0.0, le=30.0, title="Analysis rate (frames/s)")
    max_width: int = Field(default=640, ge=160, le=1920, title="Analysis width", description="Frames are scaled down.")
    loop: bool = Field(default=False, title="Loop a file", description="Play a video file source again at its end.")
    realtime: bool = Field(
        default=True, title="File at its own pace", description="A file plays at the speed it was filmed."
    )
    masks: list[PolygonList] = Field(
        default_factory=list, title="Motion masks", description="Regions whose motion is ignored (trees, the sky)."
    )
    privacy_masks: list[PolygonList] = Field(
        default_factory=list,
        title="Privacy masks",
        description="Regions blacked out in snapshots, clips and live view (homes a public camera must not see).",
    )
    zones: dict[str, PolygonList] = Field(
        default_factory=dict, title="Zones", description="Named regions (gate, road); events say which were entered."
    )
    record: RecordSettings = Field(default_factory=RecordSettings, title="Recording")

    @field_validator("masks", "privacy_masks")
    @classmethod
    def _polygons(cls, value: list[PolygonList]) -> list[PolygonList]:
        return [check_polygon(p) for p in value]

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: dict[str, PolygonList]) -> dict[str, PolygonList]:
        return {name: check_polygon(p) for name, p in value.items()}

    @property
    def analysis_url(self) -> str:
        return self.sub_url or self.url


class CustomModelSettings(Section):
    file: PathStr = Field(title="Model file", description="A .tflite file (absolute, or in the models directory).")
    decoding: Literal["anchors", "boxes"] = Field(
        default="boxes",
        title="Output decoding",
        description="'boxes': TFLite_Detection_PostProcess outputs (SSD MobileNet, EfficientDet-Lite); "
        "'anchors': MediaPipe-style regressors over SSD anchors (needs strides).",
    )
    labels: list[str] = Field(default_factory=lambda: ["person"], title="Labels", description="Index → label.")
    event_labels: list[str] = Field(
        default_factory=list, title="Labels that make events", description="e.g. person, car; empty: all."
    )
    mean: float = Field(default=127.5, title="Input mean", description="Float inputs: (pixel - mean) / std.")
    std: float = Field(default=127.5, gt=0.0, title="Input std")
    strides: list[int] = Field(default_factory=list, title="Anchor strides", description="For 'anchors' only.")
    box_from: Literal["box", "pose"] = Field(default="box", title="Anchor box", description="For 'anchors' only.")


class DetectorSettings(Section):
    enabled: bool = Field(default=True, title="Detect objects", description="False: motion only, no events.")
    model: Literal["person", "face", "custom"] = Field(
        default="person",
        title="Model",
        description="'person': MediaPipe's pose detector (people only — it cannot tell vehicles or animals); "
        "'custom': [camera.detector.custom].",
    )
    models_dir: PathStr | None = Field(
        default=None, title="Models directory", description="Where scripts/fetch-models put them; empty: ml/models."
    )
    custom: CustomModelSettings | None = Field(default=None, title="Custom model")
    threads: int = Field(default=2, ge=1, le=8, title="Inference threads")
    delegate: str | None = Field(
        default=None, title="Delegate library", description="e.g. 'libedgetpu.so.1' for a Coral Edge TPU."
    )
    score_threshold: float | None = Field(
        default=None, gt=0.0, lt=1.0, title="Score threshold", description="Empty: the model's own (0.5)."
    )
    min_hits: int = Field(
        default=3, ge=1, le=50, title="Confirming detections", description="Detections before an event starts."
    )
    confirm_score: float = Field(
        default=0.75,
        gt=0.0,
        lt=1.0,
        title="Confirming mean score",
        description="The confirming detections' mean score must reach this (single frames of cats and cups can "
        "score 0.85 with the pose detector; people score 0.8–0.97). Lower it for distant cameras.",
    )
    confirm_window_s: float = Field(default=3.0, gt=0.0, le=60.0, title="Confirmation window (s)")
    lost_after_s: float = Field(default=3.0, gt=0.0, le=600.0, title="Event ends after (s) unseen")

    @model_validator(mode="after")
    def _custom_given(self) -> DetectorSettings:
        if self.model == "custom" and self.custom is None:
            raise ValueError("model = 'custom' needs a [camera.detector.custom] table")
        return self


class MotionSettings(Section):
    width: int = Field(default=160, ge=64, le=640, title="Motion frame width", description="Frames are shrunk to it.")
    threshold: int = Field(default=20, ge=1, le=255, title="Pixel change threshold (grey levels)")
    min_area: float = Field(default=0.002, gt=0.0, lt=1.0, title="Minimum moving area (fraction of the frame)")
    alpha: float = Field(default=0.05, gt=0.0, le=1.0, title="Background learning rate per frame")


class StorageSettings(Section):
    budget_mb: int = Field(
        default=4096,
        ge=16,
        title="Disk budget (MiB)",
        description="Clips and snapshots; continuous footage is deleted first.",
    )
    min_free_mb: int = Field(
        default=512, ge=0, title="Keep free (MiB)", description="Delete footage before the disk's free space drops."
    )
    event_days: float = Field(default=14.0, gt=0.0, le=365.0, title="Keep event clips and snapshots (days)")
    continuous_hours: float = Field(default=24.0, gt=0.0, le=24 * 30, title="Keep continuous footage (hours)")
    snapshot_quality: int = Field(default=80, ge=10, le=100, title="Snapshot JPEG quality")
    upload_snapshots: bool = Field(
        default=True, title="Send snapshots upstream", description="The best snapshot goes with the event's end."
    )
    check_interval_s: float = Field(default=30.0, gt=0.0, le=3600.0, title="Retention check interval (s)")


class CameraSettings(Section):
    cameras: list[CameraEntry] = Field(default_factory=list, title="Cameras")
    detector: DetectorSettings = Field(default_factory=DetectorSettings, title="Detector")
    motion: MotionSettings = Field(default_factory=MotionSettings, title="Motion gate")
    storage: StorageSettings = Field(default_factory=StorageSettings, title="Clips, snapshots and the disk budget")
    stall_timeout_s: float = Field(
        default=20.0, gt=0.0, le=600.0, title="Stall timeout (s)", description="A camera silent this long restarts."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> CameraSettings:
        names = [c.name for c in self.cameras]
        if len(names) != len(set(names)):
            raise ValueError("camera names must be unique")
        return self
