"""Cameras: motion-gated person detection on each camera's sub-stream, tracked into events with snapshots,
recorded in segments, with retention under a disk budget.

Decoding and analysis run in threads (drivers/camera, hub/camera/pipeline.py); events are written to the
store and the outbox (security class) from those threads too, so a busy camera never delays the event loop.

Bus commands:
  camera.snapshot {camera, as: "base64" (default) | "path"}
      -> {camera, at, age_s, width, height, jpeg_base64 | path}   a fresh JPEG, privacy masks applied
  camera.events {limit = 20, camera?}
      -> {events: [...]}                                         recent events, newest first
Bus topics: camera.event {kind: start | zone | end, event_id, camera, ...}
Outbox records (security): camera.event.start, camera.event.zone, camera.event.end (the end carries the
best snapshot as base64 when storage.upload_snapshots).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.camera.jpeg import encode_jpeg
from drivers.camera.recorder import SegmentRecorder
from drivers.camera.source import is_url
from hub.bus import CommandError, EventBus
from hub.camera import retention
from hub.camera.pipeline import Analysed, CameraPipeline
from hub.camera.settings import CameraEntry, CameraSettings
from hub.service import Service
from hub.store import RecordClass, Store, Transaction
from ml.boxes import Box, Detection
from ml.draw import draw_box
from ml.model_files import MODELS_DIR, verified
from ml.model_spec import BUILTIN, ModelSpec

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ml.detector import Detector

log = logging.getLogger(__name__)

RECENT_KEY = "camera.recent_events"
RECENT_KEPT = 100
SIM_CLIP = "camera-sim/demo.mp4"


def model_spec(settings: CameraSettings) -> ModelSpec:
    d = settings.detector
    models_dir = d.models_dir or MODELS_DIR
    if d.model == "custom":
        c = d.custom
        assert c is not None  # the settings' validator saw to it
        spec = ModelSpec(
            name=c.file.stem,
            file=c.file if c.file.is_absolute() else models_dir / c.file,
            decoding=c.decoding,
            labels=tuple(c.labels),
            mean=c.mean,
            std=c.std,
            strides=tuple(c.strides),
            box_from=c.box_from,
            event_labels=tuple(c.event_labels),
        )
    else:
        base = BUILTIN[d.model]
        spec = base.with_file(models_dir / base.file.name)
    if d.score_threshold is not None:
        import dataclasses

        spec = dataclasses.replace(spec, score_threshold=d.score_threshold)
    return spec


class CameraService(Service):
    name = "camera"

    def __init__(
        self,
        settings: CameraSettings,
        store: Store,
        bus: EventBus,
        data_dir: Path,
        *,
        simulated: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.bus = bus
        self.root = data_dir / "camera"
        self.simulated = simulated
        self.spec = model_spec(settings)
        self.detector: Detector | None = None
        self.detector_error: str | None = None
        self._detect_lock = threading.Lock()
        self.pipelines: dict[str, CameraPipeline] = {}
        self.recorders: dict[str, SegmentRecorder] = {}
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_KEPT)
        self._event_ids: dict[tuple[str, int], str] = {}
        self._events_lock = threading.Lock()
        self._pending_links: list[tuple[float, str, str, float, float]] = []
        self.event_latencies_s: collections.deque[float] = collections.deque(maxlen=200)
        self.store_errors = 0
        self.last_retention: dict[str, Any] | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        saved = await asyncio.to_thread(self.store.get_state, RECENT_KEY)
        if isinstance(saved, list):
            self.recent.extend(saved[-RECENT_KEPT:])
        if self.settings.detector.enabled:
            await asyncio.to_thread(self._load_detector)
        sim_clip = await asyncio.to_thread(self._sim_clip) if self.simulated else None
        for entry in self.settings.cameras:
            url = entry.analysis_url
            if sim_clip is not None and is_url(url):
                url = str(sim_clip)  # simulated hardware: no network cameras; the demo clip stands in
            pipeline = CameraPipeline(
                entry,
                self.settings,
                self._detect if self.detector is not None else None,
                self._on_event,
                url=url,
                event_labels=self.spec.event_labels or self.spec.labels,
            )
            self.pipelines[entry.name] = pipeline
            if entry.record.enabled:
                self.recorders[entry.name] = self._recorder(entry, url if url != entry.analysis_url else entry.url)
        for pipeline in self.pipelines.values():
            pipeline.start()
        for recorder in self.recorders.values():
            recorder.start()

    def _sim_clip(self) -> Path | None:
        if not any(is_url(c.analysis_url) for c in self.settings.cameras):
            return None
        from drivers.camera.sim import demo_clip

        return demo_clip(self.root / SIM_CLIP)

    def _load_detector(self) -> None:
        from ml.detector import Detector
        from ml.interpreter import ModelLoadError

        if not verified(self.spec.file):
            self.detector_error = f"model {self.spec.file} is missing or not the pinned file (run scripts/fetch-models)"
            log.error("camera: %s; running on motion only", self.detector_error)
            return
        try:
            self.detector = Detector(self.spec, self.settings.detector.threads, self.settings.detector.delegate)
        except ModelLoadError as exc:
            self.detector_error = str(exc)
            log.error("camera: %s; running on motion only", exc)

    def _recorder(self, entry: CameraEntry, url: str) -> SegmentRecorder:
        pipeline = self.pipelines[entry.name]
        transform = pipeline.masked if entry.privacy_masks and entry.record.reencode_privacy else None
        return SegmentRecorder(
            url,
            self.root / "clips" / entry.name / "continuous",
            segment_s=entry.record.segment_s,
            transform=transform,
            realtime=True,
            stall_timeout_s=self.settings.stall_timeout_s,
            name=entry.name,
        )

    async def run(self) -> None:
        withdraw = [
            self.bus.serve("camera.snapshot", self._snapshot_command),
            self.bus.serve("camera.events", self._events_command),
        ]
        try:
            while True:
                await asyncio.to_thread(self._housekeeping)
                self.beat()
                await asyncio.sleep(min(self.settings.storage.check_interval_s, 5.0))
        finally:
            for undo in withdraw:
                undo()

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        for recorder in self.recorders.values():
            recorder.stop()
        for pipeline in self.pipelines.values():
            pipeline.stop()

    # ---- detection (called from the cameras' worker threads) --------------------------------------------

    def _detect(self, frame: NDArray[np.uint8], region: Box | None) -> list[Detection]:
        assert self.detector is not None
        with self._detect_lock:
            return self.detector.detect(frame, region)

    # ---- events (called from the cameras' worker threads) -----------------------------------------------

    def _on_event(self, pipeline: CameraPipeline, analysed: Analysed) -> None:
        event, track = analysed.event, analysed.event.track
        camera = pipeline.name
        now_wall = time.time()
        key = (camera, track.id)
        if event.kind == "start":
            # the wall time of the track's first sighting (its times are on the source's clock)
            first_wall = now_wall - (event.at - track.first_seen)
            self._event_ids[key] = f"{camera}-{int(first_wall * 1000)}-{track.id}"
        event_id = self._event_ids.get(key)
        if event_id is None:
            return
        frame = track.best_frame
        size = (frame.shape[1], frame.shape[0]) if frame is not None else (1, 1)
        payload: dict[str, Any] = {
            "event_id": event_id,
            "camera": camera,
            "label": track.label,
            "score": round(track.best_score, 3),
            "box": [round(v / size[i % 2], 4) for i, v in enumerate(track.best_box)],
            "zones": list(track.zones),
            "at": now_wall,
            "started_at": round(now_wall - (event.at - track.first_seen), 3),
        }
        snapshot_jpeg: bytes | None = None
        if event.kind in ("start", "end") and frame is not None:
            snapshot_jpeg = self._snapshot(pipeline, frame, track.best_box)
            path = self.root / "snapshots" / camera / f"{event_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(snapshot_jpeg)
            partial.replace(path)
            payload["snapshot"] = str(path.relative_to(self.root.parent))
        if event.kind == "zone":
            payload["zone"] = event.zone
        if event.kind == "end":
            self._event_ids.pop(key, None)
            payload["duration_s"] = round(track.last_seen - track.first_seen, 2)
            payload["ended_at"] = round(now_wall - (event.at - track.last_seen), 3)
            if self.settings.storage.upload_snapshots and snapshot_jpeg is not None:
                payload["snapshot_jpeg_base64"] = base64.b64encode(snapshot_jpeg).decode("ascii")
            record = pipeline.entry.record
            if record.enabled:
                due = time.monotonic() + record.post_s + record.segment_s
                start, end = payload["started_at"] - record.pre_s, payload["ended_at"] + record.post_s
                self._pending_links.append((due, camera, event_id, start, end))
        if event.kind == "start" and analysed.realtime:
            payload["latency_s"] = round(time.monotonic() - track.first_seen, 3)
        summary = {k: v for k, v in payload.items() if k != "snapshot_jpeg_base64"} | {"kind": event.kind}
        with self._events_lock:
            if event.kind == "start":
                self.recent.append(summary)
            else:
                for item in self.recent:
                    if item["event_id"] == event_id:
                        item.update(summary)
            recent = list(self.recent)

        def write(tx: Transaction) -> None:
            tx.append(RecordClass.SECURITY, f"camera.event.{event.kind}", payload)
            tx.set_state(RECENT_KEY, recent)

        future = self.store.submit(write)
        appended_from = track.first_seen if analysed.realtime else None

        def done(f: Any) -> None:
            if f.exception() is not None:
                self.store_errors += 1
                log.error("camera: storing event %s failed: %s", event_id, f.exception())
            elif event.kind == "start" and appended_from is not None:
                self.event_latencies_s.append(time.monotonic() - appended_from)

        future.add_done_callback(done)
        self.bus.publish_threadsafe("camera.event", **summary)

    def _snapshot(self, pipeline: CameraPipeline, frame: NDArray[np.uint8], box: Box | None) -> bytes:
        if box is not None:
            frame = frame.copy()
            draw_box(frame, box)
        # masked last: nothing, not even the box, is drawn over a neighbour's house
        return encode_jpeg(pipeline.masked(frame), self.settings.storage.snapshot_quality)

    # ---- housekeeping: event clips and retention --------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        due = [p for p in self._pending_links if p[0] <= now]
        self._pending_links = [p for p in self._pending_links if p[0] > now]
        for _, camera, event_id, start, end in due:
            entry = self.pipelines[camera].entry
            retention.link_event_segments(
                self.root / "clips" / camera / "continuous",
                self.root / "clips" / camera / "events" / event_id,
                start,
                end,
                entry.record.segment_s,
            )
        last = (self.last_retention or {}).get("at_mono", 0.0)
        if now - last >= self.settings.storage.check_interval_s:
            s = self.settings.storage
            policy = retention.Policy(
                budget_bytes=s.budget_mb * 1024 * 1024,
                min_free_bytes=s.min_free_mb * 1024 * 1024,
                event_max_age_s=s.event_days * 86400,
                continuous_max_age_s=s.continuous_hours * 3600,
            )
            report = retention.enforce(self.root, policy, time.time())
            self.last_retention = {**report.as_dict(), "at_mono": now}

    # ---- commands ---------------------------------------------------------------------------------------

    async def _snapshot_command(self, data: dict[str, Any]) -> dict[str, Any]:
        name = str(data.get("camera") or "")
        if not name and len(self.pipelines) == 1:
            name = next(iter(self.pipelines))
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            raise CommandError(f"no camera named {name!r}; cameras: {', '.join(self.pipelines) or 'none'}")
        frame = pipeline.latest()
        if frame is None:
            raise CommandError(f"camera {name!r} has not delivered a frame yet")
        age = time.monotonic() - frame.received
        if age > self.settings.stall_timeout_s:
            raise CommandError(f"camera {name!r} delivered its last frame {age:.0f} s ago")
        jpeg = await asyncio.to_thread(self._snapshot, pipeline, frame.rgb, None)
        answer: dict[str, Any] = {
            "camera": name,
            "at": time.time() - age,
            "age_s": round(age, 3),
            "width": int(frame.rgb.shape[1]),
            "height": int(frame.rgb.shape[0]),
        }
        if data.get("as") == "path":
            path = self.root / "live" / f"{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(path.write_bytes, jpeg)
            answer["path"] = str(path)
        else:
            answer["jpeg_base64"] = base64.b64encode(jpeg).decode("ascii")
        return answer

    async def _events_command(self, data: dict[str, Any]) -> dict[str, Any]:
        limit = data.get("limit", 20)
        if not isinstance(limit, int) or not 1 <= limit <= RECENT_KEPT:
            raise CommandError(f"'limit' must be an integer from 1 to {RECENT_KEPT}")
        camera = data.get("camera")
        with self._events_lock:
            events = [e for e in self.recent if camera in (None, e.get("camera"))]
        return {"events": list(reversed(events))[:limit]}

    # ---- health -----------------------------------------------------------------------------------------

    def events_today(self, camera: str) -> int:
        today = dt.date.today()
        with self._events_lock:
            return sum(
                1
                for e in self.recent
                if e.get("camera") == camera and dt.date.fromtimestamp(float(e.get("started_at", 0))) == today
            )

    def detector_health(self) -> dict[str, Any]:
        d = self.detector
        latencies = sorted(self.event_latencies_s)
        return {
            "model": self.spec.name,
            "file": str(self.spec.file),
            "loaded": d is not None,
            "error": self.detector_error,
            "runtime": d.runtime if d else None,
            "delegate": d.delegate if d else None,
            "threads": d.threads if d else self.settings.detector.threads,
            "input_size": d.input_size if d else None,
            "calls": d.calls if d else 0,
            **(d.latency() if d else {"median_ms": None, "p99_ms": None}),
            "event_latency_p99_s": round(latencies[int(len(latencies) * 0.99)], 3) if latencies else None,
        }

    def health(self) -> dict[str, Any]:
        cameras = {}
        for name, pipeline in self.pipelines.items():
            cameras[name] = {**pipeline.health(), "events_today": self.events_today(name)}
            if name in self.recorders:
                cameras[name]["recorder"] = self.recorders[name].health()
        return {
            "cameras": cameras,
            "detector": self.detector_health(),
            "retention": self.last_retention,
            "store_errors": self.store_errors,
        }

    def problems(self) -> list[str]:
        problems = []
        if self.detector_error:
            problems.append(f"detector: {self.detector_error}")
        for name, pipeline in self.pipelines.items():
            stats = pipeline.source.stats()
            if not stats.connected and not pipeline.source.finished.is_set():
                problems.append(f"camera {name}: not connected ({stats.last_error or 'connecting'})")
        return problems
