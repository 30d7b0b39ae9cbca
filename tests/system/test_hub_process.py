"""`hub run` as systemd runs it: READY/WATCHDOG/STATUS on $NOTIFY_SOCKET, a clean SIGTERM, and crash detection."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

from hub.store.database import DB_NAME, quick_check
from tests.support.processes import HUB, HubProcess, http_get, write_hub_config


def outbox_kinds(data: Path) -> list[str]:
    conn = sqlite3.connect(data / DB_NAME)
    try:
        return [k for (k,) in conn.execute("SELECT kind FROM outbox ORDER BY seq")]
    finally:
        conn.close()


def test_notify_ready_watchdog_status_and_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    config = write_hub_config(tmp_path / "hub", "thon-notify", cloud_url=None, token=None)
    hub = HubProcess(config, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
    started = time.monotonic()
    hub.start(wait=False)
    try:
        messages: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(m == "WATCHDOG=1" for m in messages) < 3:
            messages.extend(sock.recv(4096).decode().split("\n"))
        ready_at = messages.index("READY=1")
        assert time.monotonic() - started < 10
        status = [m for m in messages if m.startswith("STATUS=")]
        assert "services ok" in status[0]
        assert messages.index("WATCHDOG=1") > ready_at  # never fed before being ready
        assert sum(m == "WATCHDOG=1" for m in messages) >= 3
        # the listener was up when READY=1 was sent
        assert http_get(hub.url + "/healthz")[0] == 200
        assert hub.terminate() == 0
        rest = []
        sock.settimeout(0.5)
        try:
            while True:
                rest.extend(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            pass
        assert "STOPPING=1" in rest
    finally:
        hub.kill()
        sock.close()


def test_sigterm_stops_cleanly_within_5s_and_next_start_knows(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", "thon-sigterm", cloud_url=None, token=None)
    data = tmp_path / "hub" / "data"
    hub = HubProcess(config).start()
    assert hub.health()["previous_run"] is None  # first start ever
    started = time.monotonic()
    assert hub.terminate(timeout=5) == 0
    assert time.monotonic() - started < 5
    kinds = outbox_kinds(data)
    assert kinds[0] == "hub.started"
    assert kinds[-1] == "hub.stopped"
    conn = sqlite3.connect(data / DB_NAME)
    assert quick_check(conn) == []
    conn.close()
    assert not list(data.glob("*-wal")) or (data / f"{DB_NAME}-wal").stat().st_size == 0  # checkpointed

    hub.start()
    try:
        assert hub.health()["previous_run"] == {"clean": True}
        assert "hub.crashed" not in outbox_kinds(data)
        assert "power.lost" not in outbox_kinds(data)
    finally:
        hub.terminate()


def test_kill_9_is_reported_at_next_start(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", "thon-crash", cloud_url=None, token=None)
    data = tmp_path / "hub" / "data"
    hub = HubProcess(config).start()
    first_pid = hub.proc.pid if hub.proc else None
    hub.kill()
    hub.start()
    try:
        previous = hub.health()["previous_run"]
        assert previous["clean"] is False
        assert previous["same_boot"] is True  # the box stayed up: the hub died, not the power
        assert previous["pid"] == first_pid
        conn = sqlite3.connect(data / DB_NAME)
        row = conn.execute("SELECT cls, payload FROM outbox WHERE kind = 'hub.crashed'").fetchone()
        incidents = json.loads(conn.execute("SELECT value FROM state WHERE key = 'hub.incidents'").fetchone()[0])
        conn.close()
        assert [i["kind"] for i in incidents] == ["hub.crashed"]  # kept for the technician page after delivery
        assert incidents[0]["down_at"] is not None
        assert row is not None
        assert json.loads(row[1])["previous"]["pid"] == first_pid
        doctor = subprocess.run([HUB, "--config", str(config), "doctor"], capture_output=True, text=True, timeout=60)
        assert "warn  last stop        not clean: the hub crashed or was killed" in doctor.stdout
    finally:
        hub.terminate()


def test_health_endpoints(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", "thon-health", cloud_url=None, token=None)
    hub = HubProcess(config).start()
    try:
        status, body = http_get(hub.url + "/healthz")
        assert (status, body) == (200, b"degraded\n")  # no cloud configured is a problem worth showing
        report = hub.health()
        assert report["hub_id"] == "thon-health"
        expected = {"store", "web", "relays", "lighting", "audio", "broadcast", "sensors", "sync", "telemetry"}
        expected |= {"commands", "cloud_clock"}  # the command inbox and the clock check (issue #8)
        expected |= {"live"}  # WebRTC live sessions (issue #8), on by default: idle until a live.start
        expected |= {"ota"}  # over-the-air updates (issue #9): "off" here, the hub does not run from a slot
        assert set(report["services"]) == expected
        for name, service in report["services"].items():
            assert service["state"] == "running", name
            assert service["restarts"] == 0
            assert service["last_error"] is None
        assert report["services"]["sync"]["problems"] == ["no cloud_url configured: records stay on the box"]
        assert report["hardware"]["simulated"] is True
        assert report["outbox"]["last_seq"] >= 1
        # No password yet: every page leads to the first-run form (the Vietnamese one by default).
        status, page = http_get(hub.url + "/")
        assert status == 200
        assert "Đặt mật khẩu kỹ thuật viên" in page.decode()
        assert http_get(hub.url + "/api/health")[0] == 401  # neither a session nor the local token
    finally:
        hub.terminate()


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from the kernel's table (no traffic sent)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def test_listener_is_loopback_only_by_default(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", "thon-bind", cloud_url=None, token=None)
    hub = HubProcess(config).start()
    try:
        assert hub.health()["services"]["web"]["details"]["listen"] == f"127.0.0.1:{hub.port}"
        assert listening_addresses(hub.port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        hub.terminate()
