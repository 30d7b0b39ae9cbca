"""Command latency: a command queued at the reference cloud → applied on the hub (`hub run`, simulated hardware),
over loopback, with the hub's long poll waiting.

Each command (`broadcast.stop_all`: served by a service every hub runs, quick to apply) is queued with the admin
API while the hub's poll is held open; its latency is the hub's `finished_at` (in its store) minus the cloud's
`created_at` (one machine, one clock). Also shown: until the result is back at the cloud (the fast path), and a
burst of commands queued at once (applied in order, one by one).

    .venv/bin/python -m bench.command_latency            # 200 single commands, a burst of 200
    .venv/bin/python -m bench.command_latency --quick    # 30 and 30
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._harness import Cloud, free_port, log_problems, start_hub, stop, wait_http, write_config

FINAL = ("applied", "rejected", "expired", "failed")


def admin(cloud: Cloud, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(cloud.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {cloud.admin}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=40) as response:
        return json.loads(response.read())


def queue(cloud: Cloud) -> dict[str, Any]:
    command: dict[str, Any] = admin(
        cloud, "POST", f"/api/v1/hubs/{cloud.hub_id}/commands", {"kind": "broadcast.stop_all", "ttl_s": 600}
    )
    return command


def wait_final(cloud: Cloud, command_id: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer: dict[str, Any] = admin(cloud, "GET", f"/api/v1/hubs/{cloud.hub_id}/commands/{command_id}?wait=20")
        if answer["status"] in FINAL:
            return answer
    raise RuntimeError(f"command {command_id} not final after {timeout:.0f}s")


def hub_finished(db: Path) -> dict[int, float]:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        return {int(i): float(f) for i, f in conn.execute("SELECT id, finished_at FROM commands WHERE finished_at")}
    finally:
        conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def row(name: str, values_ms: list[float]) -> str:
    return (
        f"{name:<44} {len(values_ms):>5} {statistics.median(values_ms):>8.1f} {percentile(values_ms, 99):>8.1f} "
        f"{max(values_ms):>8.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    singles = 30 if args.quick else 200
    burst = 30 if args.quick else 200
    rng = random.Random(8)
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as tmp:
        directory = Path(tmp)
        cloud = Cloud(directory)
        cloud.start()
        data = directory / "data"
        port = free_port()
        config = write_config(directory, data_dir=data, cloud=cloud, management_port=port)
        hub, log = start_hub(config, directory / "hub.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 30, hub, directory / "hub.log")
            wait_final(cloud, queue(cloud)["id"])  # warm-up: the inbox is connected and its poll is held open
            created: dict[int, float] = {}
            at_cloud: list[float] = []
            for _ in range(singles):
                time.sleep(rng.uniform(0.05, 0.3))  # land at a random point of the held poll
                command = queue(cloud)
                created[command["id"]] = command["created_at"]
                final = wait_final(cloud, command["id"])
                if final["status"] != "applied":
                    raise RuntimeError(f"command {command['id']}: {final}")
                at_cloud.append((final["finished_at"] - command["created_at"]) * 1000)
            burst_created = {}
            started = time.time()
            for _ in range(burst):
                command = queue(cloud)
                burst_created[command["id"]] = command["created_at"]
            last = max(burst_created)
            wait_final(cloud, last)
            while last not in hub_finished(data / "hub.sqlite3"):
                time.sleep(0.05)
            finished = hub_finished(data / "hub.sqlite3")
            burst_took = max(finished[i] for i in burst_created) - started
        finally:
            stop(hub)
            log.close()
            cloud.stop()
        applied = [(finished[i] - created[i]) * 1000 for i in created]
        burst_latency = [(finished[i] - burst_created[i]) * 1000 for i in burst_created]
        in_order = [finished[i] for i in sorted(burst_created)] == sorted(finished[i] for i in burst_created)
        errors, first = log_problems(directory / "hub.log")
        print(f"{'command latency on loopback (ms)':<44} {'n':>5} {'median':>8} {'p99':>8} {'max':>8}")
        print(row("queued at the cloud -> applied on the hub", applied))
        print(row("queued -> result back at the cloud", at_cloud))
        print(row(f"burst of {burst}: queued -> applied", burst_latency))
        print(f"burst of {burst}: {burst / burst_took:.0f} commands/s, applied in id order: {in_order}")
        print(f"hub log: {errors} error lines" + (f" (first: {first[0]})" if first else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
