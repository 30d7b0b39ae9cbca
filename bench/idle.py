"""Idle `hub run`: start-to-ready time and resident memory, on simulated hardware with the cloud connected.

Ready is measured two ways from Popen: until `/healthz` answers 200, and until READY=1 arrives on a
NOTIFY_SOCKET (an AF_UNIX datagram socket in a temp dir, as systemd provides for Type=notify). The hub is
started several times on the same data dir (the first start creates the store); the median is reported.
The last hub is then left idle with the reference cloud connected, and its VmRSS (and peak, VmHWM) read.

    .venv/bin/python -m bench.idle            # 5 starts, 10 s idle
    .venv/bin/python -m bench.idle --quick    # 2 starts, 2 s idle
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench._harness import (
    CLK_TCK,
    Cloud,
    cpu_seconds,
    free_port,
    http_get,
    http_json,
    kib,
    log_problems,
    log_tail,
    proc_status,
    start_hub,
    stop,
    write_config,
)

TARGET_READY_S = 2.0
TARGET_RSS_MB = 80.0  # 10^6 bytes; the stricter reading of "80 MB"
POLL_S = 0.005


@dataclass
class Start:
    healthz_s: float
    ready_s: float
    stop_s: float | None = None


def start_and_wait(
    config: Path, workdir: Path, k: int, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], IO[bytes], Start, str]:
    """Start `hub run` with a NOTIFY_SOCKET; return once /healthz answered 200 and READY=1 arrived."""
    sock_path = workdir / f"notify-{k}.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    url = f"http://127.0.0.1:{management_port(config)}/healthz"
    healthz_s: float | None = None
    ready_s: float | None = None
    status_line = ""
    t0 = time.monotonic()
    proc, log = start_hub(config, workdir / "hub.log", env=env)
    try:
        while True:
            if healthz_s is not None and ready_s is not None:
                break
            now = time.monotonic()
            if now - t0 > timeout:
                raise RuntimeError(f"hub not ready within {timeout:.0f}s\n{log_tail(workdir / 'hub.log')}")
            if proc.poll() is not None:
                raise RuntimeError(f"hub exited with {proc.returncode}\n{log_tail(workdir / 'hub.log')}")
            readable, _, _ = select.select([notify], [], [], POLL_S)
            if readable:
                message = notify.recv(4096).decode("utf-8", "replace")
                fields = dict(line.partition("=")[::2] for line in message.splitlines())
                if fields.get("READY") == "1" and ready_s is None:
                    ready_s = time.monotonic() - t0
                    status_line = fields.get("STATUS", "")
            if healthz_s is None:
                code, _ = http_get(url, timeout=1.0)
                if code == 200:
                    healthz_s = time.monotonic() - t0
    finally:
        notify.close()
        sock_path.unlink(missing_ok=True)
    return proc, log, Start(healthz_s, ready_s), status_line


def management_port(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.startswith("port = "):
            return int(line.split("=")[1])
    raise ValueError(config)


def link(health: dict[str, Any]) -> str:
    return str(health.get("services", {}).get("sync", {}).get("details", {}).get("link", "?"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 starts, 2 s idle")
    parser.add_argument("--starts", type=int, default=None, help="default 5 (quick 2)")
    parser.add_argument("--idle", type=float, default=None, help="seconds idle before reading memory (default 10)")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dir (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    starts: int = args.starts or (2 if args.quick else 5)
    idle_s: float = args.idle if args.idle is not None else (2.0 if args.quick else 10.0)

    parent = Path(tempfile.mkdtemp(prefix="bench-idle-", dir=args.dir))
    cloud = Cloud(parent)
    runs: list[Start] = []
    memory: dict[str, str] = {}
    idle_cpu = 0.0
    final_link = "?"
    status_line = ""
    problems: tuple[int, list[str]] = (0, [])
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    try:
        cloud.start()
        port = free_port()
        config = write_config(parent, data_dir=parent / "data", cloud=cloud, management_port=port)
        for k in range(starts):
            print(f"  start {k + 1}/{starts} ...", file=sys.stderr, flush=True)
            proc, log, start, status_line = start_and_wait(config, parent, k)
            runs.append(start)
            if k < starts - 1:
                start.stop_s = stop(proc)
                log.close()
                proc = None
                time.sleep(0.3)
        assert proc is not None
        # the last one idles with the cloud connected
        health_url = f"http://127.0.0.1:{port}/api/health"
        # /api/health needs a login or the local token that only the service user (here: us) can read
        token = (parent / "data" / "local-api.token").read_text(encoding="utf-8").strip()
        until = time.monotonic() + 20
        while link(http_json(health_url, token)) != "connected" and time.monotonic() < until:
            time.sleep(0.1)
        print(f"  idling {idle_s:g} s with the cloud connected ...", file=sys.stderr, flush=True)
        cpu0 = cpu_seconds(proc.pid)
        time.sleep(idle_s)
        idle_cpu = cpu_seconds(proc.pid) - cpu0
        final_link = link(http_json(health_url, token))
        memory = proc_status(proc.pid)
        runs[-1].stop_s = stop(proc)
        proc = None
        problems = log_problems(parent / "hub.log")
    finally:
        stop(proc)
        if log is not None:
            log.close()
        cloud.stop()
        if args.keep:
            print(f"kept {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)

    print()
    print("Idle `hub run` (simulated hardware, reference cloud on loopback); times from Popen")
    head = f"{'start':>6}{'/healthz 200 s':>16}{'READY=1 s':>11}{'SIGTERM->exit s':>17}"
    print(head)
    print("-" * len(head))
    for k, r in enumerate(runs, 1):
        stopped = "killed" if r.stop_s is None else f"{r.stop_s:.2f}"
        note = "  (first start: creates the store)" if k == 1 else ""
        print(f"{k:>6}{r.healthz_s:>16.3f}{r.ready_s:>11.3f}{stopped:>17}{note}")
    med_h = statistics.median(r.healthz_s for r in runs)
    med_r = statistics.median(r.ready_s for r in runs)
    print(f"{'median':>6}{med_h:>16.3f}{med_r:>11.3f}")
    rss = kib(memory["VmRSS"]) / 1024
    hwm = kib(memory["VmHWM"]) / 1024
    rss_mb = kib(memory["VmRSS"]) * 1024 / 1e6
    hwm_mb = kib(memory["VmHWM"]) * 1024 / 1e6
    print()
    print(f"After {idle_s:g} s idle (cloud link: {final_link}; READY status: {status_line!r}):")
    anon, files = kib(memory["RssAnon"]) / 1024, kib(memory["RssFile"]) / 1024
    print(f"  VmRSS {rss:.1f} MiB = {rss_mb:.1f} MB  (RssAnon {anon:.1f} MiB, RssFile {files:.1f} MiB)")
    print(f"  VmHWM {hwm:.1f} MiB = {hwm_mb:.1f} MB  (peak)")
    tick_ms = 1000 / CLK_TCK
    print(f"  threads {memory['Threads']}; CPU while idle {idle_cpu:.2f} s over {idle_s:g} s (ticks of {tick_ms:g} ms)")
    print()
    ready = max(med_h, med_r)
    print("Targets")
    print(f"  ready <= {TARGET_READY_S:g} s : median {ready:.2f} s  {'MET' if ready <= TARGET_READY_S else 'MISSED'}")
    print(f"  RSS <= {TARGET_RSS_MB:g} MB  : {rss_mb:.1f} MB  {'MET' if rss_mb <= TARGET_RSS_MB else 'MISSED'}")
    print(f"  (peak VmHWM {hwm_mb:.1f} MB: {'within' if hwm_mb <= TARGET_RSS_MB else 'above'} the RSS target)")
    count, first = problems
    if count:
        print()
        print(f"The hub's log over all starts holds {count} error/exception lines (--keep keeps it); the first:")
        for line in first:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
