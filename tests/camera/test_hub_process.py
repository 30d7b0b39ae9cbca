"""`hub run` on simulated hardware with a camera (a looping video file): the camera service comes up under the
supervisor, reports its health in /api/health, and a person walking through reaches the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.camera.sim import Walk
from tests.camera.media import ensure_models, walking_clip
from tests.support.processes import HubProcess, wait_until, write_hub_config

pytestmark = [pytest.mark.inference, pytest.mark.slow]


def test_hub_runs_a_simulated_camera(tmp_path: Path) -> None:
    ensure_models()
    clip = walking_clip(tmp_path / "gate.mp4", [Walk(1.0, 4.0)], seconds=6.0)
    config = write_hub_config(
        tmp_path / "hub",
        "thon-camera-1",
        cloud_url=None,
        token=None,
        extra=f"""
[[camera.cameras]]
name = "cong"
url = "{clip}"
loop = true

[camera.detector]
threads = 1
""",
    )
    hub = HubProcess(config).start()
    try:

        def camera() -> dict[str, Any]:
            service = hub.health()["services"].get("camera", {})
            return dict(service.get("details", {}))

        wait_until(lambda: camera().get("cameras", {}).get("cong", {}).get("connected"), 20, what="camera up")
        wait_until(lambda: hub.outbox_stats()["pending_by_class"]["security"] >= 1, 20, what="a camera event")
        details = camera()
        assert details["detector"]["loaded"] is True
        assert details["cameras"]["cong"]["events_today"] >= 1
    finally:
        assert hub.terminate() == 0
