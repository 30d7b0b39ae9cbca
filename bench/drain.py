"""Drain: 100,000 records buffered while offline, then delivered to the reference cloud by `hub run`.

The outbox is filled through the Store (mixed classes, ~200 B payloads) with no hub running, as after a long
outage. Then the reference cloud and a `hub run` (simulated hardware) are started on loopback, and the clock
runs from the hub's start until the cloud acknowledges the last buffered record. Afterwards the cloud's own
database is checked: exactly the buffered records, each once, none missing.

    .venv/bin/python -m bench.drain            # 100,000 records, batch_size 500 and 1000
    .venv/bin/python -m bench.drain --quick    # 10,000 records, batch_size 500
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import (
    BIN,
    Cloud,
    cpu_seconds,
    free_port,
    http_get,
    kib,
    log_problems,
    log_tail,
    proc_status,
    start_hub,
    stop,
    write_config,
)
from hub.store import RecordClass, Store, StoreLimits, Transaction

TARGET_S = 30.0
CHUNK = 1000
# class mix of the buffered records: mostly telemetry, as on a real box
MIX = ((RecordClass.TELEMETRY, 70), (RecordClass.OPERATIONS, 20), (RecordClass.SECURITY, 7), (RecordClass.SAFETY, 3))
NOTES = {
    RecordClass.TELEMETRY: "Nhiệt độ hội trường thôn Đông, đo trước giờ phát thanh buổi sáng",
    RecordClass.OPERATIONS: "Loa cụm 3 đã phát bản tin 17:00 về lịch tiêm chủng",
    RecordClass.SECURITY: "Camera cổng nhà văn hoá thấy người lạ lúc nửa đêm",
    RecordClass.SAFETY: "Cảnh báo nước sông Lèn dâng cao, mời bà con sơ tán",
}


def class_of(i: int) -> RecordClass:
    slot = i % 100
    for cls, share in MIX:
        if slot < share:
            return cls
        slot -= share
    raise AssertionError(i)


def make_payload(i: int, cls: RecordClass) -> dict[str, Any]:
    return {
        "i": i,
        "source": "bench/drain",
        "sensor": "hoi-truong/cum-3",
        "value": round(20.0 + (i % 157) / 10.0, 1),
        "ok": i % 13 != 0,
        "vi_tri": "Nhà văn hoá thôn Đông",
        "ghi_chu": NOTES[cls],
    }


def fill(data_dir: Path, records: int) -> tuple[float, dict[str, int], int]:
    """Buffer `records` records through the Store, CHUNK per write; (seconds, count per class, mean payload B)."""
    per_class = {c.label: 0 for c in RecordClass}
    payload_bytes = 0

    def chunk(tx: Transaction, *, start: int, end: int) -> None:
        for i in range(start, end):
            cls = class_of(i)
            tx.append(cls, f"bench.{cls.label}", make_payload(i, cls))

    for i in range(records):
        cls = class_of(i)
        per_class[cls.label] += 1
        if i < 1000:
            payload_bytes += len(json.dumps(make_payload(i, cls), ensure_ascii=False, separators=(",", ":")).encode())
    t0 = time.perf_counter()
    store = Store.open(data_dir, StoreLimits(max_records=max(500_000, records * 2)))
    try:
        for start in range(0, records, CHUNK):
            store.write_blocking(functools.partial(chunk, start=start, end=min(start + CHUNK, records)))
        assert store.counters()["pending_count"] == records
    finally:
        store.close()
    return time.perf_counter() - t0, per_class, payload_bytes // min(records, 1000)


@dataclass
class DrainResult:
    batch_size: int
    records: int
    first_ack_s: float
    all_acked_s: float
    hub_cpu_s: float
    cloud_cpu_s: float
    hub_peak_mib: float
    batches: int
    duplicates: int
    outbox_after: dict[str, Any]
    verified: str
    ok: bool
    log_problems: tuple[int, list[str]]

    @property
    def rate(self) -> float:
        return self.records / self.all_acked_s

    @property
    def drain_rate(self) -> float:
        return self.records / max(self.all_acked_s - self.first_ack_s, 1e-9)


def outbox_stats(config: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [BIN / "hub", "--config", config, "outbox", "stats", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def verify_cloud(db: Path, hub_id: str, records: int, per_class: dict[str, int]) -> tuple[bool, str]:
    """Look in the cloud's own database: the buffered records, each exactly once, none missing."""
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
        n, distinct_i, lo, hi, seq_lo, seq_hi = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(payload, '$.i')), min(json_extract(payload, '$.i')), "
            "max(json_extract(payload, '$.i')), min(seq), max(seq) "
            "FROM records WHERE hub_id = ? AND kind LIKE 'bench.%'",
            (hub_id,),
        ).fetchone()
        classes = dict(
            conn.execute(
                "SELECT cls, count(*) FROM records WHERE hub_id = ? AND kind LIKE 'bench.%' GROUP BY cls", (hub_id,)
            ).fetchall()
        )
        others = conn.execute(
            "SELECT kind, count(*) FROM records WHERE hub_id = ? AND kind NOT LIKE 'bench.%' GROUP BY kind", (hub_id,)
        ).fetchall()
    problems = []
    if n != records:
        problems.append(f"{n} buffered records in the cloud, expected {records}")
    if distinct_i != n:
        problems.append(f"{n - distinct_i} duplicated payloads")
    if (lo, hi) != (0, records - 1):
        problems.append(f"payload index range {lo}..{hi}, expected 0..{records - 1}")
    if (seq_lo, seq_hi) != (1, records):
        problems.append(f"seq range {seq_lo}..{seq_hi}, expected 1..{records}")
    expected = {k: v for k, v in per_class.items() if v}
    if classes != expected:
        problems.append(f"per class {classes}, expected {expected}")
    extra = ", ".join(f"{k} {v}" for k, v in others) or "none"
    if problems:
        return False, "; ".join(problems)
    return True, f"{n:,} records, seq 1..{records}, each once; plus the hub's own: {extra}"


def run_once(workdir: Path, seed: Path, records: int, per_class: dict[str, int], batch_size: int) -> DrainResult:
    workdir.mkdir(parents=True)
    data_dir = workdir / "data"
    shutil.copytree(seed, data_dir)
    cloud = Cloud(workdir)
    cloud.start()
    config = write_config(workdir, data_dir=data_dir, cloud=cloud, management_port=free_port(), batch_size=batch_size)
    hub_log = workdir / "hub.log"
    hub = None
    log = None
    try:
        assert cloud.proc is not None
        cloud_cpu0 = cpu_seconds(cloud.proc.pid)
        t0 = time.monotonic()
        hub, log = start_hub(config, hub_log)
        first_ack: float | None = None
        deadline = t0 + 300
        while True:
            if hub.poll() is not None:
                raise RuntimeError(f"hub exited with {hub.returncode}\n{log_tail(hub_log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not drained within 300 s\n{log_tail(hub_log)}")
            status, body = http_get(f"{cloud.url}/api/v1/hubs", cloud.admin)
            if status == 200:
                ack = next(h for h in json.loads(body)["hubs"] if h["hub_id"] == cloud.hub_id)["ack_seq"]
                now = time.monotonic()
                if ack > 0 and first_ack is None:
                    first_ack = now - t0
                if ack >= records:
                    all_acked = now - t0
                    break
            time.sleep(0.05)
        hub_cpu = cpu_seconds(hub.pid)
        hub_peak = kib(proc_status(hub.pid)["VmHWM"]) / 1024
        cloud_cpu = cpu_seconds(cloud.proc.pid) - cloud_cpu0
        # the hub forgets a record once it holds the cloud's ack: wait for its outbox to show everything delivered
        stats = outbox_stats(config)
        until = time.monotonic() + 15
        while stats["delivered"] < records and time.monotonic() < until:
            time.sleep(0.2)
            stats = outbox_stats(config)
        summary = cloud.hub()
    finally:
        stop(hub)
        if log is not None:
            log.close()
        cloud.stop()
    ok, verified = verify_cloud(cloud.db, cloud.hub_id, records, per_class)
    if stats["delivered"] < records:
        ok = False
        verified += f"; hub outbox shows only {stats['delivered']} delivered"
    return DrainResult(
        batch_size=batch_size,
        records=records,
        first_ack_s=first_ack or all_acked,
        all_acked_s=all_acked,
        hub_cpu_s=hub_cpu,
        cloud_cpu_s=cloud_cpu,
        hub_peak_mib=hub_peak,
        batches=int(summary["batches"]),
        duplicates=int(summary["duplicates"]),
        outbox_after=stats,
        verified=verified,
        ok=ok,
        log_problems=log_problems(hub_log),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 records, one batch size")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default: 500 1000 (quick: 500)")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dir (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    records: int = args.records or (10_000 if args.quick else 100_000)
    batch_sizes: list[int] = args.batch_sizes or ([500] if args.quick else [500, 1000])

    parent = Path(tempfile.mkdtemp(prefix="bench-drain-", dir=args.dir))
    results: list[DrainResult] = []
    try:
        seed = parent / "seed-data"
        fill_s, per_class, payload_bytes = fill(seed, records)
        seed_bytes = sum(p.stat().st_size for p in seed.iterdir())
        print(
            f"Buffered {records:,} records through the Store in {fill_s:.2f} s ({records / fill_s:,.0f}/s, "
            f"{CHUNK} per write); payload ~{payload_bytes} B; store file {seed_bytes / 2**20:.1f} MiB"
        )
        print("  per class: " + ", ".join(f"{k} {v:,}" for k, v in per_class.items()))
        t0 = time.perf_counter()
        Store.open(seed).close()  # what every `hub run` does first: integrity check (quick_check) of the file
        print(f"  Store.open of the filled store (includes PRAGMA quick_check, page cache warm): "
              f"{time.perf_counter() - t0:.2f} s")  # fmt: skip
        for batch_size in batch_sizes:
            print(f"  draining with batch_size {batch_size} ...", file=sys.stderr, flush=True)
            results.append(run_once(parent / f"run-{batch_size}", seed, records, per_class, batch_size))
    finally:
        if args.keep:
            print(f"kept {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)

    print()
    print(f"Drain of {records:,} buffered records, hub start -> cloud acknowledges the last one")
    head = (
        f"{'batch':>6}{'1st ack s':>11}{'all acked s':>13}{'records/s':>11}{'drain rec/s':>13}{'batches':>9}"
        f"{'dups':>6}{'hub CPU s':>11}{'cloud CPU s':>13}{'hub peak MiB':>14}{'target <30s':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        met = "MET" if r.all_acked_s < TARGET_S else "MISSED"
        print(
            f"{r.batch_size:>6}{r.first_ack_s:>11.2f}{r.all_acked_s:>13.2f}{r.rate:>11,.0f}{r.drain_rate:>13,.0f}"
            f"{r.batches:>9}{r.duplicates:>6}{r.hub_cpu_s:>11.1f}{r.cloud_cpu_s:>13.1f}{r.hub_peak_mib:>14.1f}{met:>13}"
        )
    print()
    print("  1st ack s: hub start until the cloud acknowledged its first batch (start-up, store check included)")
    print("  drain rec/s: records / (all acked - 1st ack); CPU s: user+sys of each process over the run;")
    print("  hub peak MiB: the hub's VmHWM when the last record was acknowledged")
    for r in results:
        after = r.outbox_after
        print(
            f"  batch {r.batch_size}: {'OK' if r.ok else 'FAILED'}: cloud holds {r.verified}; "
            f"hub outbox after: pending {after['pending']}, delivered {after['delivered']:,}, "
            f"acked seq {after['acked_seq']:,}"
        )
    for r in results:
        count, first = r.log_problems
        if count:
            print(f"  batch {r.batch_size}: the hub's log holds {count} error/exception lines; the first:")
            for line in first:
                print(f"    {line}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
