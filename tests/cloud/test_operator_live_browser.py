"""The operator console's live view end to end: Chromium's WebRTC (the page's own script) ↔ `hub-cloud serve` (the
command inbox carries offer and answer) ↔ `hub run` (its live service streams a camera clip). The video element
must play real frames from the hub; Stop must end the session on the hub. Then "Speak" sends Chromium's (fake)
microphone to the hub as a live announcement."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.rig import live_hub_extra, make_clip, need_host_address
from tests.support.browser import chromium
from tests.support.processes import CloudProcess, HubProcess, wait_until, write_hub_config

pytestmark = [pytest.mark.browser, pytest.mark.webrtc, pytest.mark.slow, pytest.mark.xdist_group("browser")]

playwright_api = pytest.importorskip("playwright.sync_api")

HUB_ID = "thon-xem-truc-tiep"


@pytest.fixture
def browser() -> Iterator[Any]:
    # Host candidates as addresses, not mDNS names: the hub's ICE agent then needs no multicast resolver.
    # A fake microphone (a beep) that needs no permission prompt, for the live announcement.
    with chromium(
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ) as browser:
        yield browser


def live_records(cloud: CloudProcess) -> list[str]:
    return [r["kind"] for r in cloud.all_records(HUB_ID) if r["kind"].startswith("live.")]


def test_the_browser_watches_a_hub_camera_through_the_cloud(browser: Any, tmp_path: Path) -> None:
    need_host_address()
    clip = make_clip(tmp_path / "clip.mp4")
    cloud = CloudProcess(tmp_path / "cloud").start()
    try:
        token = cloud.add_hub(HUB_ID)
        extra = live_hub_extra(clip)
        hub = HubProcess(write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token, extra=extra))
        hub.start()
        try:
            page = browser.new_page(locale="en-US")  # the status texts below are the English ones
            page.goto(f"{cloud.url}/operator/hubs/{HUB_ID}/live")
            page.fill("input[name=token]", cloud.admin_token)
            page.click("button[type=submit]")
            page.wait_for_url("**/live")
            page.fill("#camera", "cong-lang")
            page.click("#watch")
            status = page.locator("#status")
            playwright_api.expect(status).to_contain_text("Connected", timeout=45_000)
            video = page.locator("#video")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                size = video.evaluate("v => [v.videoWidth, v.videoHeight, v.currentTime]")
                if size[0] > 0 and size[2] > 0.5:
                    break
                time.sleep(0.2)
            assert size[:2] == [320, 240], (size, status.inner_text(), hub.read_log()[-2000:])
            assert size[2] > 0.5  # playing, not one frame

            page.click("#stop")
            playwright_api.expect(status).to_contain_text("Stopped", timeout=45_000)
            wait_until(lambda: "live.ended" in live_records(cloud), 60, what="the hub's live.ended record")
            assert live_records(cloud)[:2] == ["live.started", "live.ended"]

            # "Speak": the browser's microphone to the hub's loudspeakers, the same way round.
            page.click("#speak")
            playwright_api.expect(status).to_contain_text("speak now", timeout=45_000)
            page.click("#stop")
            playwright_api.expect(status).to_contain_text("Stopped", timeout=45_000)
            wait_until(lambda: live_records(cloud).count("live.ended") == 2, 60, what="the announcement's end")
            started = [r for r in cloud.all_records(HUB_ID) if r["kind"] == "live.started"]
            assert [r["payload"]["mode"] for r in started] == ["camera", "announce"]
            assert started[1]["payload"]["who"] == "operator console"
            page.close()
        finally:
            hub.terminate()
    finally:
        cloud.stop()
