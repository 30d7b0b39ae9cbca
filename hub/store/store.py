"""The store: one writer thread that commits everyone's writes durably, in groups.

Producers (any thread or coroutine) hand a write to the writer and are answered only after the commit that
holds it is on disk (synchronous=FULL). The writer takes every write that queued up while the previous
commit was being fsynced, plus whatever arrives within the group-commit window, and commits them in one
transaction: one fsync serves many records, which is what makes durable writes fast on an SD card.
Each write runs inside its own SAVEPOINT, so one failing write is reported to its producer alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hub import clock
from hub.config.settings import StoreSection
from hub.store.database import OpenedDatabase, ResetReport, connect, open_database
from hub.store.records import OutboxRecord, OutboxStats, RecordClass

log = logging.getLogger(__name__)

T = TypeVar("T")

# Bytes counted for a record beyond its payload (row header, index entry), so the size cap tracks disk use.
ROW_OVERHEAD = 96
MAX_OPS_PER_COMMIT = 5000


class StoreClosedError(RuntimeError):
    pass


class PayloadError(ValueError):
    pass


@dataclass(frozen=True)
class StoreLimits:
    max_records: int = 500_000
    max_bytes: int = 512 * 1024 * 1024
    group_commit_s: float = 0.0

    @classmethod
    def from_settings(cls, section: StoreSection) -> StoreLimits:
        return cls(
            max_records=section.outbox_max_records,
            max_bytes=section.outbox_max_mb * 1024 * 1024,
            group_commit_s=section.group_commit_ms / 1000.0,
        )


class Transaction:
    """What a write sees: the connection (inside a transaction) and the outbox to append to."""

    def __init__(self, store: Store, conn: sqlite3.Connection) -> None:
        self._store = store
        self.conn = conn

    def append(self, cls: RecordClass | str, kind: str, payload: dict[str, Any]) -> int:
        return self._store._insert_record(self.conn, RecordClass.parse(cls), kind, encode_payload(payload))

    def set_state(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(value, ensure_ascii=False), clock.wall()),
        )


class _Op:
    """One write handed to the writer: a prepared outbox record (the fast path) or a general function.

    The answer goes to a concurrent future (blocking callers) or to an asyncio future of `loop`, which the
    writer resolves with one wake-up of that loop per commit rather than one per record.
    """

    __slots__ = ("fn", "future", "loop", "record")

    def __init__(
        self,
        future: concurrent.futures.Future[Any] | asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop | None,
        fn: Callable[[Transaction], Any] | None = None,
        record: _Record | None = None,
    ) -> None:
        self.fn = fn
        self.record = record
        self.future = future
        self.loop = loop

    def claim(self) -> bool:
        """False if the producer gave up (cancelled) before the writer got to it: then it is skipped."""
        if self.loop is None:
            return self.future.set_running_or_notify_cancel()  # type: ignore[union-attr]
        return not self.future.cancelled()


# (class, kind, payload JSON, its size in bytes, created_at, uptime), prepared in the producer's thread
_Record = tuple[RecordClass, str, str, int, float, float]


_STOP = object()
_INSERT = (
    "INSERT INTO outbox (seq, cls, kind, created_at, boot_id, uptime, size, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_PENDING = {c: f"pending.{c.label}" for c in RecordClass}


def _deliver(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """In the producer's event loop: hand each waiting coroutine its answer (skipping any that gave up)."""
    for future, ok, value in items:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def encode_payload(payload: dict[str, Any]) -> str:
    if not isinstance(payload, dict):
        raise PayloadError(f"payload must be a JSON object (dict), got {type(payload).__name__}")
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON-serialisable: {exc}") from None


def outbox_stats(conn: sqlite3.Connection, limits: StoreLimits) -> OutboxStats:
    """Outbox figures from any connection (the hub's own, or a read-only one for `hub outbox stats`)."""
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    # Cheap on any backlog: the counters, and one primary-key lookup for the oldest record.
    oldest_row = conn.execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
    oldest = oldest_row[0] if oldest_row else None
    return OutboxStats(
        pending=counters["pending_count"],
        pending_bytes=counters["pending_bytes"],
        pending_by_class={c.label: counters[f"pending.{c.label}"] for c in reversed(RecordClass)},
        oldest_pending_at=oldest,
        last_seq=counters["last_seq"],
        acked_seq=counters["acked_seq"],
        delivered=counters["delivered"],
        dropped={c.label: counters[f"dropped.{c.label}"] for c in reversed(RecordClass)},
        max_records=limits.max_records,
        max_bytes=limits.max_bytes,
    )


class Store:
    def __init__(self, opened: OpenedDatabase, limits: StoreLimits) -> None:
        self.path = opened.path
        self.reset_report: ResetReport | None = opened.reset
        self.migrations_applied = opened.migrations_applied
        self.limits = limits
        self._conn = opened.conn
        self._read_conn = connect(self.path)
        self._read_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self.last_beat = time.monotonic()
        self.commits = 0
        self.committed_ops = 0
        self.last_error: str | None = None
        self._listeners: list[Callable[[], None]] = []
        self._counters = self._load_counters()
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        self._thread.start()
        if opened.reset is not None:
            self._record_reset(opened.reset)

    @classmethod
    def open(cls, data_dir: Path, limits: StoreLimits | None = None) -> Store:
        return cls(open_database(data_dir), limits or StoreLimits())

    # ---- writing ---------------------------------------------------------------------------------

    def submit(self, fn: Callable[[Transaction], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._enqueue(_Op(future, None, fn=fn))
        return future

    def _enqueue(self, op: _Op) -> None:
        if self._closed:
            raise StoreClosedError("store is closed")
        self._queue.put(op)

    async def _await(self, fn: Callable[[Transaction], Any] | None, record: _Record | None) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(_Op(future, loop, fn=fn, record=record))
        return await future

    def write_blocking(self, fn: Callable[[Transaction], T]) -> T:
        return self.submit(fn).result()

    async def write(self, fn: Callable[[Transaction], T]) -> T:
        """Run `fn` inside a transaction on the writer; returns its result once the commit is durable."""
        result: T = await self._await(fn, None)
        return result

    def append_blocking(self, cls: RecordClass | str, kind: str, payload: dict[str, Any]) -> int:
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._enqueue(_Op(future, None, record=self._prepare(cls, kind, payload)))
        return future.result()

    async def append(self, cls: RecordClass | str, kind: str, payload: dict[str, Any]) -> int:
        """Write one outbox record; returns its sequence number once it is durably stored."""
        seq: int = await self._await(None, self._prepare(cls, kind, payload))
        return seq

    @staticmethod
    def _prepare(cls: RecordClass | str, kind: str, payload: dict[str, Any]) -> _Record:
        # Validate and encode in the producer's thread: bad input fails there, with its own traceback,
        # and the writer thread (the one serialised resource) does as little as possible per record.
        record_class = RecordClass.parse(cls)
        if not kind or not isinstance(kind, str):
            raise PayloadError("record kind must be a non-empty string")
        encoded = encode_payload(payload)
        size = len(encoded.encode("utf-8")) + ROW_OVERHEAD
        return (record_class, kind, encoded, size, clock.wall(), clock.uptime())

    def add_commit_listener(self, callback: Callable[[], None]) -> None:
        """Called from the writer thread after each commit that added records (e.g. to wake the uploader)."""
        self._listeners.append(callback)

    # ---- the writer thread -----------------------------------------------------------------------

    def _writer(self) -> None:
        window = self.limits.group_commit_s
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.last_beat = time.monotonic()
                continue
            self.last_beat = time.monotonic()
            batch: list[_Op] = []
            stop = first is _STOP
            if not stop:
                batch.append(first)  # type: ignore[arg-type]
                stop = self._gather(batch, window)
            if batch:
                try:
                    self._commit(batch)
                except BaseException:  # the writer must outlive any one bad batch
                    log.exception("store writer: unexpected error")
            if stop:
                return

    def _gather(self, batch: list[_Op], window: float) -> bool:
        """Add what is already queued, then what arrives within the window; True if asked to stop."""
        deadline = time.monotonic() + window
        while len(batch) < MAX_OPS_PER_COMMIT:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return False
            if item is _STOP:
                return True
            batch.append(item)  # type: ignore[arg-type]
        return False

    def _commit(self, batch: list[_Op]) -> None:
        conn = self._conn
        live = [op for op in batch if op.claim()]
        if not live:
            return
        results: list[tuple[_Op, bool, Any]] = []
        before = dict(self._counters)
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = Transaction(self, conn)
            i = 0
            while i < len(live):
                if live[i].record is not None:
                    i = self._insert_run(conn, live, i, results)
                else:
                    self._run_fn(conn, tx, live[i], results)
                    i += 1
            self._enforce_caps(conn)
            self._save_counters(conn, before)
            conn.execute("COMMIT")
        except Exception as exc:
            # The whole group failed (disk full, I/O error): nobody's write is acknowledged.
            log.exception("store commit failed")
            self.last_error = f"commit failed: {exc}"
            self._counters = before
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._resolve([(op, False, exc) for op in live])
            return
        self.commits += 1
        self.committed_ops += len(live)
        self._resolve(results)
        if self._counters["last_seq"] != before["last_seq"]:
            for callback in self._listeners:
                try:
                    callback()
                except Exception:
                    log.exception("commit listener failed")

    def _insert_run(self, conn: sqlite3.Connection, ops: list[_Op], start: int, results: list[Any]) -> int:
        """Insert a run of consecutive appends with one statement; returns the index after the run."""
        c = self._counters
        boot = clock.boot_id()
        rows = []
        end = start
        while end < len(ops) and (record := ops[end].record) is not None:
            cls, kind, payload, size, created_at, uptime = record
            seq = c["last_seq"] + 1
            c["last_seq"] = seq
            c["pending_count"] += 1
            c["pending_bytes"] += size
            c[_PENDING[cls]] += 1
            rows.append((seq, int(cls), kind, created_at, boot, uptime, size, payload))
            results.append((ops[end], True, seq))
            end += 1
        conn.executemany(_INSERT, rows)
        return end

    def _run_fn(self, conn: sqlite3.Connection, tx: Transaction, op: _Op, results: list[Any]) -> None:
        assert op.fn is not None
        conn.execute("SAVEPOINT op")
        snapshot = dict(self._counters)
        try:
            value = op.fn(tx)
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            self._counters = snapshot
            results.append((op, False, exc))
            return
        conn.execute("RELEASE op")
        results.append((op, True, value))

    @staticmethod
    def _resolve(results: list[tuple[_Op, bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
        for op, ok, value in results:
            if op.loop is None:
                future = op.future
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            else:
                by_loop.setdefault(op.loop, []).append((op.future, ok, value))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_deliver, items)

    # ---- outbox internals (writer thread only) --------------------------------------------------

    def _insert_record(self, conn: sqlite3.Connection, cls: RecordClass, kind: str, payload_json: str) -> int:
        """An append from inside a general write (the same transaction as the write's own changes)."""
        seq = self._counters["last_seq"] + 1
        size = len(payload_json.encode("utf-8")) + ROW_OVERHEAD
        conn.execute(_INSERT, (seq, int(cls), kind, clock.wall(), clock.boot_id(), clock.uptime(), size, payload_json))
        self._counters["last_seq"] = seq
        self._counters["pending_count"] += 1
        self._counters["pending_bytes"] += size
        self._counters[_PENDING[cls]] += 1
        return seq

    def _enforce_caps(self, conn: sqlite3.Connection) -> None:
        c = self._counters
        while c["pending_count"] > self.limits.max_records or c["pending_bytes"] > self.limits.max_bytes:
            excess = max(c["pending_count"] - self.limits.max_records, 1)
            rows = conn.execute(
                "SELECT seq, cls, size FROM outbox ORDER BY cls ASC, seq ASC LIMIT ?", (min(excess, 1000),)
            ).fetchall()
            if not rows:
                return
            for seq, cls, size in rows:
                if c["pending_count"] <= self.limits.max_records and c["pending_bytes"] <= self.limits.max_bytes:
                    break
                conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                label = RecordClass(cls).label
                c["pending_count"] -= 1
                c["pending_bytes"] -= size
                c[f"pending.{label}"] -= 1
                c[f"dropped.{label}"] += 1

    def _load_counters(self) -> dict[str, int]:
        return {name: int(value) for name, value in self._conn.execute("SELECT name, value FROM counters")}

    def _save_counters(self, conn: sqlite3.Connection, before: dict[str, int]) -> None:
        changed = [(v, k) for k, v in self._counters.items() if before.get(k) != v]
        if changed:
            conn.executemany("UPDATE counters SET value = ? WHERE name = ?", changed)

    def _deliver_op(self, ack_seq: int) -> Callable[[Transaction], int]:
        def op(tx: Transaction) -> int:
            c = self._counters
            count = 0
            for cls, n, size in tx.conn.execute(
                "SELECT cls, count(*), sum(size) FROM outbox WHERE seq <= ? GROUP BY cls", (ack_seq,)
            ).fetchall():
                count += n
                c["pending_count"] -= n
                c["pending_bytes"] -= size
                c[f"pending.{RecordClass(cls).label}"] -= n
            tx.conn.execute("DELETE FROM outbox WHERE seq <= ?", (ack_seq,))
            c["delivered"] += count
            c["acked_seq"] = max(c["acked_seq"], ack_seq)
            return int(count)

        return op

    def _raise_sequence_op(self, floor: int) -> Callable[[Transaction], int]:
        def op(tx: Transaction) -> int:
            c = self._counters
            previous = c["last_seq"]
            if previous >= floor:
                return 0
            low = tx.conn.execute("SELECT min(seq) FROM outbox").fetchone()[0]
            moved = 0
            c["last_seq"] = floor
            if low is not None:
                # Every new number is above both the old ones and the floor, so no key collides mid-update.
                shift = floor + 1 - int(low)
                moved = tx.conn.execute("UPDATE outbox SET seq = seq + ?", (shift,)).rowcount
                c["last_seq"] = previous + shift
            tx.append(
                RecordClass.OPERATIONS,
                "store.sequence_raised",
                {"cloud_ack_seq": floor, "previous_last_seq": previous, "renumbered": moved},
            )
            return moved

        return op

    # ---- outbox API for the uploader ------------------------------------------------------------

    async def mark_delivered(self, ack_seq: int) -> int:
        """The cloud holds every record up to ack_seq: forget them. Returns how many were removed."""
        return await self.write(self._deliver_op(ack_seq))

    def mark_delivered_blocking(self, ack_seq: int) -> int:
        return self.write_blocking(self._deliver_op(ack_seq))

    async def raise_sequence(self, floor: int) -> int:
        """After a store reset: number everything above what the cloud already holds (docs/protocol.md)."""
        return await self.write(self._raise_sequence_op(floor))

    def pending(self, limit: int, max_bytes: int = 3 * 1024 * 1024) -> list[OutboxRecord]:
        """The oldest undelivered records in sequence order, up to a count and a byte budget."""
        out: list[OutboxRecord] = []
        total = 0
        with self._read_lock:
            cursor = self._read_conn.execute(
                "SELECT seq, cls, kind, created_at, boot_id, uptime, size, payload FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            )
            for seq, cls, kind, created_at, boot, up, size, payload in cursor:
                if out and total + size > max_bytes:
                    break
                total += size
                out.append(OutboxRecord(seq, RecordClass(cls), kind, created_at, boot, up, payload))
        return out

    def last_seq(self) -> int:
        return self._counters["last_seq"]

    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    def stats(self) -> OutboxStats:
        with self._read_lock:
            return outbox_stats(self._read_conn, self.limits)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read on the read connection (WAL: never waits for the writer); for pages and reports, not writes."""
        with self._read_lock:
            return list(self._read_conn.execute(sql, params).fetchall())

    def get_state(self, key: str, default: Any = None) -> Any:
        with self._read_lock:
            row = self._read_conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # ---- lifecycle ------------------------------------------------------------------------------

    def writer_alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Commit everything already handed in, then stop. Writes submitted after this are refused."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._read_conn.close()
        self._conn.close()

    def _record_reset(self, report: ResetReport) -> None:
        floor = report.recovered_last_seq or 0
        payload = {
            "moved_to": str(report.moved_to),
            "problems": report.problems[:20],
            "recovered_last_seq": report.recovered_last_seq,
        }

        def op(tx: Transaction) -> None:
            if floor > self._counters["last_seq"]:
                self._counters["last_seq"] = floor
            tx.append(RecordClass.SAFETY, "store.reset", payload)

        self.write_blocking(op)
