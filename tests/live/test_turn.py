"""STUN/TURN from config: with a relay-only ICE policy the hub's media goes through a real TURN server (Debian's
coturn, started here with a static user) and the viewer still gets frames — the path a box behind 4G carrier
NAT takes. Skipped when turnserver is not installed."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.live_client import Viewer, start
from hub.bus import CommandError
from tests.live.rig import LiveRig, make_clip, need_host_address, wait_for
from tests.support.processes import free_port

pytestmark = [pytest.mark.webrtc, pytest.mark.slow]

USER, PASSWORD = "hub", "mật-khẩu-turn"


def stun_answers(host: str, port: int) -> bool:
    """A STUN Binding request (RFC 5389) answered: the server is up."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(request, (host, port))
            answer = sock.recv(2048)
        except OSError:
            return False
    return len(answer) >= 20 and answer[:2] == b"\x01\x01" and answer[8:20] == request[8:20]


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[str]:
    """A TURN server on this machine's address; yields its address 'host:port'."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("turnserver (Debian package coturn) is not installed")
    address = need_host_address()
    port = free_port()
    log_file = tmp_path / "turnserver.log"
    process = subprocess.Popen(
        [
            binary,
            "-n",  # no configuration file
            f"--listening-ip={address}",
            f"--relay-ip={address}",
            f"--listening-port={port}",
            "--min-port=49160",
            "--max-port=49959",
            "--lt-cred-mech",
            f"--user={USER}:{PASSWORD}",
            "--realm=village-hub.test",
            "--fingerprint",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-stdout-log",
            f"--log-file={log_file}",
            "--simple-log",
            f"--pidfile={tmp_path / 'turnserver.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not stun_answers(address, port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                pytest.fail(f"turnserver did not answer STUN: {log[-2000:]}")
            time.sleep(0.1)
        yield f"{address}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_relay_only_policy_goes_through_the_turn_server(tmp_path: Path, turn: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    servers = [{"urls": [f"turn:{turn}?transport=udp"], "username": USER, "credential": PASSWORD}]
    async with LiveRig(tmp_path, clip, ice_servers=servers, ice_transport_policy="relay") as rig:
        viewer = Viewer()
        try:
            result = await start(viewer, rig.signal, mode="camera", camera="cong-lang")
            assert "typ relay" in result["answer"]["sdp"]
            assert "typ host" not in result["answer"]["sdp"]  # relay-only: the hub reveals no address of its own
            await wait_for(lambda: len(viewer.stats.arrivals) >= 5, 30, "frames through the TURN relay")
            [session] = rig.svc.health()["sessions"]
            assert session["peer"]
            assert "via relay" in session["peer"]
        finally:
            await viewer.close()
        # a wrong password (the URL as a bare string, as browsers allow): no relay candidate, so no usable answer
        wrong = [{"urls": f"turn:{turn}?transport=udp", "username": USER, "credential": "sai"}]
        stranger = Viewer()
        try:
            with pytest.raises(CommandError, match="ice_servers: the hub gathered no ICE candidate"):
                await start(stranger, rig.signal, mode="camera", camera="cong-lang", ice_servers=wrong)
        finally:
            await stranger.close()
        # an operator naming only a STUN server of its own keeps the hub's TURN relay (the servers are merged)
        operator = Viewer()
        try:
            stun_only = [{"urls": ["stun:127.0.0.1:9"]}]
            result = await start(operator, rig.signal, mode="camera", camera="cong-lang", ice_servers=stun_only)
            assert "typ relay" in result["answer"]["sdp"]
        finally:
            await operator.close()
