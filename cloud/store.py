"""The reference cloud's store: hubs (with hashed tokens) and the records they delivered, deduplicated."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS hubs (
    hub_id       TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   REAL NOT NULL,
    ack_seq      INTEGER NOT NULL DEFAULT 0,
    records      INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    batches      INTEGER NOT NULL DEFAULT 0,
    last_seen    REAL,
    dropped      TEXT NOT NULL DEFAULT '{}',
    pending      INTEGER
);
CREATE TABLE IF NOT EXISTS records (
    hub_id      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    cls         TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    boot_id     TEXT    NOT NULL,
    uptime      REAL    NOT NULL,
    payload     TEXT    NOT NULL,
    received_at REAL    NOT NULL,
    PRIMARY KEY (hub_id, seq)
) WITHOUT ROWID;
"""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def set_hub_token(conn: sqlite3.Connection, hub_id: str, token: str) -> None:
    """Register a hub, or replace its token (the old one stops working at once)."""
    conn.execute(
        "INSERT INTO hubs (hub_id, token_sha256, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (hub_id) DO UPDATE SET token_sha256 = excluded.token_sha256",
        (hub_id, token_hash(token), time.time()),
    )


@dataclass(frozen=True)
class IngestResult:
    hub_id: str
    ack_seq: int
    accepted: int
    duplicates: int


def connect_durable(path: Path) -> sqlite3.Connection:
    """The cloud database as every writer opens it: WAL, a full fsync per commit (an ack or a command id promises
    the data is on disk), and a wait rather than an error while the other writer holds the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


class CloudStore:
    def __init__(self, path: Path) -> None:
        self._conn = connect_durable(path)
        self._conn.executescript(SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(hubs)")}
        if "pending" not in columns:  # a database from before hubs reported their backlog
            self._conn.execute("ALTER TABLE hubs ADD COLUMN pending INTEGER")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add_hub(self, hub_id: str, token: str | None = None) -> str:
        token = token or secrets.token_urlsafe(32)
        with self._lock:
            set_hub_token(self._conn, hub_id, token)
        return token

    def hub_for_token(self, token: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT hub_id FROM hubs WHERE token_sha256 = ?", (token_hash(token),)).fetchone()
        return str(row[0]) if row else None

    def ack_seq(self, hub_id: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT ack_seq FROM hubs WHERE hub_id = ?", (hub_id,)).fetchone()
        return int(row[0]) if row else 0

    def ingest(
        self, hub_id: str, records: list[dict[str, Any]], dropped: dict[str, int], pending: int | None = None
    ) -> IngestResult:
        """Store a batch atomically, ignoring (hub_id, seq) pairs already held. An empty `dropped` keeps the
        counts last reported (the field is optional in the protocol). `pending`: the hub's outbox backlog once
        this batch is acknowledged (X-Hub-Pending), None if it did not say."""
        now = time.time()
        rows = [
            (
                hub_id,
                r["seq"],
                r["class"],
                r["kind"],
                float(r["created_at"]),  # REAL columns; an int beyond SQLite's 64 bits would not bind
                r["boot_id"],
                float(r["uptime"]),
                json.dumps(r["payload"], ensure_ascii=False, separators=(",", ":")),
                now,
            )
            for r in records
        ]
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO records (hub_id, seq, cls, kind, created_at, boot_id, uptime, payload, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                accepted = conn.total_changes - before
                top = max(r["seq"] for r in records)
                conn.execute(
                    "UPDATE hubs SET ack_seq = max(ack_seq, ?), records = records + ?, duplicates = duplicates + ?, "
                    "batches = batches + 1, last_seen = ?, dropped = coalesce(?, dropped), pending = coalesce(?, "
                    "pending) WHERE hub_id = ?",
                    (
                        top,
                        accepted,
                        len(rows) - accepted,
                        now,
                        json.dumps(dropped) if dropped else None,
                        pending,
                        hub_id,
                    ),
                )
                ack = int(conn.execute("SELECT ack_seq FROM hubs WHERE hub_id = ?", (hub_id,)).fetchone()[0])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return IngestResult(hub_id, ack, accepted, len(rows) - accepted)

    def touch(self, hub_id: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE hubs SET last_seen = ? WHERE hub_id = ?", (time.time(), hub_id))

    def hubs(self) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._conn.execute(
                "SELECT hub_id, created_at, ack_seq, records, duplicates, batches, last_seen, dropped, pending "
                "FROM hubs ORDER BY hub_id"
            )
            names = [d[0] for d in cursor.description]
            out = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for hub in out:
            hub["dropped"] = json.loads(hub["dropped"])
        return out

    def records(self, hub_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._conn.execute(
                "SELECT seq, cls, kind, created_at, boot_id, uptime, payload, received_at FROM records "
                "WHERE hub_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (hub_id, after, limit),
            )
            rows = cursor.fetchall()
        return [
            {
                "seq": seq,
                "class": cls,
                "kind": kind,
                "created_at": created,
                "boot_id": boot,
                "uptime": up,
                "payload": json.loads(payload),
                "received_at": received,
            }
            for seq, cls, kind, created, boot, up, payload, received in rows
        ]

    def count(self, hub_id: str) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM records WHERE hub_id = ?", (hub_id,)).fetchone()[0])
