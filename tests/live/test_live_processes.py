"""Live sessions end to end between real processes: the reference operator client (aiortc) queues `live.start`
at `hub-cloud serve`, `hub run` fetches it through its command inbox, the live service answers, the client
long-polls the answer and media flows hub -> viewer; `live.stop` goes the same way, and the hub's
live.started / live.ended records reach the cloud through the outbox."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.live_client import CloudSignal, LiveError, Viewer, start
from tests.live.rig import live_hub_extra, make_clip, need_host_address, wait_for
from tests.support.processes import HUB_CLOUD, CloudProcess, HubProcess, wait_until, write_hub_config

pytestmark = [pytest.mark.webrtc, pytest.mark.slow]

HUB_ID = "thon-truc-tiep"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudProcess]:
    need_host_address()
    c = CloudProcess(tmp_path / "cloud").start()
    yield c
    c.stop()


async def test_live_view_through_the_cloud_inbox(cloud: CloudProcess, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    token = cloud.add_hub(HUB_ID)
    extra = live_hub_extra(clip)
    hub = HubProcess(write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token, extra=extra))
    hub.start()
    try:
        assert hub.health()["services"]["live"]["state"] == "running"
        signal = CloudSignal(cloud.url, cloud.admin_token, HUB_ID)
        viewer = Viewer()
        try:
            result = await start(viewer, signal.start, mode="camera", camera="cong-lang", who="cán bộ xã")
            await wait_for(lambda: len(viewer.stats.arrivals) >= 5, 30, "frames from the hub process")
            assert viewer.stats.size == (320, 240)
            stopped = await signal.stop(result["session"])
            assert stopped["stopped"] is True
            with pytest.raises(LiveError, match=r"rejected: .*no live session"):
                await signal.stop(result["session"])
        finally:
            await viewer.close()

        # the same from the command line
        cli = await asyncio.create_subprocess_exec(
            HUB_CLOUD,
            "live-view",
            HUB_ID,
            "cong-lang",
            "--url",
            cloud.url,
            "--admin-token",
            cloud.admin_token,
            "--seconds",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await asyncio.wait_for(cli.communicate(), 60))[0].decode()
        assert cli.returncode == 0, output
        assert re.search(r"frames [1-9]\d*, .* size \(320, 240\)", output), output

        def recorded() -> list[str]:
            return [r["kind"] for r in cloud.all_records(HUB_ID) if r["kind"].startswith("live.")]

        await asyncio.to_thread(
            wait_until, lambda: recorded() == ["live.started", "live.ended"] * 2, 30, what="live records at the cloud"
        )
    finally:
        hub.terminate()
