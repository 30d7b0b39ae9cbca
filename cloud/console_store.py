"""Read-only queries for the operator console: records browsed with filters and paging, command counts.

Its own read connection to the cloud's SQLite file (WAL: reading never waits for ingest). The tables are
CloudStore's (records) and CommandStore's (commands); writes stay with their owners.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAGE = 50


@dataclass(frozen=True)
class RecordPage:
    records: list[dict[str, Any]]
    older: int | None  # `before` for the next (older) page, None on the last page


class ConsoleStore:
    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def records(
        self, hub_id: str, cls: str | None, kind: str | None, before: int | None, limit: int = PAGE
    ) -> RecordPage:
        """Newest first. `kind` matches as a prefix ("broadcast." finds every broadcast record)."""
        where = ["hub_id = ?"]
        params: list[Any] = [hub_id]
        if cls:
            where.append("cls = ?")
            params.append(cls)
        if kind:
            where.append("substr(kind, 1, ?) = ?")
            params += [len(kind), kind]
        if before is not None:
            where.append("seq < ?")
            params.append(before)
        columns = "seq, cls, kind, created_at, boot_id, uptime, payload, received_at"
        sql = f"SELECT {columns} FROM records WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit + 1)).fetchall()
        older = rows[limit - 1][0] if len(rows) > limit else None
        return RecordPage(
            [
                {
                    "seq": seq,
                    "class": c,
                    "kind": k,
                    "created_at": created,
                    "boot_id": boot,
                    "uptime": up,
                    "payload": json.loads(payload),
                    "received_at": received,
                }
                for seq, c, k, created, boot, up, payload, received in rows[:limit]
            ],
            older,
        )

    def kinds(self, hub_id: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT kind FROM records WHERE hub_id = ? ORDER BY kind LIMIT 500", (hub_id,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def latest_command_id(self, hub_id: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT coalesce(max(id), 0) FROM commands WHERE hub_id = ?", (hub_id,)).fetchone()
        return int(row[0])

    def open_commands(self) -> dict[str, int]:
        """Per hub, the commands not final yet (queued or delivered)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT hub_id, count(*) FROM commands WHERE status IN ('queued', 'delivered') GROUP BY hub_id"
            ).fetchall()
        return {str(h): int(n) for h, n in rows}
