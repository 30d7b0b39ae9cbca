"""Durable outbox ingest: one commit per record (the naive way) against the Store's group commit.

Both sides have the same durability: SQLite in WAL mode with synchronous=FULL, so a record counts only once
the commit holding it has been fsynced. The baseline is one connection doing BEGIN; INSERT; COMMIT per record
into an identical outbox table. The Store is fed by many concurrent producers (asyncio coroutines awaiting
`Store.append`, or threads calling `Store.append_blocking`), so one fsync serves many records.

Records per second depend on this machine's disk, whose fsync is cheap; the count of fsync/fdatasync calls
per record (counted with strace when it is installed) is the figure that carries over to an SD card.

    .venv/bin/python -m bench.outbox_ingest            # full run, about a minute
    .venv/bin/python -m bench.outbox_ingest --quick    # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import functools
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub import clock
from hub.store import RecordClass, Store, StoreLimits, Transaction
from hub.store.migrations import migrate

ROOT = Path(__file__).resolve().parent.parent

TARGET_RATIO = 20.0
TARGET_RATE = 5_000.0
WINDOWS = (0.0, 0.001, 0.004)
IN_FLIGHT = 2000
SD_FSYNC_MS = (2.0, 20.0)  # a plausible range for one fsync on a Pi's SD card (FIELD-NOTES: 10-100x this disk)

NOTE = "Nhiệt độ hội trường thôn Đông trước giờ phát thanh sáng; loa số 3 hơi rè"


def make_payload(i: int) -> dict[str, Any]:
    """About 200 bytes of JSON once encoded, with Vietnamese text, different for every record."""
    return {
        "i": i,
        "sensor": "hoi-truong/nhiet-do",
        "value": round(27.0 + (i % 97) / 10.0, 1),
        "unit": "°C",
        "ghi_chu": NOTE,
        "ok": True,
    }


def encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass
class Result:
    mode: str
    window_s: float | None
    producers: int
    records: int
    elapsed_s: float
    commits: int
    fsyncs_per_record: float | None = None
    fsync_usecs: float | None = None

    @property
    def rate(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_json(self) -> str:
        return json.dumps({"records": self.records, "elapsed_s": self.elapsed_s, "commits": self.commits})


# ---- the three ways of writing ---------------------------------------------------------------------


def run_baseline(directory: Path, seconds: float | None, records: int | None) -> Result:
    """One sqlite3 connection, WAL + synchronous=FULL, one transaction per record."""
    directory.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(directory / "baseline.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    migrate(conn)  # the very same outbox table (and index) the Store uses
    sql = (
        "INSERT INTO outbox (seq, cls, kind, created_at, boot_id, uptime, size, payload) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    n = 0
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")
    limit = records if records is not None else sys.maxsize
    while n < limit and time.perf_counter() < deadline:
        n += 1
        payload = encode(make_payload(n))
        conn.execute("BEGIN")
        conn.execute(
            sql,
            (n, int(RecordClass.TELEMETRY), "bench.sample", clock.wall(), clock.boot_id(), clock.uptime(),
             len(payload.encode()) + 96, payload),
        )  # fmt: skip
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return Result("baseline", None, 1, n, elapsed, n)


def _quotas(records: int, producers: int) -> list[int]:
    return [records // producers + (1 if k < records % producers else 0) for k in range(producers)]


def run_async(directory: Path, window: float, producers: int, seconds: float | None, records: int | None) -> Result:
    """`producers` coroutines, each awaiting store.append in a loop."""
    store = Store.open(directory, StoreLimits(group_commit_s=window))
    commits_before = store.commits
    quotas = _quotas(records, producers) if records is not None else [sys.maxsize] * producers

    async def producer(k: int, deadline: float) -> int:
        n = 0
        while n < quotas[k] and time.perf_counter() < deadline:
            await store.append("telemetry", "bench.sample", make_payload(k * 10_000_000 + n))
            n += 1
        return n

    async def main() -> tuple[int, float]:
        start = time.perf_counter()
        deadline = start + seconds if seconds is not None else float("inf")
        counts = await asyncio.gather(*(producer(k, deadline) for k in range(producers)))
        return sum(counts), time.perf_counter() - start

    try:
        total, elapsed = asyncio.run(main())
        commits = store.commits - commits_before
    finally:
        store.close()
    return Result("async", window, producers, total, elapsed, commits)


def run_threads(directory: Path, window: float, producers: int, seconds: float | None, records: int | None) -> Result:
    """`producers` threads, each calling store.append_blocking in a loop."""
    store = Store.open(directory, StoreLimits(group_commit_s=window))
    commits_before = store.commits
    quotas = _quotas(records, producers) if records is not None else [sys.maxsize] * producers
    counts = [0] * producers
    go = threading.Event()
    deadline = [float("inf")]

    def producer(k: int) -> None:
        go.wait()
        n = 0
        while n < quotas[k] and time.perf_counter() < deadline[0]:
            store.append_blocking("telemetry", "bench.sample", make_payload(k * 10_000_000 + n))
            n += 1
        counts[k] = n

    threads = [threading.Thread(target=producer, args=(k,), name=f"producer-{k}") for k in range(producers)]
    try:
        for t in threads:
            t.start()
        start = time.perf_counter()
        if seconds is not None:
            deadline[0] = start + seconds
        go.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        commits = store.commits - commits_before
    finally:
        store.close()
    return Result("threads", window, producers, sum(counts), elapsed, commits)


def _append_one(tx: Transaction, *, payload: dict[str, Any]) -> int:
    return tx.append("telemetry", "bench.sample", payload)


def run_pipelined(directory: Path, window: float, seconds: float | None, records: int | None) -> Result:
    """One thread keeping up to IN_FLIGHT writes queued: what the writer thread alone can commit (a ceiling)."""
    store = Store.open(directory, StoreLimits(group_commit_s=window))
    commits_before = store.commits
    in_flight: collections.deque[concurrent.futures.Future[int]] = collections.deque()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else float("inf")
    limit = records if records is not None else sys.maxsize
    try:
        while n < limit and time.perf_counter() < deadline:
            payload = make_payload(n)
            in_flight.append(store.submit(functools.partial(_append_one, payload=payload)))
            n += 1
            if len(in_flight) >= IN_FLIGHT:
                in_flight.popleft().result()
        for future in in_flight:
            future.result()
        elapsed = time.perf_counter() - start
        commits = store.commits - commits_before
    finally:
        store.close()
    return Result("pipelined", window, 1, n, elapsed, commits)


def run_mode(
    mode: str, directory: Path, window: float, producers: int, seconds: float | None, records: int | None
) -> Result:
    if mode == "baseline":
        return run_baseline(directory, seconds, records)
    if mode == "async":
        return run_async(directory, window, producers, seconds, records)
    if mode == "threads":
        return run_threads(directory, window, producers, seconds, records)
    if mode == "pipelined":
        return run_pipelined(directory, window, seconds, records)
    raise ValueError(mode)


# ---- counting fsyncs with strace -----------------------------------------------------------------


def parse_strace_summary(text: str) -> tuple[int, float]:
    """Total fsync+fdatasync calls, and the mean microseconds per call, from `strace -c` output."""
    calls = 0
    usecs = 0.0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in ("fsync", "fdatasync") and parts[0][0].isdigit():
            n = int(parts[3])
            calls += n
            usecs += float(parts[1]) * 1e6
    return calls, (usecs / calls if calls else 0.0)


class FsyncCounter:
    def __init__(self, parent: Path) -> None:
        self.strace = shutil.which("strace")
        self.parent = parent
        self.runs = 0
        self.seccomp = True
        self._overhead: dict[str, int] = {}

    def available(self) -> bool:
        return self.strace is not None

    def _traced(self, mode: str, window: float, producers: int, records: int) -> tuple[int, float, Result]:
        assert self.strace is not None
        self.runs += 1
        directory = self.parent / f"strace-{self.runs}-{mode}"
        out = self.parent / f"strace-{self.runs}.txt"
        worker = [
            sys.executable, "-m", "bench.outbox_ingest", "--worker", mode, "--dir", str(directory),
            "--window", str(window), "--producers", str(producers), "--records", str(records),
        ]  # fmt: skip
        # --seccomp-bpf stops the traced process only at fsync/fdatasync, so the other syscalls run at full speed.
        base = [self.strace, "-f", "-c", "-o", str(out), "-e", "trace=fsync,fdatasync"]
        cmd = [*base, "--seccomp-bpf", *worker] if self.seccomp else [*base, *worker]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 and self.seccomp:
            self.seccomp = False
            return self._traced(mode, window, producers, records)
        if proc.returncode != 0:
            raise RuntimeError(f"traced worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
        calls, usecs = parse_strace_summary(out.read_text())
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        shutil.rmtree(directory, ignore_errors=True)
        return (
            calls,
            usecs,
            Result(mode, window, producers, result["records"], result["elapsed_s"], result["commits"]),
        )

    def per_record(self, mode: str, window: float, producers: int, records: int) -> tuple[float, float]:
        """(fsyncs per record, microseconds per fsync); opening and closing (a run of 0 records) subtracted."""
        kind = "baseline" if mode == "baseline" else "store"
        if kind not in self._overhead:
            self._overhead[kind] = self._traced(mode, window, producers, 0)[0]
        calls, usecs, result = self._traced(mode, window, producers, records)
        return (calls - self._overhead[kind]) / max(result.records, 1), usecs


# ---- the report ------------------------------------------------------------------------------------


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def print_table(results: list[Result], baseline: Result, payload_bytes: int, directory: Path) -> None:
    print()
    print("Durable outbox ingest (WAL, synchronous=FULL on both sides)")
    print(f"  payload {payload_bytes} B of JSON with Vietnamese text; temp dir {directory}")
    print()
    head = (
        f"{'mode':<34}{'window':>8}{'records':>10}{'seconds':>9}{'records/s':>11}{'x base':>8}"
        f"{'rec/commit':>12}{'fsync/rec':>11}{'us/fsync':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        if r.mode == "baseline":
            label = "baseline: 1 txn per record"
        elif r.mode == "async":
            label = f"Store: {r.producers} asyncio producers"
        elif r.mode == "threads":
            label = f"Store: {r.producers} producer threads"
        else:
            label = f"Store: 1 thread, {IN_FLIGHT} in flight"
        window = "-" if r.window_s is None else f"{r.window_s * 1000:g} ms"
        per_commit = r.records / r.commits if r.commits else float("nan")
        fsyncs = "n/a" if r.fsyncs_per_record is None else f"{r.fsyncs_per_record:.4f}"
        usecs = "n/a" if r.fsync_usecs is None else f"{r.fsync_usecs:.0f}"
        print(
            f"{label:<34}{window:>8}{_fmt_int(r.records):>10}{r.elapsed_s:>9.2f}{_fmt_int(r.rate):>11}"
            f"{r.rate / baseline.rate:>7.1f}x{per_commit:>12.1f}{fsyncs:>11}{usecs:>10}"
        )
    if any(r.mode == "pipelined" for r in results):
        print(f"  (the last row is no producer pattern: one thread keeps {IN_FLIGHT} writes queued without waiting,")
        print("   showing what the writer thread alone commits; targets are judged on the rows above it)")
    group = [r for r in results if r.mode in ("async", "threads")]
    best = max(group, key=lambda r: r.rate)
    ratio = best.rate / baseline.rate
    print()
    print("Targets (best Store variant: " + f"{best.mode}, window {(best.window_s or 0) * 1000:g} ms)")
    print(f"  >= {TARGET_RATIO:.0f}x baseline records/s : {ratio:.1f}x  {'MET' if ratio >= TARGET_RATIO else 'MISSED'}")
    ok = best.rate >= TARGET_RATE
    print(f"  >= {_fmt_int(TARGET_RATE)} durable records/s : {_fmt_int(best.rate)}  {'MET' if ok else 'MISSED'}")
    if baseline.fsyncs_per_record and all(r.fsyncs_per_record for r in group):
        fewest = min(group, key=lambda r: r.fsyncs_per_record or 1.0)
        assert fewest.fsyncs_per_record is not None
        cut = baseline.fsyncs_per_record / fewest.fsyncs_per_record
        print(
            f"  fsyncs per record: baseline {baseline.fsyncs_per_record:.3f}, Store as low as "
            f"{fewest.fsyncs_per_record:.4f} ({cut:.0f}x fewer)"
        )
        default = next((r for r in group if r.mode == "async" and r.window_s == 0.0), None)
        if default is not None and default.fsyncs_per_record:
            print("  fsync-bound ceiling on an SD card (records/s = 1 / (fsyncs/record x fsync time)):")
            for ms in SD_FSYNC_MS:
                b = 1000.0 / (ms * baseline.fsyncs_per_record)
                g = 1000.0 / (ms * default.fsyncs_per_record)
                print(f"    at {ms:g} ms per fsync: baseline {_fmt_int(b)}/s, Store (64 async, 0 ms) {_fmt_int(g)}/s")
    else:
        print("  fsyncs per record: not counted (strace not installed)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--seconds", type=float, default=None, help="length of each timed run (default 4, quick 0.5)")
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument("--no-strace", action="store_true", help="skip counting fsyncs")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dirs (default: system temp)")
    # internal: one mode, a fixed number of records, figures as JSON on stdout (what runs under strace)
    parser.add_argument("--worker", choices=("baseline", "async", "threads", "pipelined"), help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.worker:
        result = run_mode(args.worker, args.dir, args.window, args.producers, None, args.records)
        print(result.as_json(), flush=True)
        return 0

    seconds = args.seconds if args.seconds is not None else (0.5 if args.quick else 4.0)
    traced_baseline = 300 if args.quick else 3_000
    traced_store = 3_000 if args.quick else 20_000
    parent = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.dir))
    try:
        payload_bytes = len(encode(make_payload(12345)).encode())
        plan: list[tuple[str, float]] = [("baseline", 0.0)]
        plan += [("async", w) for w in WINDOWS] + [("threads", w) for w in WINDOWS] + [("pipelined", 0.0)]
        results: list[Result] = []
        for i, (mode, window) in enumerate(plan):
            print(f"  timing {mode} (window {window * 1000:g} ms) for {seconds:g} s ...", file=sys.stderr, flush=True)
            results.append(run_mode(mode, parent / f"run-{i}-{mode}", window, args.producers, seconds, None))
        counter = FsyncCounter(parent)
        if counter.available() and not args.no_strace:
            for r in results:
                n = traced_baseline if r.mode == "baseline" else traced_store
                print(f"  counting fsyncs: {r.mode} (window {(r.window_s or 0) * 1000:g} ms), {n} records under strace",
                      file=sys.stderr, flush=True)  # fmt: skip
                r.fsyncs_per_record, r.fsync_usecs = counter.per_record(r.mode, r.window_s or 0.0, r.producers, n)
        print_table(results, results[0], payload_bytes, parent)
        rates = [r.rate for r in results if r.mode in ("async", "threads")]
        print(f"  (Store variants: median {_fmt_int(statistics.median(rates))} records/s; {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
