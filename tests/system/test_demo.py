"""The demo the README gives: the cloud and a simulated hub come up, talk, and stop cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import free_port, http_get, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_demo_starts_both_and_they_talk(tmp_path: Path) -> None:
    hub_port, cloud_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--dir",
            str(tmp_path / "demo"),
            "--hub-port",
            str(hub_port),
            "--cloud-port",
            str(cloud_port),
            "--duration",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        output = ""
        # The demo builds an update slot and publishes a release before it prints: seconds here, a minute or more
        # under the arm64 lane's emulation. The loop ends as soon as the banner is out.
        deadline = time.monotonic() + 150
        while "outbox stats" not in output and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output += line
        assert f"http://127.0.0.1:{hub_port}/" in output, output
        assert f"http://127.0.0.1:{cloud_port}/#token=" in output, output
        admin = output.split("#token=")[1].split()[0]
        assert "user: demo  password: " in output, output
        token = (tmp_path / "demo" / "data" / "local-api.token").read_text().strip()
        status, body = http_get(f"http://127.0.0.1:{hub_port}/api/health", token=token)
        assert status == 200
        assert json.loads(body)["hardware"]["simulated"] is True

        def delivered() -> bool:
            status, body = http_get(f"http://127.0.0.1:{cloud_port}/api/v1/hubs", token=admin)
            hubs = json.loads(body)["hubs"] if status == 200 else []
            return bool(hubs and hubs[0]["records"] >= 2)

        wait_until(delivered, 60, what="the demo hub's records to reach the demo cloud")
        status, page = http_get(f"http://127.0.0.1:{cloud_port}/")
        assert status == 200
        assert "commune cloud" in page.decode()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
