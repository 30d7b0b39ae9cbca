"""Clips: the segment recorder (FFmpeg's segment muxer, stream copy or masked re-encode), event clips linked
from the continuous footage, and the disk budget that removes continuous footage before event clips."""

from __future__ import annotations

import os
import time
from pathlib import Path

import av

from drivers.camera.recorder import SegmentRecorder
from drivers.camera.sim import Walk
from hub.camera import retention
from ml.masks import black_out, rasterize
from tests.camera.media import walking_clip

MB = 1024 * 1024


def record(source: Path, directory: Path, **options: object) -> list[Path]:
    recorder = SegmentRecorder(str(source), directory, segment_s=2.0, realtime=False, **options)  # type: ignore[arg-type]
    recorder.start()
    deadline = time.monotonic() + 20
    while recorder.restarts == 0:  # a file ends: the recorder would open it again; enough for the test
        assert time.monotonic() < deadline
        time.sleep(0.02)
    recorder.stop()
    return sorted(directory.glob("*.mp4"))


def test_segments_are_copied_without_reencoding(tmp_path: Path) -> None:
    clip = walking_clip(tmp_path / "in.mp4", [Walk(1.0, 5.0)], seconds=6.0)
    segments = record(clip, tmp_path / "continuous")
    assert len(segments) >= 3
    frames = 0
    for segment in segments:
        with av.open(str(segment)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames += sum(1 for _ in container.decode(stream))
    assert frames >= 60


def test_privacy_masks_are_burnt_into_reencoded_segments(tmp_path: Path) -> None:
    clip = walking_clip(tmp_path / "in.mp4", [Walk(0.0, 3.0)], seconds=3.0)
    mask = rasterize([[(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]], 640, 360)
    segments = record(clip, tmp_path / "continuous", transform=lambda rgb: black_out(rgb, mask))
    assert segments
    with av.open(str(segments[0])) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            assert image[:, 330:].max() < 30
            assert image[:, :300].mean() > 60


def make_segment(path: Path, size: int, written: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(64) * (size // 64))
    os.utime(path, (written, written))
    return path


def test_event_segments_are_linked_and_the_budget_removes_continuous_footage_first(tmp_path: Path) -> None:
    root = tmp_path / "camera"
    continuous = root / "clips" / "cong" / "continuous"
    now = time.time()
    # 20 segments of 10 s, 1 MB each, the newest ending now
    for i in range(20):
        make_segment(continuous / f"1000-{i:06d}.mp4", MB, now - (19 - i) * 10)
    # an event from 65 s to 45 s ago: the segments ending within it (and the one running into it) are kept
    event_dir = root / "clips" / "cong" / "events" / "cong-1-1"
    linked = retention.link_event_segments(continuous, event_dir, now - 65, now - 45, 10.0)
    assert linked == 3
    snapshot = make_segment(root / "snapshots" / "cong" / "cong-1-1.jpg", 64 * 1024, now - 60)

    policy = retention.Policy(budget_bytes=8 * MB, min_free_bytes=0, event_max_age_s=86400, continuous_max_age_s=86400)
    report = retention.enforce(root, policy, now, free_bytes=10_000 * MB)
    assert report.used_bytes <= 8 * MB
    assert report.deleted_events == 0
    assert sorted(p.name for p in event_dir.iterdir()) == ["1000-000013.mp4", "1000-000014.mp4", "1000-000015.mp4"]
    assert snapshot.exists()
    left = sorted(p.name for p in continuous.iterdir())
    assert "1000-000019.mp4" in left
    assert "1000-000000.mp4" not in left

    # a budget smaller than the event itself: only then do event clips go
    tight = retention.Policy(budget_bytes=2 * MB, min_free_bytes=0, event_max_age_s=86400, continuous_max_age_s=86400)
    report = retention.enforce(root, tight, now, free_bytes=10_000 * MB)
    assert list(continuous.iterdir()) == []
    assert report.deleted_events == 1
    assert not event_dir.exists()


def test_ages_and_free_space(tmp_path: Path) -> None:
    root = tmp_path / "camera"
    now = time.time()
    old = make_segment(root / "clips" / "a" / "continuous" / "1-000000.mp4", 1024, now - 2 * 3600)
    fresh = make_segment(root / "clips" / "a" / "continuous" / "1-000001.mp4", 1024, now - 60)
    event = root / "clips" / "a" / "events" / "a-1-1"
    make_segment(event / "x.mp4", 1024, now - 3 * 86400)
    os.utime(event, (now - 3 * 86400, now - 3 * 86400))
    policy = retention.Policy(budget_bytes=MB, min_free_bytes=0, event_max_age_s=2 * 86400, continuous_max_age_s=3600)
    report = retention.enforce(root, policy, now, free_bytes=10_000 * MB)
    assert not old.exists()
    assert fresh.exists()
    assert not event.exists()
    assert (report.deleted_continuous, report.deleted_events) == (1, 1)
    # the disk itself short of space: footage goes even under the budget
    low = retention.Policy(budget_bytes=MB, min_free_bytes=100 * MB, event_max_age_s=86400, continuous_max_age_s=3600)
    retention.enforce(root, low, now, free_bytes=MB)
    assert not fresh.exists()
