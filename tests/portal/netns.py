"""Network namespaces for the portal's end-to-end test (and bench/portal_admission.py): phones, the hub, the
internet, joined by veth pairs, as root. Nothing here touches the machine's own network namespace.

    phone  eth0 10.77.0.23 ─┐
    phone2 eth0 10.77.0.24 ─┤ bridge wl0 10.77.0.1/24 (the hub's "Wi-Fi")
                            hub
                            up0 198.51.100.1/24 + 192.168.77.1/24 (the management network)
                             │
    net    eth0 198.51.100.2/24 (the internet) + 192.168.77.2/24 (a host on the management network)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HUB_WIFI = "10.77.0.1"
PHONE = "10.77.0.23"
PHONE2 = "10.77.0.24"
HUB_UPLINK = "198.51.100.1"
INTERNET = "198.51.100.2"
HUB_MGMT = "192.168.77.1"
MGMT_HOST = "192.168.77.2"
MGMT_NET = "192.168.77.0/24"
HERE = Path(__file__).resolve().parent
HUB = str(Path(sys.executable).parent / "hub")
MGMT_PORT = 8080
PORTAL = f"http://{HUB_WIFI}/"


def _run(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


def unavailable() -> str | None:
    """Why namespaces cannot be used here, or None if they can (tried, not guessed)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    for tool in ("ip", "nft", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 nftables curl)"
    name = f"vhprobe{os.getpid()}"
    try:
        _run("ip", "netns", "add", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create a network namespace: {getattr(exc, 'stderr', '') or exc}".strip()
    try:
        result = _run("ip", "netns", "exec", name, "nft", "list", "ruleset", check=False)
        if result.returncode != 0:
            return f"nft does not work in a namespace: {result.stderr.strip()}"
        probe = _run("ip", "-n", name, "link", "add", "br0", "type", "bridge", check=False)
        if probe.returncode != 0:
            return f"cannot create a bridge in a namespace: {probe.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", name, check=False)
    return None


class Topology:
    def __init__(self, tag: str, extra_phones: int = 0) -> None:
        """`extra_phones`: more phone namespaces (10.77.0.30 onwards), listed with the first two in `phones`."""
        suffix = f"{tag}{os.getpid() % 100000}"
        self.phone, self.phone2, self.hub, self.net = (f"vh-{n}-{suffix}" for n in ("ph", "ph2", "hub", "net"))
        self.phones = [(self.phone, PHONE), (self.phone2, PHONE2)] + [
            (f"vh-p{i}-{suffix}", f"10.77.0.{30 + i}") for i in range(extra_phones)
        ]
        self.procs: list[subprocess.Popen[Any]] = []

    @property
    def namespaces(self) -> list[str]:
        return [ns for ns, _ in self.phones] + [self.hub, self.net]

    # ---- building and tearing down --------------------------------------------------------------------------------

    def __enter__(self) -> Topology:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        for ns in self.namespaces:
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        h = self.hub
        _run("ip", "-n", h, "link", "add", "wl0", "type", "bridge")
        _run("ip", "-n", h, "addr", "add", f"{HUB_WIFI}/24", "dev", "wl0")
        _run("ip", "-n", h, "link", "set", "wl0", "up")
        for i, (ns, address) in enumerate(self.phones):
            port = f"p{i + 1}"
            _run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", h)
            _run("ip", "-n", h, "link", "set", port, "master", "wl0")
            _run("ip", "-n", h, "link", "set", port, "up")
            _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "route", "add", "default", "via", HUB_WIFI)
        _run("ip", "link", "add", "up0", "netns", h, "type", "veth", "peer", "name", "eth0", "netns", self.net)
        for address in (f"{HUB_UPLINK}/24", f"{HUB_MGMT}/24"):
            _run("ip", "-n", h, "addr", "add", address, "dev", "up0")
        _run("ip", "-n", h, "link", "set", "up0", "up")
        for address in (f"{INTERNET}/24", f"{MGMT_HOST}/24"):
            _run("ip", "-n", self.net, "addr", "add", address, "dev", "eth0")
        _run("ip", "-n", self.net, "link", "set", "eth0", "up")
        _run("ip", "-n", self.net, "route", "add", "default", "via", HUB_UPLINK)
        _run("ip", "netns", "exec", h, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.start_internet()

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        for ns in self.namespaces:
            _run("ip", "netns", "del", ns, check=False)

    # ---- running things inside ------------------------------------------------------------------------------------

    def popen(self, ns: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, ns: str, argv: list[str], timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )

    def start_internet(self) -> None:
        proc = self.popen(
            self.net, [sys.executable, str(HERE / "internet_host.py")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert b"ready" in line, line

    def curl(self, ns: str, url: str, *args: str, timeout: float = 5.0) -> dict[str, Any]:
        """A real HTTP client in a namespace: status (0 = nothing answered), body, redirect target, timings."""
        fmt = "\n--vh--%{http_code} %{redirect_url} %{time_total} %{size_download} %{time_starttransfer} %{exitcode}"
        result = self.run(
            ns,
            [
                "curl",
                "-sS",
                "--max-time",
                f"{timeout:g}",
                "--connect-timeout",
                f"{min(timeout, 2.0):g}",
                "-w",
                fmt,
                *args,
                url,
            ],
            timeout=timeout + 10,
        )
        body, _, tail = result.stdout.rpartition("\n--vh--")
        parts = tail.split(" ")
        if len(parts) < 6:
            return {"status": 0, "body": body, "location": "", "time": 0.0, "size": 0, "error": result.stderr}
        code, location, total, size, start, _exit = parts[:6]
        return {
            "status": int(code),
            "body": body,
            "location": location,
            "time": float(total),
            "size": int(float(size)),
            "start": float(start),
            "error": result.stderr.strip(),
        }

    def wait_http(self, ns: str, url: str, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the process exited with {proc.returncode} before {url} answered")
            if self.curl(ns, url, timeout=1.0)["status"]:
                return
            time.sleep(0.1)
        raise AssertionError(f"nothing answered {url} from {ns} within {timeout:g} s")

    def nft(self, *args: str) -> str:
        return self.run(self.hub, ["nft", *args]).stdout


class HubInNamespace:
    """`hub run` inside the hub namespace, on simulated hardware but with the real nft backend."""

    def __init__(self, topo: Topology, directory: Path, **portal: Any) -> None:
        self.topo = topo
        self.directory = directory
        self.config = directory / "hub.toml"
        self.log = directory / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None
        options = {
            "interface": "wl0",
            "address": f"{HUB_WIFI}/24",
            "port": 80,
            "firewall": "nft",
            "uplink_interface": "up0",
            "blocked_networks": [MGMT_NET],
            "session_s": 600,
            "poll_s": 0.5,
            "download_kbps": 0,
            "upload_kbps": 0,
            **portal,
        }
        lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "secrets.toml").write_text("")
        (directory / "secrets.toml").chmod(0o600)
        self.config.write_text(
            f"""[hub]
id = "thon-netns"
data_dir = "{directory / "data"}"
secrets_file = "{directory / "secrets.toml"}"
hardware = "simulated"
log_level = "debug"

[village]
name = "Thôn Thử"

[management]
# Every address of the hub, the Wi-Fi one included: only the firewall keeps phones away from it.
host = "0.0.0.0"
port = {MGMT_PORT}

[portal]
{lines}
""",
            encoding="utf-8",
        )

    def start(self) -> HubInNamespace:
        with self.log.open("ab") as log:
            self.proc = self.topo.popen(
                self.topo.hub, [HUB, "--config", str(self.config), "run"], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self.topo.wait_http(self.topo.hub, f"http://127.0.0.1:{MGMT_PORT}/healthz", 30, self.proc)
            self.topo.wait_http(self.topo.phone, PORTAL, 10, self.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log.read_text(errors='replace')[-4000:]}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(15)
