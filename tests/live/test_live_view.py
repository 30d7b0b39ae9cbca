"""Live camera view: the reference viewer (aiortc) receives the camera's frames, encoded at the size and rate
asked; the hub ends the session when the viewer leaves, on live.stop, or at the time limit, and records each
session in the outbox. Real peers over a real network address; the camera is a generated clip."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cloud.live_client import Viewer, start
from hub.bus import CommandError
from hub.store import RecordClass
from tests.live.rig import LiveRig, make_clip, need_host_address, wait_for
from tests.support.processes import free_port

pytestmark = pytest.mark.webrtc


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    need_host_address()
    return make_clip(tmp_path / "clip.mp4")


async def test_viewer_gets_frames_of_the_size_asked_and_leaving_ends_the_session(tmp_path: Path, clip: Path) -> None:
    async with LiveRig(tmp_path, clip) as rig:
        viewer = Viewer()
        result = await start(viewer, rig.signal, mode="camera", camera="cong-lang", width=256, height=144, who="xã")
        assert result["answer"]["type"] == "answer"
        assert "a=candidate" in result["answer"]["sdp"]  # complete answer: signalling has no trickle
        await wait_for(lambda: len(viewer.stats.arrivals) >= 10, 20, "ten decoded frames")
        assert viewer.stats.size == (256, 144)
        [listed] = (await rig.bus.call("live.list"))["sessions"]
        assert listed["mode"] == "camera"
        assert listed["camera"] == "cong-lang"
        assert listed["who"] == "xã"
        assert listed["state"] == "connected"
        assert listed["peer"]
        assert rig.svc.health()["sessions"][0]["video"]["frames_sent"] >= 10
        await viewer.close()
        await wait_for(lambda: not rig.svc.sessions, 40, "the hub to see the viewer leave")
        records = rig.outbox()
        assert rig.store is not None
        classes = {r.cls for r in rig.store.pending(10_000) if r.kind.startswith("live.")}
    assert classes == {RecordClass.SECURITY}  # who watched a village camera is an access record
    assert [kind for kind, _ in records] == ["live.started", "live.ended"]
    started, ended = records[0][1], records[1][1]
    assert started == {
        "session": result["session"],
        "mode": "camera",
        "who": "xã",
        "camera": "cong-lang",
        "width": 256,
        "height": 144,
        "fps": 15.0,
    }
    assert ended["reason"].startswith("the peer left")
    assert ended["frames_sent"] >= 10


async def test_time_limit_and_live_stop_end_sessions(tmp_path: Path, clip: Path) -> None:
    async with LiveRig(tmp_path, clip, max_sessions=2) as rig:
        timed, stopped = Viewer(), Viewer()
        try:
            first = await start(timed, rig.signal, mode="camera", camera="cong-lang", max_s=1.5)
            second = await start(stopped, rig.signal, mode="camera")  # no camera named: the first one
            assert rig.svc.sessions[second["session"]].camera == "cong-lang"
            await wait_for(lambda: stopped.stats.arrivals, 20, "a frame")
            answer = await rig.bus.call("live.stop", session=second["session"], who="cán bộ xã")
            assert answer["stopped"] is True
            assert answer["reason"] == "stopped by cán bộ xã"
            with pytest.raises(CommandError, match="session: no live session"):
                await rig.bus.call("live.stop", session=second["session"])
            await wait_for(lambda: not rig.svc.sessions, 20, "the time limit")
            # the hub closed its side: the viewer's connection goes down too
            await wait_for(lambda: stopped.pc.connectionState in ("closed", "failed"), 40, "the viewer to see it")
        finally:
            await timed.close()
            await stopped.close()
        reasons = {p["session"]: p["reason"] for kind, p in rig.outbox() if kind == "live.ended"}
    assert reasons == {
        first["session"]: "the time limit of 1.5 s was reached",
        second["session"]: "stopped by cán bộ xã",
    }


async def test_refusals_name_what_is_wrong_and_keep_nothing(tmp_path: Path, clip: Path) -> None:
    async with LiveRig(tmp_path, clip, max_sessions=1) as rig:
        viewer = Viewer()
        offer = await viewer.offer()
        cases: list[tuple[dict[str, Any], str]] = [
            ({"session": "a", "mode": "camera", "camera": "nowhere", "offer": offer}, "camera: no camera 'nowhere'"),
            ({"session": "a", "mode": "video", "camera": "cong-lang", "offer": offer}, "mode"),
            ({"session": "a", "mode": "camera", "camera": "cong-lang"}, "offer: Field required"),
            ({"session": "a", "mode": "camera", "camera": "cong-lang", "offer": offer, "fps": 90.0}, "fps"),
            ({"session": "a", "mode": "camera", "camera": "cong-lang", "offer": offer, "colour": 1}, "colour"),
            ({"session": "a", "mode": "announce", "offer": offer}, "offer: a live announcement's offer must send"),
        ]
        for args, message in cases:
            with pytest.raises(CommandError, match=message):
                await rig.signal(args)
        assert not rig.svc.sessions
        busy = Viewer()
        try:
            await start(busy, rig.signal, mode="camera", camera="cong-lang")
            with pytest.raises(CommandError, match=r"limit \(\[live\] max_sessions\)"):
                await rig.signal({"session": "b", "mode": "camera", "camera": "cong-lang", "offer": offer})
        finally:
            await busy.close()
            await viewer.close()
        assert rig.svc.counts["refused"] == len(cases) + 1
        assert [kind for kind, _ in rig.outbox()] in (["live.started"], ["live.started", "live.ended"])


async def test_privacy_masks_are_black_in_the_live_view(tmp_path: Path, clip: Path) -> None:
    cameras = [{"name": "cho", "url": str(clip), "loop": True, "privacy_masks": [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]}]
    async with LiveRig(tmp_path, clip, cameras=cameras) as rig:
        viewer = Viewer()
        try:
            await start(viewer, rig.signal, mode="camera", camera="cho")
            await wait_for(lambda: len(viewer.stats.arrivals) >= 5, 20, "frames")
            rgb = viewer.stats.last.to_ndarray(format="rgb24")
        finally:
            await viewer.close()
    width = rgb.shape[1]
    assert rgb[:, : width // 2 - 8].mean() < 12  # blacked out (a little codec noise at most)
    assert rgb[:, width // 2 + 8 :, 2].mean() > 60  # the clip's blue background is seen


@pytest.mark.realtime
async def test_first_frame_within_3_s_and_rate_within_20_percent(tmp_path: Path, clip: Path) -> None:
    async with LiveRig(tmp_path, clip) as rig:
        viewer = Viewer()
        try:
            await start(viewer, rig.signal, mode="camera", camera="cong-lang", fps=15.0)
            await asyncio.sleep(5.0)
        finally:
            await viewer.close()
    first = viewer.stats.first_after_s
    assert first is not None, first
    assert first < 3.0, first
    rate = viewer.stats.fps(skip_s=1.0)  # measured over ~4 s, past the encoder's start-up
    assert 12.0 <= rate <= 18.0, rate


async def test_a_peer_that_never_connects_is_given_up(tmp_path: Path, clip: Path) -> None:
    async with LiveRig(tmp_path, clip, connect_timeout_s=1.0) as rig:
        viewer = Viewer()
        try:
            await rig.signal(
                {"session": "lost", "mode": "camera", "camera": "cong-lang", "offer": await viewer.offer()}
            )
            # the answer never reaches the viewer (an operator who closed the page meanwhile)
            await wait_for(lambda: not rig.svc.sessions, 20, "the connect timeout")
        finally:
            await viewer.close()
        [ended] = [p for kind, p in rig.outbox() if kind == "live.ended"]
    assert ended["reason"] == "the peer did not connect within 1 s"
    assert ended["frames_sent"] == 0


async def test_a_camera_that_sends_no_picture_ends_the_view_and_says_why(tmp_path: Path, clip: Path) -> None:
    dark = [{"name": "cong-sau", "url": f"rtsp://127.0.0.1:{free_port()}/gate", "loop": False}]
    async with LiveRig(tmp_path, None, cameras=dark, no_picture_s=2.0) as rig:
        viewer = Viewer()
        try:
            result = await start(viewer, rig.signal, mode="camera", camera="cong-sau")
            await wait_for(lambda: viewer.pc.connectionState == "connected", 20, "the viewer to connect")
            assert result["session"] in rig.svc.sessions  # the session itself came up: only the picture is missing
            await wait_for(lambda: not rig.svc.sessions, 20, "the hub to give up on the dark camera")
        finally:
            await viewer.close()
        [ended] = [p for kind, p in rig.outbox() if kind == "live.ended"]
    assert ended["reason"].startswith("camera cong-sau sent no picture for 2 s: "), ended["reason"]
    assert "refused" in ended["reason"].lower() or "connect" in ended["reason"].lower(), ended["reason"]
    assert ended["frames_sent"] == 0
