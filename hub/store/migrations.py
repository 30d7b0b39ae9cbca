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
    # 2: what stays on the box after the outbox has delivered it: the technician audit log (who did what,
    #    when; also sent to the cloud) and a per-minute history of sensor values for the technician's 24 h chart.
    """
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      REAL NOT NULL,
        actor   TEXT NOT NULL,
        address TEXT NOT NULL,
        action  TEXT NOT NULL,
        details TEXT NOT NULL
    );
    CREATE TABLE readings (
        metric TEXT NOT NULL,
        minute INTEGER NOT NULL,
        value  REAL NOT NULL,
        PRIMARY KEY (metric, minute)
    ) WITHOUT ROWID;
    CREATE INDEX readings_by_minute ON readings (minute);
    """,
    # 3: the loudspeakers: programmes and schedules (as validated JSON), the newest occurrence of each schedule
    #    already decided (so that neither a restart nor a clock jumping back plays it twice), and the broadcast
    #    log: one row per broadcast from queued to its outcome (each final row also goes to the outbox).
    """
    CREATE TABLE broadcast_programmes (
        id         TEXT PRIMARY KEY,
        body       TEXT NOT NULL,
        origin     TEXT NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE broadcast_schedules (
        id              TEXT PRIMARY KEY,
        programme_id    TEXT NOT NULL,
        body            TEXT NOT NULL,
        origin          TEXT NOT NULL,
        since           TEXT NOT NULL,
        last_occurrence TEXT,
        updated_at      REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE broadcast_log (
        id           INTEGER PRIMARY KEY,
        job_id       TEXT NOT NULL UNIQUE,
        origin       TEXT NOT NULL,
        level        TEXT NOT NULL,
        title        TEXT NOT NULL,
        programme_id TEXT,
        schedule_id  TEXT,
        zones        TEXT NOT NULL,
        planned_at   REAL,
        started_at   REAL,
        ended_at     REAL,
        outcome      TEXT NOT NULL,
        reason       TEXT,
        dedupe_key   TEXT,
        detail       TEXT NOT NULL,
        updated_at   REAL NOT NULL
    );
    CREATE INDEX broadcast_log_by_outcome ON broadcast_log (outcome);
    CREATE INDEX broadcast_log_by_update ON broadcast_log (updated_at);
    """,
    # 4: the Wi-Fi portal's admitted clients (one row per live session: what the firewall is loaded with again
    #    after a restart). The MAC stays on the box, and only while the session lasts; what leaves is a salted hash.
    """
    CREATE TABLE portal_sessions (
        id          TEXT PRIMARY KEY,
        ip          TEXT NOT NULL UNIQUE,
        mac         TEXT NOT NULL,
        admitted_at REAL NOT NULL,
        expires_at  REAL NOT NULL,
        renewals    INTEGER NOT NULL DEFAULT 0,
        bytes_up    INTEGER NOT NULL DEFAULT 0,
        bytes_down  INTEGER NOT NULL DEFAULT 0,
        lang        TEXT NOT NULL DEFAULT 'vi'
    ) WITHOUT ROWID;
    """,
    # 5: commands from the cloud (docs/protocol.md, "Command inbox"): one row per command id, written as
    #    'applying' before it runs (so a restart never runs it twice), then its outcome. The highest id is the
    #    cursor of the long poll.
    """
    CREATE TABLE commands (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL,
        args        TEXT NOT NULL,
        result      TEXT,
        error       TEXT,
        created_at  REAL,
        expires_at  REAL,
        received_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX commands_by_status ON commands (status);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# Versions whose migration an older release cannot live with (a dropped or renamed column, a changed meaning).
# One that only adds tables or defaulted columns is not listed: after an OTA rollback the older release opens
# the newer file as it is and nothing is lost (ota/slots.py restores its pre-update snapshot only otherwise).
BREAKS_OLDER_READERS: frozenset[int] = frozenset()
OLDEST_READER_KEY = "store.oldest_reader"


def oldest_reader(version: int) -> int:
    """The lowest schema version of software that can still open a database at `version`."""
    return max([1, *(v for v in BREAKS_OLDER_READERS if v <= version)])


class SchemaTooNewError(RuntimeError):
    pass


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration newer than the database; return the versions applied."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION and _oldest_reader_of(conn) <= SCHEMA_VERSION:
        return []  # a newer release wrote it (we were rolled back to) and declared it readable by us
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
            conn.execute(
                "INSERT OR REPLACE INTO state (key, value, updated_at) VALUES (?, ?, strftime('%s', 'now'))",
                (OLDEST_READER_KEY, str(oldest_reader(version))),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def _oldest_reader_of(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT value FROM state WHERE key = ?", (OLDEST_READER_KEY,)).fetchone()
    except sqlite3.DatabaseError:
        return schema_version(conn)
    return int(row[0]) if row else schema_version(conn)


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
