"""The camera service with a real store and bus, on a file source played at its own pace (a camera in all
but the network): events in the outbox within a second, snapshots with privacy masks, the bus commands."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.camera.sim import Walk
from hub.bus import CommandError, EventBus
from hub.camera.service import CameraService
from hub.camera.settings import CameraSettings
from hub.store import RecordClass, Store
from tests.camera.media import decode_jpeg, ensure_models, walking_clip

pytestmark = pytest.mark.inference

PRIVATE = [[0.75, 0.0], [1.0, 0.0], [1.0, 1.0], [0.75, 1.0]]  # the right quarter: a neighbour's house


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[CameraService, Store, EventBus]]:
    ensure_models()
    clip = walking_clip(tmp_path / "walk.mp4", [Walk(1.0, 3.5)], seconds=5.0)
    settings = CameraSettings.model_validate(
        {
            "cameras": [{"name": "cong-lang", "url": str(clip), "privacy_masks": [PRIVATE], "fps": 5.0}],
            "detector": {"threads": 1, "lost_after_s": 1.0},
        }
    )
    store = Store.open(tmp_path / "data")
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    service = CameraService(settings, store, bus, tmp_path / "data")
    await service.start()
    task = asyncio.create_task(service.run())
    yield service, store, bus
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await service.stop()
    store.close()


def outbox(store: Store) -> list[tuple[str, RecordClass, dict[str, Any]]]:
    return [(r.kind, r.cls, json.loads(r.payload_json)) for r in store.pending(1000)]


async def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_walk_is_one_event_in_the_outbox_with_a_masked_snapshot(
    running: tuple[CameraService, Store, EventBus], tmp_path: Path
) -> None:
    service, store, bus = running
    events = bus.subscribe("camera.event")
    await wait_for(lambda: [k for k, _, _ in outbox(store)] == ["camera.event.start", "camera.event.end"], 15)
    (_, start_cls, start), (_, _, end) = outbox(store)
    assert start_cls == RecordClass.SECURITY
    assert start["camera"] == "cong-lang"
    assert start["label"] == "person"
    assert start["event_id"] == end["event_id"]
    assert 0 < start["latency_s"] < 1.0, "event in the outbox within 1 s of the person's first frame"
    assert 1.5 < end["duration_s"] < 3.5
    snapshot = tmp_path / "data" / end["snapshot"]
    assert snapshot.is_file()
    image = decode_jpeg(base64.b64decode(end["snapshot_jpeg_base64"]), tmp_path)
    assert image.shape == (360, 640, 3)
    assert image[:, 490:].max() < 40, "the privacy mask is black in the snapshot"
    assert image[:, :470].mean() > 60
    assert (await events.get()).data["kind"] == "start"

    listed = await bus.call("camera.events", limit=5)
    assert [e["event_id"] for e in listed["events"]] == [start["event_id"]]
    assert listed["events"][0]["kind"] == "end"
    assert "snapshot_jpeg_base64" not in listed["events"][0]

    health = service.health()
    camera = health["cameras"]["cong-lang"]
    assert camera["events_today"] == 1
    assert camera["frames_in"] > 0
    assert camera["reconnects"] == 0
    assert health["detector"]["loaded"]
    assert health["detector"]["runtime"] in ("ai-edge-litert", "tflite-runtime")
    assert health["detector"]["median_ms"] > 0


async def test_snapshot_command(running: tuple[CameraService, Store, EventBus], tmp_path: Path) -> None:
    service, _, bus = running
    await wait_for(lambda: service.pipelines["cong-lang"].latest() is not None, 10)
    answer = await bus.call("camera.snapshot", camera="cong-lang")
    image = decode_jpeg(base64.b64decode(answer["jpeg_base64"]), tmp_path)
    assert (answer["width"], answer["height"]) == image.shape[1::-1] == (640, 360)
    assert image[:, 490:].max() < 40
    assert answer["age_s"] < 1.0
    by_path = await bus.call("camera.snapshot", camera="cong-lang", **{"as": "path"})  # type: ignore[arg-type]
    assert (await asyncio.to_thread(Path(by_path["path"]).read_bytes))[:2] == b"\xff\xd8"
    with pytest.raises(CommandError, match="no camera named 'nowhere'"):
        await bus.call("camera.snapshot", camera="nowhere")
    with pytest.raises(CommandError, match="limit"):
        await bus.call("camera.events", limit=0)
