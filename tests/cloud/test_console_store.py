"""The console's queries (cloud/console_store.py) and the hubs' backlog column on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cloud.command_store import CommandStore
from cloud.console_store import ConsoleStore
from cloud.store import CloudStore


def rec(seq: int, cls: str, kind: str) -> dict[str, object]:
    return {"seq": seq, "class": cls, "kind": kind, "created_at": 1.0, "boot_id": "b", "uptime": 1.0, "payload": {}}


def test_a_database_from_before_the_backlog_column_gets_it_and_keeps_its_hubs(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE hubs (hub_id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,"
        " ack_seq INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL"
        " DEFAULT 0, batches INTEGER NOT NULL DEFAULT 0, last_seen REAL, dropped TEXT NOT NULL DEFAULT '{}');"
        "INSERT INTO hubs (hub_id, token_sha256, created_at, ack_seq) VALUES ('thon-cu', 'x', 1.0, 7);"
    )
    old.commit()
    old.close()
    store = CloudStore(db)
    try:
        (hub,) = store.hubs()
        assert (hub["hub_id"], hub["ack_seq"], hub["pending"]) == ("thon-cu", 7, None)
        store.ingest("thon-cu", [rec(8, "telemetry", "x.y")], {}, pending=12)
        assert store.hubs()[0]["pending"] == 12
        store.ingest("thon-cu", [rec(9, "telemetry", "x.y")], {}, pending=None)  # not said: kept
        assert store.hubs()[0]["pending"] == 12
    finally:
        store.close()
    CloudStore(db).close()  # opening again: the column is not added twice


def test_records_newest_first_filtered_and_paged(tmp_path: Path) -> None:
    db = tmp_path / "cloud.sqlite3"
    store = CloudStore(db)
    commands = CommandStore(db)
    console = ConsoleStore(db)
    try:
        store.add_hub("a")
        store.add_hub("b")
        kinds = {0: ("safety", "broadcast.emergency"), 1: ("operations", "broadcast.played")}
        rows = [rec(s, *kinds.get(s % 5, ("telemetry", "telemetry.vitals"))) for s in range(1, 21)]
        store.ingest("a", rows, {})
        store.ingest("b", [rec(1, "safety", "broadcast.emergency")], {})

        page = console.records("a", None, None, None, limit=8)
        assert [r["seq"] for r in page.records] == list(range(20, 12, -1))
        assert page.older == 13
        tail = console.records("a", None, None, 5, limit=8)
        assert [r["seq"] for r in tail.records] == [4, 3, 2, 1]
        assert tail.older is None
        assert [r["seq"] for r in console.records("a", "safety", None, None).records] == [20, 15, 10, 5]
        assert [r["seq"] for r in console.records("a", None, "broadcast.", None).records] == [
            20, 16, 15, 11, 10, 6, 5, 1
        ]  # fmt: skip
        assert console.records("a", "telemetry", "broadcast.", None).records == []
        assert console.kinds("a") == ["broadcast.emergency", "broadcast.played", "telemetry.vitals"]

        commands.queue("a", "broadcast.stop_all", {}, 2e9)
        second = commands.queue("a", "broadcast.stop_all", {}, 2e9)
        commands.finish("a", second["id"], "applied", {})
        assert console.latest_command_id("a") == 2
        assert console.latest_command_id("b") == 0
        assert console.open_commands() == {"a": 1}
    finally:
        console.close()
        commands.close()
        store.close()
