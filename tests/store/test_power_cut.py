"""Power cut: kill -9 a writer at random moments; every acknowledged record must be there, exactly once.

kill -9 stops the process at an arbitrary instruction, with transactions half-written; it does not drop the
kernel's page cache, so the fsync half of durability is covered by synchronous=FULL and counted in
bench/outbox_ingest.py rather than proven here.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.store import Store
from hub.store.database import DB_NAME, quick_check

KILLS = int(os.environ.get("POWER_CUT_KILLS", "30"))
WRITER = Path(__file__).with_name("power_cut_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(data_dir: Path, run: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(run), "8"],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    deadline = None
    started = time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.01)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
            if deadline is None and b"ready" in buffer:
                deadline = time.monotonic() + rng.uniform(0.0, 0.5)
        if deadline is not None and time.monotonic() >= deadline:
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() - started < 30, "writer never became ready"
    proc.wait()
    # Whatever the child printed before dying counts as acknowledged; a torn last line does not.
    rest = os.read(fd, 1 << 20)
    while rest:
        buffer += rest
        rest = os.read(fd, 1 << 20)
    proc.stdout.close()
    acked = []
    for line in buffer.split(b"\n")[:-1]:
        parts = line.split()
        if len(parts) == 4:
            acked.append((int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])))
    return acked


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_acknowledged_record(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("POWER_CUT_SEED", str(time.time_ns()))))
    all_acked: dict[int, tuple[int, int, int]] = {}
    total_acked = 0
    for run in range(KILLS):
        acked = run_and_kill(tmp_path, run, rng)
        total_acked += len(acked)
        for seq, r, p, i in acked:
            assert seq not in all_acked, f"sequence {seq} acknowledged twice (runs {all_acked[seq][0]} and {r})"
            all_acked[seq] = (r, p, i)

        conn = sqlite3.connect(tmp_path / DB_NAME)
        try:
            assert quick_check(conn) == [], f"integrity check failed after kill {run}"
            stored = {
                seq: json.loads(payload)
                for seq, payload in conn.execute("SELECT seq, payload FROM outbox WHERE kind = 'power_cut.sample'")
            }
            counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            count, size = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM outbox").fetchone()
            by_class = dict(conn.execute("SELECT cls, count(*) FROM outbox GROUP BY cls").fetchall())
        finally:
            conn.close()
        missing = [seq for seq in all_acked if seq not in stored]
        assert not missing, f"after kill {run}: {len(missing)} acknowledged records lost, e.g. {missing[:5]}"
        for seq, (r, p, i) in all_acked.items():
            payload = stored[seq]
            assert (payload["run"], payload["p"], payload["i"]) == (r, p, i), f"seq {seq} holds another record"
        # bookkeeping is committed with the records, so it matches them exactly after any kill
        assert counters["pending_count"] == count
        assert counters["pending_bytes"] == size
        for number, label in enumerate(("telemetry", "operations", "security", "safety")):
            assert counters[f"pending.{label}"] == by_class.get(number, 0)
        assert counters["last_seq"] >= max(stored, default=0)

    assert total_acked > KILLS * 10, f"too few records written to mean anything ({total_acked})"
    # and the store opens normally afterwards, carrying on from the highest sequence
    store = Store.open(tmp_path)
    try:
        assert store.reset_report is None
        assert store.append_blocking("operations", "after", {}) > max(all_acked)
    finally:
        store.close()
