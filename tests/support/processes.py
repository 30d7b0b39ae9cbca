"""Real processes for integration tests: the reference cloud (`hub-cloud serve`) and the hub (`hub run`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
HUB = str(BIN / "hub")
HUB_CLOUD = str(BIN / "hub-cloud")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(
    url: str, token: str | None = None, timeout: float = 5.0, context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_until(predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        return http_get(url, timeout=1.0, context=context)[0] == 200
    except OSError:
        return False


class CloudProcess:
    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        admin_token: str = "test-admin-token",
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """tls: (certificate chain PEM, key PEM, the CA PEM that tests trust) to serve HTTPS."""
        self.directory = directory
        self.tls = tls
        self.context = ssl.create_default_context(cafile=str(tls[2])) if tls else None
        self.db = directory / "cloud.sqlite3"
        self.port = port or free_port()
        self.admin_token = admin_token
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "cloud.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def add_hub(self, hub_id: str) -> str:
        out = subprocess.run(
            [HUB_CLOUD, "--db", str(self.db), "add-hub", hub_id], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def start(self) -> CloudProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            tls = ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])] if self.tls else []
            serve = ["serve", "--port", str(self.port), "--admin-token", self.admin_token, *tls]
            self.proc = subprocess.Popen(
                [HUB_CLOUD, "--db", str(self.db), *serve],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: _answers(self.url + "/healthz", self.context), 20, what="the cloud to answer")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def admin(self, path: str) -> Any:
        status, body = http_get(self.url + path, token=self.admin_token, context=self.context)
        assert status == 200, (status, body)
        return json.loads(body)

    def hub(self, hub_id: str) -> dict[str, Any]:
        for hub in self.admin("/api/v1/hubs")["hubs"]:
            if hub["hub_id"] == hub_id:
                return dict(hub)
        raise KeyError(hub_id)

    def all_records(self, hub_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.admin(f"/api/v1/hubs/{hub_id}/records?after={after}&limit=10000")["records"]
            if not page:
                return out
            out.extend(page)
            after = page[-1]["seq"]


def write_hub_config(
    directory: Path,
    hub_id: str,
    *,
    cloud_url: str | None,
    token: str | None,
    port: int | None = None,
    extra: str = "",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    secrets = directory / "secrets.toml"
    secrets.write_text(f'cloud_token = "{token}"\n' if token else "")
    secrets.chmod(0o600)
    sync = f'cloud_url = "{cloud_url}"\n' if cloud_url else ""
    config = directory / "hub.toml"
    config.write_text(
        f"""[hub]
id = "{hub_id}"
data_dir = "{directory / "data"}"
secrets_file = "{secrets}"
hardware = "simulated"
log_level = "debug"

[sync]
{sync}backoff_base_s = 0.2
backoff_max_s = 2.0
timeout_s = 3.0
idle_poll_s = 0.5

[management]
port = {port or free_port()}

[supervisor]
restart_initial_s = 0.2
restart_max_s = 2.0
{extra}
""",
        encoding="utf-8",
    )
    return config


class HubProcess:
    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "hub.log"
        text = config.read_text()
        self.port = int(text.split("[management]")[1].split("port = ")[1].split()[0])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> HubProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [HUB, "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
            )
        if wait:
            wait_until(lambda: _answers(self.url + "/healthz"), 20, what="the hub to answer /healthz")
        return self

    @property
    def local_token(self) -> str:
        """The token `hub doctor` reads: /api/health needs it (or a technician's login)."""
        return (self.data_dir / "local-api.token").read_text().strip()

    @property
    def data_dir(self) -> Path:
        text = self.config.read_text()
        return Path(text.split("data_dir = ")[1].split("\n")[0].strip().strip('"'))

    def health(self) -> dict[str, Any]:
        status, body = http_get(self.url + "/api/health", token=self.local_token)
        assert status == 200, (status, body)
        return dict(json.loads(body))

    def terminate(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def outbox_stats(self) -> dict[str, Any]:
        out = subprocess.run(
            [HUB, "--config", str(self.config), "outbox", "stats", "--json"], check=True, capture_output=True, text=True
        )
        return dict(json.loads(out.stdout))

    def read_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
