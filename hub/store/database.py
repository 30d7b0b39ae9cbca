"""Opening the SQLite file: durability pragmas, integrity check, and moving a corrupt file aside."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from hub.store.migrations import migrate

log = logging.getLogger(__name__)

DB_NAME = "hub.sqlite3"
_SIDECARS = ("-wal", "-shm", "-journal")


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk (WAL fsynced) before it returns, so an acknowledged record survives a power cut.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """Problems found by SQLite's quick_check; empty when the file is sound."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
    return [] if rows == ["ok"] else rows


@dataclass(frozen=True)
class ResetReport:
    """What happened when the store found its file unusable at start."""

    moved_to: Path
    problems: list[str]
    recovered_last_seq: int | None


@dataclass(frozen=True)
class OpenedDatabase:
    conn: sqlite3.Connection
    path: Path
    reset: ResetReport | None
    migrations_applied: list[int]


def open_database(data_dir: Path) -> OpenedDatabase:
    """Open (or create) the store, checking it first; a corrupt file is moved aside, never deleted."""
    data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    path = data_dir / DB_NAME
    reset: ResetReport | None = None
    if path.exists():
        problems = _check_file(path)
        if problems:
            recovered = _recover_last_seq(path)
            moved = _move_aside(path)
            log.error("store %s failed its integrity check (%s); moved to %s", path, "; ".join(problems), moved)
            reset = ResetReport(moved_to=moved, problems=problems, recovered_last_seq=recovered)
    conn = connect(path)
    applied = migrate(conn)
    return OpenedDatabase(conn=conn, path=path, reset=reset, migrations_applied=applied)


def _check_file(path: Path) -> list[str]:
    try:
        conn = connect(path)
    except sqlite3.DatabaseError as exc:
        return [f"cannot open: {exc}"]
    try:
        return quick_check(conn)
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()


def _recover_last_seq(path: Path) -> int | None:
    """Best effort: the highest sequence the broken file had handed out, so new ones do not reuse it."""
    try:
        conn = connect(path, readonly=True)
    except sqlite3.DatabaseError:
        return None
    best: int | None = None
    with contextlib.closing(conn):
        for query in ("SELECT value FROM counters WHERE name = 'last_seq'", "SELECT max(seq) FROM outbox"):
            try:
                row = conn.execute(query).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row and row[0] is not None:
                best = max(best or 0, int(row[0]))
    return best


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in _SIDECARS:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    path.rename(target)
    return target
