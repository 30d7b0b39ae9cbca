"""The outbox: sequence numbers, durability bookkeeping, caps and eviction, bad input, corrupt files."""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from pathlib import Path

import pytest

from hub.store import PayloadError, RecordClass, Store, StoreLimits, Transaction
from hub.store.database import DB_NAME, quick_check
from hub.store.migrations import SCHEMA_VERSION, SchemaTooNewError


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path)
    yield s
    s.close()


def rows(path: Path) -> list[tuple[int, int, str, str]]:
    conn = sqlite3.connect(path / DB_NAME)
    try:
        return conn.execute("SELECT seq, cls, kind, payload FROM outbox ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_sequences_increase_and_survive_reopen(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    first = [s.append_blocking("telemetry", "t", {"i": i}) for i in range(5)]
    s.close()
    s = Store.open(tmp_path)
    more = [s.append_blocking("safety", "s", {"i": i}) for i in range(3)]
    s.close()
    assert first == [1, 2, 3, 4, 5]
    assert more == [6, 7, 8]
    assert [r[0] for r in rows(tmp_path)] == list(range(1, 9))


def test_vietnamese_payload_round_trips(store: Store, tmp_path: Path) -> None:
    text = "Thông báo khẩn: mưa lũ, bà con thôn Đông sơ tán lên nhà văn hóa"
    seq = store.append_blocking(RecordClass.SAFETY, "broadcast.emergency", {"text": text})
    record = store.pending(10)[0]
    assert record.seq == seq
    assert json.loads(record.payload_json) == {"text": text}
    assert text in rows(tmp_path)[0][3]  # stored as UTF-8 text, not \u escapes


async def test_concurrent_producers_share_commits(store: Store) -> None:
    async def producer(n: int) -> list[int]:
        return [await store.append("telemetry", "t", {"p": n, "i": i}) for i in range(50)]

    results = await asyncio.gather(*(producer(n) for n in range(40)))
    seqs = [s for r in results for s in r]
    assert sorted(seqs) == list(range(1, 2001))
    assert store.commits < 2000  # group commit: fewer transactions than records
    for r in results:  # each producer sees its own records in order
        assert r == sorted(r)


def test_bad_payload_is_refused_and_nothing_stored_is_lost(store: Store, tmp_path: Path) -> None:
    store.append_blocking("operations", "ok", {"a": 1})
    with pytest.raises(PayloadError, match="not JSON-serialisable"):
        store.append_blocking("operations", "bad", {"a": object()})
    with pytest.raises(PayloadError, match="must be a JSON object"):
        store.append_blocking("operations", "bad", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="not JSON-serialisable"):
        store.append_blocking("operations", "bad", {"x": float("nan")})
    with pytest.raises(ValueError, match="unknown record class 'urgent'"):
        store.append_blocking("urgent", "bad", {})
    store.append_blocking("operations", "ok", {"a": 2})
    assert [r[2] for r in rows(tmp_path)] == ["ok", "ok"]
    assert [r[0] for r in rows(tmp_path)] == [1, 2]


def test_failing_write_rolls_back_alone(store: Store, tmp_path: Path) -> None:
    def broken(tx):
        tx.append("operations", "half-done", {"n": 1})
        raise RuntimeError("boom")

    futures = [
        store.submit(lambda tx: tx.append("operations", "before", {})),
        store.submit(broken),
        store.submit(lambda tx: tx.append("operations", "after", {})),
    ]
    assert futures[0].result() == 1
    with pytest.raises(RuntimeError, match="boom"):
        futures[1].result()
    assert futures[2].result() == 2  # the rolled-back write did not consume a sequence number
    assert [r[2] for r in rows(tmp_path)] == ["before", "after"]
    assert store.counters()["pending_count"] == 2


def test_cap_evicts_lowest_class_oldest_first_and_counts(tmp_path: Path) -> None:
    s = Store.open(tmp_path, StoreLimits(max_records=10))
    try:
        for i in range(4):
            s.append_blocking("telemetry", f"t{i}", {})
        for i in range(3):
            s.append_blocking("operations", f"o{i}", {})
        for i in range(3):
            s.append_blocking("safety", f"s{i}", {})
        assert s.stats().pending == 10
        s.append_blocking("security", "x0", {})  # one over: the oldest telemetry goes
        assert [r[2] for r in rows(tmp_path)][:3] == ["t1", "t2", "t3"]
        for i in range(5):
            s.append_blocking("safety", f"s{3 + i}", {})
        kinds = [r[2] for r in rows(tmp_path)]
        # telemetry all gone, then the oldest operations
        assert not [k for k in kinds if k.startswith("t")]
        assert [k for k in kinds if k.startswith("o")] == ["o2"]
        assert len(kinds) == 10
        stats = s.stats()
        assert stats.dropped == {"safety": 0, "security": 0, "operations": 2, "telemetry": 4}
        assert stats.pending_by_class == {"safety": 8, "security": 1, "operations": 1, "telemetry": 0}
        # a telemetry record arriving at a full outbox of higher classes is itself the one dropped
        s.append_blocking("telemetry", "late", {})
        assert "late" not in [r[2] for r in rows(tmp_path)]
        assert s.stats().dropped["telemetry"] == 5
    finally:
        s.close()


def test_byte_cap(tmp_path: Path) -> None:
    s = Store.open(tmp_path, StoreLimits(max_records=1000, max_bytes=10_000))
    try:
        for i in range(100):
            s.append_blocking("telemetry", "t", {"blob": "x" * 400, "i": i})
        stats = s.stats()
        assert stats.pending_bytes <= 10_000
        assert stats.pending < 100
        assert stats.dropped["telemetry"] == 100 - stats.pending
        # the newest survive
        assert json.loads(s.pending(1000)[-1].payload_json)["i"] == 99
    finally:
        s.close()


def test_counters_survive_reopen(tmp_path: Path) -> None:
    s = Store.open(tmp_path, StoreLimits(max_records=100))
    for i in range(150):
        s.append_blocking("telemetry", "t", {"i": i})
    s.mark_delivered_blocking(120)
    before = s.stats()
    s.close()
    s = Store.open(tmp_path, StoreLimits(max_records=100))
    try:
        after = s.stats()
        assert after == before
        assert after.pending == 30
        assert after.delivered == 70  # 50 were evicted before delivery
        assert after.dropped["telemetry"] == 50
    finally:
        s.close()


def test_mark_delivered_removes_only_up_to_ack(store: Store) -> None:
    for i in range(10):
        store.append_blocking("operations", "o", {"i": i})
    assert store.mark_delivered_blocking(6) == 6
    assert [r.seq for r in store.pending(100)] == [7, 8, 9, 10]
    assert store.mark_delivered_blocking(6) == 0  # an ack seen twice changes nothing
    stats = store.stats()
    assert (stats.acked_seq, stats.delivered, stats.pending) == (6, 6, 4)


def test_pending_respects_byte_budget(store: Store) -> None:
    for i in range(20):
        store.append_blocking("telemetry", "t", {"blob": "y" * 1000, "i": i})
    batch = store.pending(100, max_bytes=5000)
    assert 1 <= len(batch) < 20
    assert [r.seq for r in batch] == list(range(1, len(batch) + 1))
    assert len(store.pending(100, max_bytes=10)) == 1  # never an empty batch while records wait


async def test_raise_sequence_renumbers_pending_above_floor(store: Store) -> None:
    for i in range(3):
        await store.append("operations", "o", {"i": i})
    moved = await store.raise_sequence(500)
    assert moved == 3
    records = store.pending(100)
    assert [r.seq for r in records] == [501, 502, 503, 504]
    assert [json.loads(r.payload_json).get("i") for r in records[:3]] == [0, 1, 2]
    assert records[3].kind == "store.sequence_raised"
    assert await store.append("operations", "next", {}) == 505
    assert await store.raise_sequence(100) == 0  # never lowers


def test_corrupt_database_is_moved_aside_and_reported(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    for i in range(20):
        s.append_blocking("operations", "o", {"i": i})
    s.close()
    db = tmp_path / DB_NAME
    raw = bytearray(db.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # wreck the header's tail and the schema page
    db.write_bytes(bytes(raw))
    original = bytes(raw)

    s = Store.open(tmp_path)
    try:
        report = s.reset_report
        assert report is not None
        assert report.moved_to.exists()
        assert report.moved_to.read_bytes() == original  # moved, never deleted or altered
        records = s.pending(10)
        assert len(records) == 1
        event = records[0]
        assert event.cls == RecordClass.SAFETY
        assert event.kind == "store.reset"
        assert json.loads(event.payload_json)["moved_to"] == str(report.moved_to)
        assert quick_check(sqlite3.connect(db)) == []
    finally:
        s.close()


def test_garbage_file_is_moved_aside_and_sequence_continues_when_recoverable(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    for i in range(50):
        s.append_blocking("operations", "o", {"i": i})
    s.close()
    # Corrupt a data page of the outbox but keep the counters readable: the new store keeps counting.
    conn = sqlite3.connect(tmp_path / DB_NAME)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with (tmp_path / DB_NAME).open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x0d" + b"\xee" * 64)
    s = Store.open(tmp_path)
    try:
        assert s.reset_report is not None
        assert s.reset_report.recovered_last_seq == 50
        assert s.pending(10)[0].seq == 51
    finally:
        s.close()


def test_schema_newer_than_software_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    # A newer release whose migration older readers cannot live with says so (hub/store/migrations.py).
    conn.execute("UPDATE state SET value = ? WHERE key = 'store.oldest_reader'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNewError, match="newer than this software"):
        Store.open(tmp_path)


def test_state_values(store: Store) -> None:
    store.write_blocking(lambda tx: tx.set_state("lighting.override", {"circuit": "đèn đường", "on": True}))
    assert store.get_state("lighting.override") == {"circuit": "đèn đường", "on": True}
    assert store.get_state("missing", 7) == 7


def append_one(tx: Transaction, i: int) -> int:
    return tx.append("telemetry", "t", {"i": i})


def test_closed_store_refuses_writes_after_committing_queued_ones(tmp_path: Path) -> None:
    s = Store.open(tmp_path)
    futures = [s.submit(functools.partial(append_one, i=i)) for i in range(500)]
    s.close()
    assert [f.result(timeout=5) for f in futures] == list(range(1, 501))
    with pytest.raises(RuntimeError, match="closed"):
        s.append_blocking("telemetry", "t", {})
    assert len(rows(tmp_path)) == 500


async def test_cancelled_writes_do_not_kill_the_writer(store: Store) -> None:
    for _ in range(20):
        task = asyncio.create_task(store.append("telemetry", "t", {}))
        await asyncio.sleep(0)
        task.cancel()
    cancelled_write = asyncio.create_task(store.write(lambda tx: tx.append("operations", "w", {})))
    await asyncio.sleep(0)
    cancelled_write.cancel()
    blocking = store.submit(lambda tx: tx.append("operations", "b", {}))
    blocking.cancel()
    await asyncio.sleep(0.05)
    assert store.writer_alive()
    seq = await asyncio.wait_for(store.append("safety", "after", {}), timeout=5)
    assert seq == store.last_seq()
    assert store.pending(1000)[-1].kind == "after"
