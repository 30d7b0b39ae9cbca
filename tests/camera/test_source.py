"""Camera sources: a stream that stalls and comes back is restarted and recovers; a missing file is reported;
the analysis rate is the configured one. The stream is MPEG-TS over TCP from a server in the test that can
stop sending without closing the connection, the way a hung camera or a dead Wi-Fi bridge does."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path

import pytest

from drivers.camera.sim import Walk
from drivers.camera.source import CameraFrame, VideoSource
from tests.camera.media import walking_clip


class StallingServer:
    """Serves a TS file over TCP, paced; the first connection goes silent halfway and stays open."""

    def __init__(self, data: bytes, seconds: float) -> None:
        self.data = data
        self.rate = len(data) / seconds  # bytes per second of video
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stalled = threading.Event()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._send, args=(conn, self.connections == 1), daemon=True).start()

    def _send(self, conn: socket.socket, stall: bool) -> None:
        chunk = max(1, int(self.rate / 20))
        limit = len(self.data) // 2 if stall else len(self.data)
        try:
            for offset in range(0, limit, chunk):
                conn.sendall(self.data[offset : min(offset + chunk, limit)])
                time.sleep(0.05)
            if stall:
                self.stalled.set()
                self.closing.wait(30)  # silent, but the connection stays open
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.closing.set()
        self.sock.close()


@pytest.fixture(scope="module")
def ts_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = walking_clip(tmp_path_factory.mktemp("ts") / "walk.ts", [Walk(0.5, 3.5)], seconds=4.0)
    return path.read_bytes()


def test_a_stalled_stream_is_restarted_and_recovers(ts_clip: bytes) -> None:
    server = StallingServer(ts_clip, seconds=4.0)
    frames: list[CameraFrame] = []
    source = VideoSource(
        f"tcp://127.0.0.1:{server.port}",
        frames.append,
        fps=5,
        stall_timeout_s=1.0,
        open_timeout_s=5.0,
        backoff_initial_s=0.1,
        name="stall",
    )
    try:
        source.start()
        assert server.stalled.wait(10)
        before = len(frames)
        assert before > 0
        deadline = time.monotonic() + 10
        while source.reconnects == 0 or len(frames) <= before + 5:
            assert time.monotonic() < deadline, f"no recovery: {source.stats()}"
            time.sleep(0.05)
        stats = source.stats()
        assert stats.reconnects >= 1
        assert server.connections >= 2
        assert stats.connected
        assert stats.last_frame_age_s is not None
        assert stats.last_frame_age_s < 1.0
    finally:
        source.stop()
        server.close()


def test_a_missing_file_is_reported_and_retried(tmp_path: Path) -> None:
    source = VideoSource(str(tmp_path / "none.mp4"), lambda f: None, backoff_initial_s=0.05, backoff_max_s=0.1)
    try:
        source.start()
        deadline = time.monotonic() + 5
        while source.reconnects < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        stats = source.stats()
        assert not stats.connected
        assert stats.last_error == "no such file"
    finally:
        source.stop()


def test_frames_are_handed_on_at_the_analysis_rate(tmp_path: Path) -> None:
    clip = walking_clip(tmp_path / "c.mp4", [], seconds=3.0, fps=10.0)
    frames: list[CameraFrame] = []
    source = VideoSource(str(clip), frames.append, fps=2.5, realtime=False, max_width=320)
    source.start()
    assert source.finished.wait(10)
    source.stop()
    assert source.frames_in == 30
    assert 7 <= len(frames) <= 8
    assert frames[0].rgb.shape == (180, 320, 3)
    assert all(0.35 <= b.t - a.t <= 0.45 for a, b in itertools.pairwise(frames))
