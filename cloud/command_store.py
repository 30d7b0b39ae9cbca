"""The reference cloud's side of enrollment, the command inbox and media (docs/protocol.md, "Command inbox").

Its own connection to the cloud's SQLite file (WAL: it never blocks the ingest path for long), its own tables.
Enrollment codes and tokens are stored hashed; a command's id is strictly increasing per hub (the hub's cursor).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.store import SCHEMA as HUBS_SCHEMA
from cloud.store import connect_durable, set_hub_token

SCHEMA = """
CREATE TABLE IF NOT EXISTS enrollments (
    code_sha256 TEXT PRIMARY KEY,
    hub_id      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    used_at     REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    hub_id       TEXT    NOT NULL,
    id           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    args         TEXT    NOT NULL,
    created_at   REAL    NOT NULL,
    expires_at   REAL    NOT NULL,
    status       TEXT    NOT NULL,
    result       TEXT,
    error        TEXT,
    delivered_at REAL,
    finished_at  REAL,
    PRIMARY KEY (hub_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS media (
    sha256     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS diagnostics (
    hub_id      TEXT    NOT NULL,
    command_id  INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    received_at REAL    NOT NULL,
    PRIMARY KEY (hub_id, command_id)
) WITHOUT ROWID;
"""

FINAL = ("applied", "rejected", "expired", "failed")
STATUSES = ("queued", "delivered", *FINAL)
DEFAULT_ENROLL_TTL_S = 7 * 86_400.0
DEFAULT_COMMAND_TTL_S = 7 * 86_400.0
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: read aloud over a phone without mistakes


class EnrollError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def normalise_code(code: str) -> str:
    """A code as typed (any case, spaces or dashes between groups) to the stored form."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode("ascii", "replace")).hexdigest()


def new_code() -> str:
    chars = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(16))  # ~78 bits
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True)
class Enrollment:
    hub_id: str
    code: str
    expires_at: float


class CommandStore:
    def __init__(self, db_path: Path) -> None:
        self._conn = connect_durable(db_path)
        self._conn.executescript(SCHEMA)
        # Enrollment writes the hub's token in the same transaction that uses the code: the hubs table must exist.
        self._conn.executescript(HUBS_SCHEMA)
        self._lock = threading.Lock()
        self.media_dir = db_path.with_name(db_path.name + ".media")
        self.diagnostics_dir = db_path.with_name(db_path.name + ".diagnostics")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self, fn: Any) -> Any:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                value = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return value

    # ---- enrollment ---------------------------------------------------------------------------------------------

    def add_enrollment(self, hub_id: str, ttl_s: float = DEFAULT_ENROLL_TTL_S) -> Enrollment:
        code = new_code()
        now = time.time()
        with self._lock:
            self._conn.execute(
                "INSERT INTO enrollments (code_sha256, hub_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (code_hash(code), hub_id, now, now + ttl_s),
            )
        return Enrollment(hub_id, code, now + ttl_s)

    def consume_enrollment(self, code: str, hub_id: str, token: str) -> str:
        """The hub id the code was issued for; the code is marked used and `token` made the hub's in the same
        transaction (a second use, even a concurrent one, is refused; a failure leaves the code usable).
        EnrollError with the HTTP status otherwise."""
        digest = code_hash(code)
        now = time.time()

        def op(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT hub_id, expires_at, used_at FROM enrollments WHERE code_sha256 = ?", (digest,)
            ).fetchone()
            if row is None:
                raise EnrollError(401, "code: unknown enrollment code (check it, or ask the commune for a new one)")
            owner, expires_at, used_at = row
            if used_at is not None:
                raise EnrollError(410, "code: this enrollment code was already used; ask the commune for a new one")
            if expires_at < now:
                raise EnrollError(410, "code: this enrollment code has expired; ask the commune for a new one")
            if hub_id and hub_id != owner:
                raise EnrollError(403, f"hub_id: this code is for hub {owner!r}, not {hub_id!r}")
            conn.execute("UPDATE enrollments SET used_at = ? WHERE code_sha256 = ?", (now, digest))
            set_hub_token(conn, owner, token)
            return str(owner)

        result: str = self._tx(op)
        return result

    # ---- commands -----------------------------------------------------------------------------------------------

    def queue(self, hub_id: str, kind: str, args: dict[str, Any], expires_at: float) -> dict[str, Any]:
        now = time.time()
        encoded = json.dumps(args, ensure_ascii=False, separators=(",", ":"))

        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM commands WHERE hub_id = ?", (hub_id,)).fetchone()
            new_id = int(row[0]) + 1
            conn.execute(
                "INSERT INTO commands (hub_id, id, kind, args, created_at, expires_at, status) "
                "VALUES (?, ?, ?, ?, ?, ?, 'queued')",
                (hub_id, new_id, kind, encoded, now, expires_at),
            )
            return new_id

        new_id: int = self._tx(op)
        command = self.command(hub_id, new_id)
        assert command is not None
        return command

    _COLUMNS = "id, hub_id, kind, args, created_at, expires_at, status, result, error, delivered_at, finished_at"

    @staticmethod
    def _row(row: tuple[Any, ...]) -> dict[str, Any]:
        cid, hub_id, kind, args, created, expires, status, result, error, delivered, finished = row
        return {
            "id": cid,
            "hub_id": hub_id,
            "kind": kind,
            "args": json.loads(args),
            "created_at": created,
            "expires_at": expires,
            "status": status,
            "result": json.loads(result) if result is not None else None,
            "error": error,
            "delivered_at": delivered,
            "finished_at": finished,
        }

    def command(self, hub_id: str, command_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {self._COLUMNS} FROM commands WHERE hub_id = ? AND id = ?",  # noqa: S608 - constant columns
                (hub_id, command_id),
            ).fetchone()
        return self._row(row) if row else None

    def commands(self, hub_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._COLUMNS} FROM commands WHERE hub_id = ? AND id > ? ORDER BY id LIMIT ?",  # noqa: S608
                (hub_id, after, limit),
            ).fetchall()
        return [self._row(r) for r in rows]

    def deliver(self, hub_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        """The hub's fetch: commands above its cursor that have no final status yet (a hub whose store was lost
        asks from 0, and must not be handed what it already applied); queued ones are marked delivered."""

        def op(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            rows = conn.execute(
                f"SELECT {self._COLUMNS} FROM commands WHERE hub_id = ? AND id > ? "  # noqa: S608
                "AND status IN ('queued', 'delivered') ORDER BY id LIMIT ?",
                (hub_id, after, limit),
            ).fetchall()
            if rows:
                conn.execute(
                    "UPDATE commands SET status = 'delivered', delivered_at = ? "
                    "WHERE hub_id = ? AND id > ? AND id <= ? AND status = 'queued'",
                    (time.time(), hub_id, after, rows[-1][0]),
                )
            return list(rows)

        rows = self._tx(op)
        return [{k: v for k, v in self._row(r).items() if k in _WIRE} for r in rows]

    def finish(
        self, hub_id: str, command_id: int, status: str, result: Any = None, error: str | None = None
    ) -> tuple[bool, dict[str, Any] | None]:
        """Record a hub's result. (changed, the command); a final status is never overwritten (the fast path and
        the outbox path both deliver the same result)."""
        encoded = None if result is None else json.dumps(result, ensure_ascii=False, separators=(",", ":"))

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE commands SET status = ?, result = ?, error = ?, finished_at = ? "
                "WHERE hub_id = ? AND id = ? AND status NOT IN ('applied', 'rejected', 'expired', 'failed')",
                (status, encoded, error, time.time(), hub_id, command_id),
            )
            return cursor.rowcount > 0

        changed: bool = self._tx(op)
        return changed, self.command(hub_id, command_id)

    # ---- media and diagnostics ----------------------------------------------------------------------------------

    def add_media(self, sha256: str, name: str, size: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO media (sha256, name, size, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (sha256) DO UPDATE SET name = excluded.name",
                (sha256, name, size, time.time()),
            )

    def media(self, sha256: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT sha256, name, size FROM media WHERE sha256 = ?", (sha256,)).fetchone()
        return {"sha256": row[0], "name": row[1], "size": row[2]} if row else None

    def media_path(self, sha256: str) -> Path:
        return self.media_dir / sha256

    def diagnostics_path(self, hub_id: str, command_id: int) -> Path:
        safe = base64.urlsafe_b64encode(hub_id.encode()).decode().rstrip("=")
        return self.diagnostics_dir / safe / f"{command_id}.tar.gz"

    def add_diagnostics(self, hub_id: str, command_id: int, size: int, sha256: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO diagnostics (hub_id, command_id, size, sha256, received_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (hub_id, command_id) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, "
                "received_at = excluded.received_at",
                (hub_id, command_id, size, sha256, time.time()),
            )


_WIRE = ("id", "kind", "args", "created_at", "expires_at", "status")
