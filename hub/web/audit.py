"""The technician audit log: who did what, when, from where — kept on the box and sent to the commune."""

from __future__ import annotations

import json
from typing import Any

from hub import clock
from hub.store import RecordClass, Store, Transaction

KEEP_ROWS = 5000  # about a year of a busy installer's actions; older rows are dropped (the cloud keeps them)


async def record(store: Store, actor: str, address: str, action: str, **details: Any) -> None:
    at = clock.wall()

    def op(tx: Transaction) -> None:
        tx.conn.execute(
            "INSERT INTO audit (at, actor, address, action, details) VALUES (?, ?, ?, ?, ?)",
            (at, actor, address, action, json.dumps(details, ensure_ascii=False, default=str)),
        )
        tx.conn.execute("DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?", (KEEP_ROWS,))
        tx.append(
            RecordClass.SECURITY,
            "technician.audit",
            {"actor": actor, "address": address, "action": action, "details": details, "at": at},
        )

    await store.write(op)


def recent(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    rows = store.query("SELECT at, actor, address, action, details FROM audit ORDER BY id DESC LIMIT ?", (limit,))
    return [
        {"at": at, "actor": actor, "address": address, "action": action, "details": json.loads(details)}
        for at, actor, address, action, details in rows
    ]
