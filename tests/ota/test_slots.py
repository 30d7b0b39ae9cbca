"""The slot state: atomic switch, trial, commit, rollback, and repairs after a power cut."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hub.store.database import open_database
from hub.store.migrations import OLDEST_READER_KEY, SCHEMA_VERSION, SchemaTooNewError, migrate
from ota import slots
from tests.ota.slotkit import small_tree


def _two_slots(root: Path) -> slots.Layout:
    layout = slots.Layout(root)
    for name, version in (("a", "1.0.0"), ("b", "1.1.0")):
        manifest = small_tree(layout.slot(name), version)
        (layout.slot(name) / slots.RELEASE_NAME).write_bytes(manifest)
    slots.switch(layout, "a")
    return layout


def test_switch_is_a_rename_of_a_relative_link(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path)
    slots.switch(layout, "b")
    assert layout.current.readlink() == Path("slots/b")
    assert layout.active() == "b"
    assert not list(tmp_path.glob(".current.tmp-*"))
    with pytest.raises(slots.SlotError):
        slots.switch(layout, "c")


def test_trial_commit_and_history(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path)
    trial = slots.begin_trial(layout, "b")
    assert trial["from_slot"] == "a"
    assert trial["from_version"] == "1.0.0"
    assert layout.active() == "b"
    assert slots.commit(layout) is not None
    state = slots.load_state(layout)
    assert state["trial"] is None
    assert state["last_result"]["result"] == "committed"
    assert (state["active"], state["previous"]) == ("b", "a")
    kinds = [e["kind"] for e in slots.take_events(layout)]
    assert kinds == ["ota.switched", "ota.committed"]
    assert slots.take_events(layout) == []


def test_rollback_switches_back_and_remembers_the_failed_version(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path)
    slots.begin_trial(layout, "b")
    with slots.locked(layout) as state:
        result = slots.rollback(layout, state, "not healthy")
    assert result is not None
    assert result["failed_version"] == "1.1.0"
    assert layout.active() == "a"
    state = slots.load_state(layout)
    assert state["failed_versions"] == ["1.1.0"]
    assert state["last_result"]["result"] == "rolled-back"


def test_incomplete_slot_is_never_started(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path)
    (layout.slot("b") / slots.RELEASE_NAME).unlink()
    with pytest.raises(slots.SlotError, match="incomplete"):
        slots.begin_trial(layout, "b")
    # A link that points at an incomplete slot (say, by hand) is repaired to a complete one.
    slots.switch(layout, "b")
    with slots.locked(layout) as state:
        repaired = slots.reconcile(layout, state)
    assert repaired
    assert layout.active() == "a"


def test_power_cut_between_trial_and_switch_abandons_the_trial(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path)
    with slots.locked(layout) as state:
        state["active"] = "a"
        state["trial"] = {"slot": "b", "version": "1.1.0", "from_slot": "a", "boots": 0}
    with slots.locked(layout) as state:
        slots.reconcile(layout, state)
    state = slots.load_state(layout)
    assert state["trial"] is None
    assert layout.active() == "a"
    assert "ota.trial_abandoned" in [e["kind"] for e in state["events"]]


def test_unreadable_state_file_does_not_stop_anything(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path)
    layout.state_path.write_bytes(b"{not json")
    state = slots.load_state(layout)
    assert state["last_result"]["result"] == "state-unreadable"
    with slots.locked(layout) as state:
        slots.reconcile(layout, state)
    assert json.loads(layout.state_path.read_bytes())["active"] == "a"


# ---- the store after a rollback ---------------------------------------------------------------------------------


def _newer_store(data_dir: Path, oldest_reader: int) -> None:
    """The store as a newer release leaves it: one schema version more, with its declaration."""
    opened = open_database(data_dir)
    conn = opened.conn
    conn.execute("CREATE TABLE newer_feature (x INTEGER)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute(
        "UPDATE state SET value = ? WHERE key = ?",
        (json.dumps(oldest_reader), OLDEST_READER_KEY),
    )
    conn.execute("UPDATE counters SET value = 77 WHERE name = 'last_seq'")
    conn.close()


def test_migrations_declare_their_oldest_reader(tmp_path: Path) -> None:
    conn = open_database(tmp_path).conn
    row = conn.execute("SELECT value FROM state WHERE key = ?", (OLDEST_READER_KEY,)).fetchone()
    assert int(json.loads(row[0])) <= SCHEMA_VERSION


def test_an_older_release_opens_a_newer_store_that_declares_it_readable(tmp_path: Path) -> None:
    _newer_store(tmp_path, oldest_reader=SCHEMA_VERSION)
    conn = sqlite3.connect(tmp_path / "hub.sqlite3")
    assert migrate(conn) == []  # opened as it is: nothing lost


def test_an_older_release_refuses_a_store_it_cannot_read(tmp_path: Path) -> None:
    _newer_store(tmp_path, oldest_reader=SCHEMA_VERSION + 1)
    conn = sqlite3.connect(tmp_path / "hub.sqlite3")
    with pytest.raises(SchemaTooNewError):
        migrate(conn)


def test_rollback_restores_the_snapshot_when_the_old_release_cannot_read_the_store(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path / "root")
    data = tmp_path / "data"
    open_database(data).conn.close()
    with slots.locked(layout) as state:
        state["data_dir"] = str(data)
        state["schema"] = {"a": SCHEMA_VERSION}
    slots.begin_trial(layout, "b")
    with slots.locked(layout) as state:
        assert "before-1.1.0" in slots.snapshot_store(layout, state, "1.1.0")
    _newer_store(data, oldest_reader=SCHEMA_VERSION + 1)
    with slots.locked(layout) as state:
        result = slots.rollback(layout, state, "test")
    assert result is not None
    assert "restored the snapshot" in result["store"]
    opened = open_database(data)  # the old release opens it again: the box is not bricked
    last_seq = opened.conn.execute("SELECT value FROM counters WHERE name = 'last_seq'").fetchone()[0]
    assert last_seq == 77  # sequence numbers the newer release handed out are never reused
    assert list(data.glob("hub.sqlite3.rolled-back-1.1.0-*"))  # the newer file is kept, not deleted


def test_rollback_keeps_a_store_the_old_release_can_read(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path / "root")
    data = tmp_path / "data"
    open_database(data).conn.close()
    with slots.locked(layout) as state:
        state["data_dir"] = str(data)
        state["schema"] = {"a": SCHEMA_VERSION}
    slots.begin_trial(layout, "b")
    _newer_store(data, oldest_reader=1)
    with slots.locked(layout) as state:
        result = slots.rollback(layout, state, "test")
    assert result is not None
    assert result["store"].startswith("kept")
    conn = open_database(data).conn
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'newer_feature'").fetchone()[0] == 1


def test_rollback_restores_the_old_slots_config(tmp_path: Path) -> None:
    layout = _two_slots(tmp_path / "root")
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nid = "old"\n')
    with slots.locked(layout) as state:
        state["config_path"] = str(config)
    slots.begin_trial(layout, "b", config_path=config)
    config.write_text('[hub]\nid = "migrated-by-new"\nconfig_version = 2\n')
    with slots.locked(layout) as state:
        result = slots.rollback(layout, state, "test")
    assert result is not None
    assert result["config"].startswith("restored")
    assert config.read_text() == '[hub]\nid = "old"\n'
