"""A real `hub-cloud` server in a subprocess, and a small HTTP client to talk to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
START_TIMEOUT = 15.0

# No proxy: the server is on loopback, whatever http_proxy says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _hub_cloud() -> list[str]:
    script = Path(sys.executable).with_name("hub-cloud")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cloud"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def error(self) -> str:
        """The `error` message of a refused request (fails the test if the body is not the documented shape)."""
        data = self.json()
        assert isinstance(data, dict), data
        message = data.get("error")
        assert isinstance(message, str), data
        return message


@dataclass
class CloudServer:
    db: Path
    log: Path
    admin_token: str = ADMIN_TOKEN
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- process control -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start `hub-cloud serve` on a free port and wait for /healthz; retry on a lost port race."""
        for _attempt in range(3):
            self.port = free_port()
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        *_hub_cloud(),
                        "--db",
                        str(self.db),
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(self.port),
                        "--admin-token",
                        self.admin_token,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.request("GET", "/healthz", timeout=1).status == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.05)
            exited = self.proc.poll() is not None
            self.stop()
            if not exited:  # alive but never healthy: not a port race
                break
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"hub-cloud did not become healthy on {self.base_url}; log:\n{tail}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no chance to flush anything."""
        self.stop(signal.SIGKILL)

    # --- hubs ------------------------------------------------------------------------------------------------

    def add_hub(self, hub_id: str) -> str:
        """Register a hub with the CLI (`hub-cloud --db … add-hub HUB_ID`) and return the token it prints."""
        out = subprocess.run(
            [*_hub_cloud(), "--db", str(self.db), "add-hub", hub_id],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        token = out.stdout.strip()
        assert token, f"add-hub printed no token: {out!r}"
        assert token.split() == [token], token
        return token

    # --- HTTP ------------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=all_headers)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, dict(exc.headers.items()), exc.read())

    def register(self, hub_id: str) -> str:
        """Register a hub through the admin API (`POST /api/v1/hubs`) and return its token."""
        resp = self.request(
            "POST", "/api/v1/hubs", body=json.dumps({"hub_id": hub_id}).encode(), token=self.admin_token
        )
        assert resp.status == 201, resp
        token = resp.json()["token"]
        assert isinstance(token, str)
        return token

    def ingest(self, token: str | None, batch: Any) -> Response:
        raw = batch if isinstance(batch, bytes) else json.dumps(batch, ensure_ascii=False).encode("utf-8")
        return self.request("POST", "/api/v1/ingest", body=raw, token=token)

    def state(self, token: str) -> int:
        resp = self.request("GET", "/api/v1/ingest/state", token=token)
        assert resp.status == 200, resp
        ack = resp.json()["ack_seq"]
        assert isinstance(ack, int)
        return ack

    def records(self, hub_id: str, **query: int) -> list[dict[str, Any]]:
        path = f"/api/v1/hubs/{urllib.parse.quote(hub_id, safe='')}/records"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        resp = self.request("GET", path, token=self.admin_token)
        assert resp.status == 200, resp
        data = resp.json()
        assert data["hub_id"] == hub_id
        rows = data["records"]
        assert isinstance(rows, list)
        return rows


def new_server(directory: Path) -> CloudServer:
    """A server (not started yet) with its database and log in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    return CloudServer(db=directory / "cloud.sqlite3", log=directory / "server.log")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudServer]:
    """One real server per test module; tests isolate themselves with a fresh hub id."""
    server = new_server(tmp_path_factory.mktemp("cloud"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub(cloud: CloudServer) -> tuple[str, str]:
    """A fresh hub registered with the CLI: (hub_id, token)."""
    hub_id = f"thon-{uuid.uuid4().hex[:12]}"
    return hub_id, cloud.add_hub(hub_id)
