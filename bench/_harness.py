"""Shared by the process benchmarks: the reference cloud and a `hub run` on loopback, as scripts/demo.py does."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

BIN = Path(sys.executable).parent
HUB_ID = "thon-bench-1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answered."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def http_json(url: str, token: str | None = None, timeout: float = 5.0) -> Any:
    status, body = http_get(url, token, timeout)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status} {body[:200]!r}")
    return json.loads(body)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kib(value: str) -> int:
    """'53212 kB' -> 53212."""
    return int(value.split()[0])


class Cloud:
    """The reference cloud (`hub-cloud serve`) on a free loopback port, with one registered hub."""

    def __init__(self, directory: Path, hub_id: str = HUB_ID) -> None:
        self.directory = directory
        self.db = directory / "cloud.sqlite3"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = secrets.token_urlsafe(18)
        self.hub_id = hub_id
        self.hub_token = subprocess.run(
            [BIN / "hub-cloud", "--db", self.db, "add-hub", hub_id], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.log_path = directory / "cloud.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            # "--admin-token=…" in one argument: a token_urlsafe value may start with "-", which argparse would
            # take for an option when passed as a separate argument.
            [BIN / "hub-cloud", "--db", self.db, "serve", "--port", str(self.port), f"--admin-token={self.admin}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/healthz", timeout, self.proc, self.log_path)

    def hub(self) -> dict[str, Any]:
        hubs = http_json(f"{self.url}/api/v1/hubs", self.admin)["hubs"]
        return next(h for h in hubs if h["hub_id"] == self.hub_id)

    def stop(self) -> None:
        stop(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None


def write_config(
    directory: Path,
    *,
    data_dir: Path,
    cloud: Cloud,
    management_port: int,
    batch_size: int = 500,
    log_level: str = "info",
) -> Path:
    """hub.toml + secrets.toml (mode 0600) as scripts/demo.py writes them; simulated hardware."""
    secrets_file = directory / "secrets.toml"
    secrets_file.write_text(f'cloud_token = "{cloud.hub_token}"\n')
    secrets_file.chmod(0o600)
    config = directory / "hub.toml"
    config.write_text(
        f"""# Written by bench/: simulated hardware, the reference cloud on loopback.
[hub]
id = "{cloud.hub_id}"
data_dir = "{data_dir}"
secrets_file = "{secrets_file}"
hardware = "simulated"
log_level = "{log_level}"

[village]
name = "Thôn Đông (bench)"
code = "BENCH-01"
latitude = 19.6925
longitude = 105.8306

[sync]
cloud_url = "{cloud.url}"
batch_size = {batch_size}
backoff_max_s = 5.0

[management]
host = "127.0.0.1"
port = {management_port}
""",
        encoding="utf-8",
    )
    return config


def start_hub(
    config: Path, log_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [BIN / "hub", "--config", config, "run"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=config.parent
    )
    return proc, log


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}\n{tail}")
        if http_get(url, timeout=1.0)[0] == 200:
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered 200 at {url} within {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> float | None:
    """SIGTERM, wait; seconds it took to exit (None if it had to be killed or was not running)."""
    if proc is None or proc.poll() is not None:
        return None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
    return time.monotonic() - t0


def log_problems(path: Path, limit: int = 3) -> tuple[int, list[str]]:
    """How many ERROR lines and uncaught exceptions a log holds, and the first few of them."""
    hits = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            head = line.split(": ", 1)[0]
            last_of_traceback = ": " in line and " " not in head and head.endswith(("Error", "Exception"))
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Exception in thread") or last_of_traceback:
                hits.append(line.strip()[:200])
    return len(hits), hits[:limit]


def log_tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""
