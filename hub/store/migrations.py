"""Forward-only schema migrations, tracked in SQLite's `user_version`.

Append a new entry for every change; never edit one that has shipped. Each runs in its own transaction
together with the version bump, so a power cut mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: outbox, its counters (kept in the same transactions as the rows, so reading them is free even
    #    with half a million records waiting), and a key-value state table.
    """
    CREATE TABLE outbox (
        seq        INTEGER PRIMARY KEY,
        cls        INTEGER NOT NULL,
        kind       TEXT    NOT NULL,
        created_at REAL    NOT NULL,
        boot_id    TEXT    NOT NULL,
        uptime     REAL    NOT NULL,
        size       INTEGER NOT NULL,
        payload    TEXT    NOT NULL
    );
    CREATE INDEX outbox_eviction ON outbox (cls, seq);
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, value) VALUES
        ('last_seq', 0), ('acked_seq', 0), ('pending_count', 0), ('pending_bytes', 0),
        ('pending.telemetry', 0), ('pending.operations', 0), ('pending.security', 0), ('pending.safety', 0),
        ('dropped.telemetry', 0), ('dropped.operations', 0), ('dropped.security', 0), ('dropped.safety', 0),
        ('delivered', 0);
    CREATE TABLE state (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNewError(RuntimeError):
    pass


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration newer than the database; return the versions applied."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"database schema version {current} is newer than this software knows ({SCHEMA_VERSION}); "
            "a newer release wrote it"
        )
    applied = []
    for version in range(current + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[version - 1]
        # executescript would COMMIT first; run statement by statement inside one explicit transaction.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def _statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
