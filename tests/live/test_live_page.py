"""The technician page's live panel: the session on now (mode, camera, who, peer, duration) and its stop button,
which needs the CSRF token and ends the session for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud.live_client import Viewer, start
from hub.config.settings import ManagementSection
from hub.web.server import ManagementServer
from tests.live.rig import LiveRig, make_clip, need_host_address, wait_for
from tests.support.web import make_context
from tests.web.test_access import csrf_of, set_password
from tests.web.test_access import health as base_health

pytestmark = pytest.mark.webrtc


async def test_the_panel_lists_the_session_and_its_stop_button_ends_it(tmp_path: Path) -> None:
    need_host_address()
    clip = make_clip(tmp_path / "clip.mp4")
    async with LiveRig(tmp_path / "live", clip) as rig:

        def health() -> dict[str, Any]:
            return base_health() | {
                "services": {
                    "live": {
                        "state": "running",
                        "ok": True,
                        "critical": False,
                        "restarts": 0,
                        "problems": [],
                        "details": rig.svc.health(),
                    }
                }
            }

        (tmp_path / "web").mkdir()
        context = make_context(tmp_path / "web", health, rig.bus)
        client = TestClient(TestServer(ManagementServer(ManagementSection(), context).build_app()))
        await client.start_server()
        viewer = Viewer()
        try:
            result = await start(viewer, rig.signal, mode="camera", camera="cong-lang", who="cán bộ xã")
            await wait_for(lambda: viewer.stats.arrivals, 20, "a frame")
            await set_password(client)
            page = await (await client.get("/live", headers={"Accept-Language": "vi"})).text()
            assert "Xem camera" in page
            assert "cong-lang" in page
            assert "cán bộ xã" in page
            assert result["session"] in page
            refused = await client.post("/live/stop", data={"session": result["session"]}, allow_redirects=False)
            assert refused.status == 403
            assert rig.svc.sessions
            stopped = await client.post(
                "/live/stop",
                data={"csrf_token": csrf_of(page), "session": result["session"]},
                allow_redirects=False,
            )
            assert stopped.status == 303
            assert not rig.svc.sessions
            after = await (await client.get("/live")).text()
            assert "Không có phiên trực tiếp nào." in after  # the language chosen above stays
            assert "stopped by" in after  # the recent sessions table says how it ended
        finally:
            await viewer.close()
            await client.close()
            context.store.close()
