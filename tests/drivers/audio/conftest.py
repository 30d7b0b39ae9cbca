from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.audio import AudioPlayer, PcmFormat, SimulatedDevice
from tests.drivers.audio.media import write_tone

RATE = 48_000


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tone files shared by the tests (made once per session: encoding is the slow part)."""
    d = tmp_path_factory.mktemp("media")
    write_tone(d / "tone-1s.wav", seconds=1.0)  # 440 Hz, amplitude 0.5, 44.1 kHz stereo: resampled on the way
    write_tone(d / "tone-3s.wav", seconds=3.0, freq=1000.0)
    write_tone(d / "tone-0.5s.mp3", codec="mp3", seconds=0.5, freq=660.0)
    write_tone(d / "short.wav", seconds=0.05, freq=880.0, rate=RATE)
    write_tone(d / "mono.wav", channels=1, seconds=0.3)
    write_tone(d / "hot.wav", codec="pcm_f32le", amp=1.5, seconds=0.2)  # 3.5 dB over full scale
    write_tone(d / "tone-2s.mp3", codec="mp3", seconds=2.0, freq=550.0)
    return d


PlayerFactory = Callable[..., tuple[AudioPlayer, SimulatedDevice]]


@pytest.fixture
def make_player(tmp_path: Path) -> PlayerFactory:
    def make(
        *, keep: int = 50, read_timeout_s: float = 10.0, open_timeout_s: float = 10.0
    ) -> tuple[AudioPlayer, SimulatedDevice]:
        device = SimulatedDevice(tmp_path / "sink", keep=keep)
        player = AudioPlayer(device, PcmFormat(RATE, 2), read_timeout_s=read_timeout_s, open_timeout_s=open_timeout_s)
        return player, device

    return make


class MediaServer:
    """A small HTTP server for stream tests: /file/<name> serves a media file with its length; /stall/<name>
    is a live stream (no length, so not seekable, like Icecast) that sends the start of the file and then
    goes silent with the connection open: a stalled relay. It sends 3/4 of the file: 1.5 s of tone-2s.mp3."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, _, name = self.path.strip("/").partition("/")
                path = server.root / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                if kind != "stall":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if kind == "stall":
                    self.wfile.write(data[: len(data) * 3 // 4])
                    self.wfile.flush()
                    server.release.wait(30)
                    return
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, kind: str, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{kind}/{name}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def media_server(media: Path) -> Iterator[MediaServer]:
    server = MediaServer(media)
    yield server
    server.close()
