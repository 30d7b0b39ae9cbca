"""Camera analysis cost, precision and latency, measured side by side in one run.

CPU seconds per second of video for one camera's 640×360 sub-stream at 5 fps, on a clip in which a person
(the astronaut) crosses a still scene in about 10% of the frames:
  (a) decode only — the floor;
  (b) the naive baseline: the detector on every full frame;
  (c) our pipeline: motion gate seeded from the first frame, detector on squares around motion, tracker;
  and the clip's limit: decode plus one detector call per frame that really contains a person.
(c) is also given for the first minute alone (a gate that learns its background slowly would cost as much as
(b) there). Events found by (b) with the same tracker and by (c) are compared: none may be missed.
Precision: false events per hour on a person-free clip where other things move (a cat, a rocket, a coffee
cup cross the scene; a rocket stands in it). Detector latency (median, p99) at 1 and 2 threads and the
detections per second that makes. Event latency: from the person's first decoded frame to the event durably
in the outbox, with the service, a real store and a file source played at its own pace.

    .venv/bin/python -m bench.camera_cpu            # 2-minute clips (about 2 minutes)
    .venv/bin/python -m bench.camera_cpu --quick    # 1-minute clips (about 1 minute)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from skimage import data

from drivers.camera.sim import Walk, background_scene, frames, person_photo, resize_nearest, write_video
from drivers.camera.source import CameraFrame, VideoSource
from hub.bus import EventBus
from hub.camera.service import CameraService
from hub.camera.settings import CameraSettings
from hub.store import Store
from ml.analyzer import FrameAnalyzer
from ml.boxes import Box, Detection
from ml.detector import Detector
from ml.motion import MotionGate
from ml.tracker import Tracker
from tests.camera.media import person_spec

W, H, FPS = 640, 360, 5.0


def walks_every(seconds: float, period: float, duration: float) -> list[Walk]:
    return [Walk(t, t + duration) for t in np.arange(3.0, seconds - duration, period)]


def person_clip(path: Path, seconds: float) -> tuple[Path, int]:
    walks = walks_every(seconds, 24.0, 2.4)  # ~10% of frames
    images = frames(background_scene(W, H), person_photo(), walks, FPS, seconds)
    with_person = sum(1 for i in range(len(images)) if any(w.enter_s <= i / FPS < w.exit_s for w in walks))
    return write_video(path, images, FPS), with_person


def person_free_clip(path: Path, seconds: float) -> Path:
    scene = background_scene(W, H)
    rocket = resize_nearest(data.rocket(), 200, 134)  # type: ignore[no-untyped-call]  # a static structure the detector may fire on
    scene[200:334, 420:620] = rocket
    images = []
    things = [data.chelsea(), data.coffee(), data.rocket()]  # type: ignore[no-untyped-call]
    for i in range(round(seconds * FPS)):
        t = i / FPS
        frame = scene.copy()
        k = int(t // 10) % len(things)
        progress = (t % 10) / 4.0
        if progress < 1.0:
            sprite = resize_nearest(things[k], 240, 160)
            x = int(progress * (W - 240))
            frame[150:310, x : x + 240] = sprite
        images.append(frame)
    return write_video(path, images, FPS)


def run_source(clip: Path, on_frame: object) -> float:
    """CPU seconds (all threads of this process) to decode the clip and call on_frame on each frame."""
    started = time.process_time()
    source = VideoSource(str(clip), on_frame, fps=FPS, realtime=False)  # type: ignore[arg-type]
    source.start()
    source.finished.wait(600)
    source.stop()
    return time.process_time() - started


def analyser(detect: object) -> FrameAnalyzer:
    return FrameAnalyzer(detect, MotionGate(), Tracker(), ("person",))  # type: ignore[arg-type]


class Naive:
    """The detector on every whole frame, through the same tracker."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.tracker = Tracker()
        self.starts = 0

    def __call__(self, frame: CameraFrame) -> None:
        found = self.detector.detect(frame.rgb)
        events = self.tracker.update(found, frame.t, frame.rgb, (W, H))
        self.starts += sum(1 for e in events if e.kind == "start")


class Ours:
    def __init__(self, detector: Detector) -> None:
        self.analyzer = analyser(self.detect)
        self.detector = detector
        self.starts = 0
        self.cpu_first_minute: float | None = None
        self.started = time.process_time()

    def detect(self, frame: NDArray[np.uint8], region: Box | None) -> list[Detection]:
        return self.detector.detect(frame, region)

    def __call__(self, frame: CameraFrame) -> None:
        if frame.t >= 60.0 and self.cpu_first_minute is None:
            self.cpu_first_minute = time.process_time() - self.started
        result = self.analyzer.analyse(frame.rgb, frame.t)
        self.starts += sum(1 for e in result.events if e.kind == "start")


def latency(detector_threads: int, n: int) -> tuple[float, float]:
    det = Detector(person_spec(), threads=detector_threads)
    image = np.ascontiguousarray(resize_nearest(person_photo(), 224, 224))  # type: ignore[arg-type]
    for _ in range(10):
        det.infer(image)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        det.infer(image)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(n - 1, int(n * 0.99))]


async def event_latency(directory: Path, seconds: float) -> list[float]:
    walks = walks_every(seconds, 6.0, 2.4)
    clip = write_video(
        directory / "latency.mp4", frames(background_scene(W, H), person_photo(), walks, 10.0, seconds), 10.0
    )
    settings = CameraSettings.model_validate(
        {"cameras": [{"name": "bench", "url": str(clip)}], "detector": {"threads": 1, "lost_after_s": 1.0}}
    )
    store = Store.open(directory / "data")
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    service = CameraService(settings, store, bus, directory / "data")
    await service.start()
    await asyncio.to_thread(service.pipelines["bench"].source.finished.wait, seconds + 30)
    await asyncio.sleep(0.5)
    await service.stop()
    store.close()
    return list(service.event_latencies_s)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 60.0 if args.quick else 120.0
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        clip, with_person = person_clip(directory / "person.mp4", seconds)
        free = person_free_clip(directory / "free.mp4", seconds)
        detector = Detector(person_spec(), threads=1)
        n_frames = round(seconds * FPS)

        decode = run_source(clip, lambda f: None)
        naive = Naive(detector)
        calls = detector.calls
        naive_cpu = run_source(clip, naive)
        naive_calls, calls = detector.calls - calls, detector.calls
        ours = Ours(detector)
        ours_cpu = run_source(clip, ours)
        ours_calls = detector.calls - calls
        per_call = (naive_cpu - decode) / n_frames
        limit = decode + with_person * per_call
        first = ours.cpu_first_minute if ours.cpu_first_minute is not None else ours_cpu

        print(f"camera pipeline, {W}x{H} at {FPS:g} fps, {seconds:.0f} s clip, person in {with_person}/{n_frames}")
        print(f"  (a) decode only          {decode / seconds:.4f} CPU s per s of video")
        print(f"  (b) naive, every frame   {naive_cpu / seconds:.4f}  ({naive.starts} events, {naive_calls} calls)")
        print(f"  (c) ours                 {ours_cpu / seconds:.4f}  ({ours.starts} events, {ours_calls} calls)")
        print(f"  (c) ours, first minute   {first / min(60.0, seconds):.4f}")
        print(f"  limit: decode + 1 call per person frame  {limit / seconds:.4f}")
        print(f"  (c) / limit = {ours_cpu / limit:.2f} (target <= 1.2); (b) / (c) = {naive_cpu / ours_cpu:.1f}")
        print(f"  events missed vs baseline: {max(0, naive.starts - ours.starts)}")

        false = Ours(detector)
        run_source(free, false)
        per_hour = false.starts * 3600 / seconds
        print(f"  person-free clip (a cat, a cup, a rocket cross; a rocket stands): {false.starts} events")
        print(f"    = {per_hour:.1f} false events per hour (target 0)")

        for threads in (1, 2):
            median, p99 = latency(threads, 100 if args.quick else 300)
            rate = 1000 / median
            print(f"  detector, {threads} thread(s): median {median:.2f} ms, p99 {p99:.2f} ms, {rate:.0f} detections/s")

        latencies = asyncio.run(event_latency(directory, 20.0 if args.quick else 40.0))
        if latencies:
            median_s, p99_s = statistics.median(latencies), percentile(latencies, 0.99)
            print(
                f"  event latency, first frame -> outbox: n={len(latencies)} median {median_s:.3f} s, p99 {p99_s:.3f} s"
            )


if __name__ == "__main__":
    main()
