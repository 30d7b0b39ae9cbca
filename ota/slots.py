"""A/B slots on disk: the layout, the state file, the atomic switch, commit and roll back.

Standard library only, and no import of another `ota` module: the boot guard (ota/guard.py) runs this file
from a stable copy next to it with the system interpreter, before the service starts, so it must work even
when a slot's dependencies are broken.

Layout under the root (default /opt/village-hub):

    slots/a, slots/b      two self-contained environments; a slot with `release.json` is complete
    current -> slots/a    the slot systemd starts (`current/bin/python3 -P -m hub run`); switched by rename
    ota-state.json        active/previous slot, the trial, the last result, history, events not yet reported
    ota-state.lock        flock: the guard, the installer and the service never write the state at once
    staging/              downloads (blobs/<sha256>, resumable .part files)
    guard/                the stable copy of guard.py and slots.py that ExecStartPre runs
    config/<slot>.toml    the configuration each slot last ran with (kept for a rollback)
    snapshots/            the store as it was before a trial version first opened it

A switch writes the trial into the state first and then renames the symlink: a power cut between the two
leaves a trial whose slot is not `current`, which the guard clears (the next attempt switches again).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SLOTS = ("a", "b")
STATE_NAME = "ota-state.json"
RELEASE_NAME = "release.json"
HISTORY_KEPT = 30
EVENTS_KEPT = 100
DB_NAME = "hub.sqlite3"  # hub/store/database.py's name; ota/ does not import hub


class SlotError(RuntimeError):
    """The slot layout is not usable (no complete slot, a bad name); the message says what is wrong."""


def other(slot: str) -> str:
    if slot not in SLOTS:
        raise SlotError(f"unknown slot {slot!r}; expected one of {', '.join(SLOTS)}")
    return "b" if slot == "a" else "a"


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def state_path(self) -> Path:
        return self.root / STATE_NAME

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def guard_dir(self) -> Path:
        return self.root / "guard"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    def slot(self, name: str) -> Path:
        other(name)  # validates the name
        return self.root / "slots" / name

    def config_copy(self, name: str) -> Path:
        return self.root / "config" / f"{name}.toml"

    def active(self) -> str | None:
        """The slot `current` points at, or None (no link yet, or a link to something that is not a slot)."""
        try:
            target = str(self.current.readlink())
        except OSError:
            return None
        name = Path(target).name
        return name if name in SLOTS and Path(target).parent.name == "slots" else None

    def release(self, name: str) -> dict[str, Any] | None:
        """The manifest of a complete slot; None while the slot is empty or being built."""
        try:
            data = json.loads((self.slot(name) / RELEASE_NAME).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def version(self, name: str | None) -> str | None:
        if name is None:
            return None
        release = self.release(name)
        version = release.get("version") if release else None
        return str(version) if version is not None else None

    def running_from_slot(self, prefix: str) -> str | None:
        """Which slot an interpreter prefix (sys.prefix) belongs to, if any."""
        with contextlib.suppress(OSError, ValueError):
            resolved = Path(prefix).resolve()
            for name in SLOTS:
                if resolved == self.slot(name).resolve():
                    return name
        return None


# ---- durable small writes ------------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so that a power cut leaves either the old or the new content, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    fsync_dir(path.parent)


def switch(layout: Layout, name: str) -> None:
    """Point `current` at a slot by renaming a new symlink over it: atomic, so a reader sees one or the other."""
    layout.slot(name)
    tmp = layout.root / f".current.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(f"slots/{name}")
    tmp.replace(layout.current)
    fsync_dir(layout.root)


# ---- the state file --------------------------------------------------------------------------------------------


def empty_state() -> dict[str, Any]:
    return {
        "format": 1,
        "active": None,
        "previous": None,
        "trial": None,
        "last_result": None,
        "history": [],
        "events": [],
        "schema": {},
        "data_dir": None,
        "config_path": None,
    }


def load_state(layout: Layout) -> dict[str, Any]:
    state = empty_state()
    try:
        data = json.loads(layout.state_path.read_bytes())
    except FileNotFoundError:
        return state
    except (OSError, ValueError):
        # A state file we cannot read must not stop the box: the symlink still says what runs.
        state["last_result"] = {"result": "state-unreadable", "at": time.time()}
        return state
    if isinstance(data, dict):
        state.update(data)
    return state


def save_state(layout: Layout, state: dict[str, Any]) -> None:
    state["history"] = state.get("history", [])[-HISTORY_KEPT:]
    state["events"] = state.get("events", [])[-EVENTS_KEPT:]
    text = json.dumps(state, ensure_ascii=False, indent=1, sort_keys=True)
    write_atomic(layout.state_path, text.encode("utf-8"))


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[dict[str, Any]]:
    """The state, read under the lock and written back when the block ends without an exception."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.root / "ota-state.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = load_state(layout)
        yield state
        save_state(layout, state)
    finally:
        os.close(fd)


def record(state: dict[str, Any], kind: str, **payload: Any) -> dict[str, Any]:
    """Note an event for the outbox (the service reports and removes it) and in the history (kept on the box)."""
    event = {"kind": kind, "at": time.time(), "id": os.urandom(8).hex(), **payload}
    state.setdefault("events", []).append(event)
    state.setdefault("history", []).append(event)
    return event


def pending_events(layout: Layout) -> list[dict[str, Any]]:
    """Events not yet in the outbox; `drop_events` removes them once the store has them (a crash in between
    reports one twice rather than never)."""
    return list(load_state(layout).get("events", []))


def drop_events(layout: Layout, ids: set[str]) -> None:
    with locked(layout) as state:
        state["events"] = [e for e in state.get("events", []) if e.get("id") not in ids]


def take_events(layout: Layout) -> list[dict[str, Any]]:
    events = pending_events(layout)
    drop_events(layout, {str(e.get("id")) for e in events})
    return events


def reconcile(layout: Layout, state: dict[str, Any]) -> list[str]:
    """Make the state agree with the disk after whatever power cut; returns what was repaired."""
    repaired: list[str] = []
    active = layout.active()
    if active is None or layout.release(active) is None:
        # No link, or a link to an incomplete slot: fall back to a complete one, the last known active first.
        candidates = [s for s in (state.get("active"), state.get("previous"), *SLOTS) if s in SLOTS]
        complete = next((s for s in candidates if layout.release(s) is not None), None)
        if complete is not None and complete != active:
            switch(layout, complete)
            repaired.append(f"current pointed at {active or 'nothing'}; switched to complete slot {complete}")
            active = complete
    trial = state.get("trial")
    if trial and trial.get("slot") != active:
        record(state, "ota.trial_abandoned", version=trial.get("version"), slot=trial.get("slot"))
        repaired.append(f"trial of {trial.get('version')} never started (power cut before the switch)")
        state["trial"] = None
    if active is not None and state.get("active") != active:
        if state.get("active") in SLOTS:
            state["previous"] = state["active"]
        state["active"] = active
    return repaired


def begin_trial(layout: Layout, name: str, *, config_path: Path | None = None) -> dict[str, Any]:
    """Switch to a complete slot on trial: it is committed once healthy, or rolled back."""
    release = layout.release(name)
    if release is None:
        raise SlotError(f"slot {name} has no {RELEASE_NAME}: it is incomplete and cannot be started")
    with locked(layout) as state:
        reconcile(layout, state)
        from_slot = state.get("active")
        if from_slot == name:
            raise SlotError(f"slot {name} is already the active slot")
        if config_path is not None and from_slot in SLOTS:
            keep_config(layout, from_slot, config_path)
        trial = {
            "slot": name,
            "version": str(release.get("version")),
            "from_slot": from_slot,
            "from_version": layout.version(from_slot),
            "started_at": time.time(),
            "boots": 0,
        }
        state["trial"] = trial
        record(state, "ota.switched", **{k: trial[k] for k in ("slot", "version", "from_slot", "from_version")})
        save_state(layout, state)  # trial first, then the switch (see the module docstring)
        switch(layout, name)
        state["previous"], state["active"] = from_slot, name
        return dict(trial)


def commit(layout: Layout, *, health: str = "") -> dict[str, Any] | None:
    """The trial slot proved healthy: keep it. Returns the committed trial (None if there was none)."""
    with locked(layout) as state:
        reconcile(layout, state)
        trial = state.get("trial")
        if not trial:
            return None
        state["trial"] = None
        result = {
            "result": "committed",
            "version": trial["version"],
            "slot": trial["slot"],
            "from_version": trial.get("from_version"),
            "at": time.time(),
            "boots": trial.get("boots", 0),
        }
        state["last_result"] = result
        record(state, "ota.committed", **{k: v for k, v in result.items() if k not in ("result", "at")}, health=health)
        return dict(trial)


def rollback(layout: Layout, state: dict[str, Any], reason: str) -> dict[str, Any] | None:
    """Switch back to the slot the trial came from, restoring what the old version needs (config, store).
    Works on a state already held under `locked`. Returns the result, or None if there was nothing to roll back."""
    trial = state.get("trial")
    if not trial:
        return None
    back = trial.get("from_slot")
    if back not in SLOTS or layout.release(back) is None:
        # Nothing complete to go back to (the first install): keep what runs, but say so.
        state["trial"] = None
        result = {"result": "rollback-impossible", "version": trial.get("version"), "reason": reason, "at": time.time()}
        state["last_result"] = result
        record(state, "ota.rollback_failed", version=trial.get("version"), reason=reason)
        return result
    switch(layout, back)
    store_note = restore_store(layout, state, trial)
    config_note = restore_config(layout, state, back)
    state["trial"] = None
    state["active"], state["previous"] = back, trial["slot"]
    result = {
        "result": "rolled-back",
        "failed_version": trial.get("version"),
        "version": trial.get("from_version"),
        "slot": back,
        "reason": reason,
        "boots": trial.get("boots", 0),
        "store": store_note,
        "config": config_note,
        "at": time.time(),
    }
    state["last_result"] = result
    failed = state.setdefault("failed_versions", [])
    if trial.get("version") not in failed:
        failed.append(trial.get("version"))
    record(state, "ota.rolled_back", **{k: v for k, v in result.items() if k not in ("result", "at")})
    return result


# ---- what the old slot needs back: its config and a store it can open -----------------------------------------


def keep_config(layout: Layout, slot: str, config_path: Path) -> None:
    """Keep the config the old slot ran with: a newer version may migrate it forward."""
    with contextlib.suppress(OSError):
        data = Path(config_path).read_bytes()
        layout.config_copy(slot).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(layout.config_copy(slot), data, mode=0o640)


def restore_config(layout: Layout, state: dict[str, Any], slot: str) -> str:
    config_path = state.get("config_path")
    kept = layout.config_copy(slot)
    if not config_path or not kept.exists():
        return "no copy kept"
    path = Path(config_path)
    try:
        if path.read_bytes() == kept.read_bytes():
            return "unchanged"
        write_atomic(path, kept.read_bytes(), mode=path.stat().st_mode & 0o777)
    except OSError as exc:
        return f"could not restore {path}: {exc}"
    return f"restored {path}"


def snapshot_store(layout: Layout, state: dict[str, Any], version: str) -> str:
    """Copy the store (SQLite backup API: consistent even in WAL mode) before a trial version first opens it."""
    data_dir = state.get("data_dir")
    if not data_dir:
        return "no data dir known"
    source = Path(data_dir) / DB_NAME
    if not source.exists():
        return "no store yet"
    layout.snapshots.mkdir(parents=True, exist_ok=True)
    target = layout.snapshots / f"before-{_safe(version)}.sqlite3"
    tmp = target.with_suffix(".tmp")
    with (
        contextlib.closing(sqlite3.connect(source, timeout=10)) as src,
        contextlib.closing(sqlite3.connect(tmp)) as dst,
    ):
        src.backup(dst)
    _fsync_file(tmp)
    tmp.replace(target)
    for old in layout.snapshots.glob("before-*.sqlite3"):
        if old != target:
            old.unlink(missing_ok=True)
    return str(target)


def restore_store(layout: Layout, state: dict[str, Any], trial: dict[str, Any]) -> str:
    """Give the old version a store it can open. A store that only gained what older readers may ignore
    (hub/store/migrations.py: `oldest_reader`) is kept as it is, so nothing the trial wrote is lost. Otherwise
    the snapshot comes back and the newer file is kept beside it; its outbox counters carry over so that
    sequence numbers never repeat (the cloud would take a repeated one for a duplicate)."""
    data_dir = state.get("data_dir")
    back_schema = state.get("schema", {}).get(trial.get("from_slot") or "")
    if not data_dir or back_schema is None:
        return "kept (old schema unknown)"
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return "no store"
    version, oldest_reader, last_seq = _schema_info(path)
    if version <= back_schema or oldest_reader <= back_schema:
        return "kept (readable by the old version)"
    snapshot = layout.snapshots / f"before-{_safe(str(trial.get('version')))}.sqlite3"
    if not snapshot.exists():
        return f"kept: schema {version} needs a reader of {oldest_reader}, old knows {back_schema}, no snapshot"
    aside = path.with_name(f"{DB_NAME}.rolled-back-{_safe(str(trial.get('version')))}-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    shutil.copyfile(snapshot, path)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE counters SET value = max(value, ?) WHERE name = 'last_seq'", (last_seq,))
    _fsync_file(path)
    return f"restored the snapshot; the newer store is kept as {aside.name}"


def _schema_info(path: Path) -> tuple[int, int, int]:
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as conn:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        oldest = version
        with contextlib.suppress(sqlite3.DatabaseError):
            row = conn.execute("SELECT value FROM state WHERE key = 'store.oldest_reader'").fetchone()
            if row:
                oldest = int(json.loads(row[0]))
        last_seq = 0
        with contextlib.suppress(sqlite3.DatabaseError):
            row = conn.execute("SELECT value FROM counters WHERE name = 'last_seq'").fetchone()
            last_seq = int(row[0]) if row else 0
    return version, oldest, last_seq


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in text)[:64]
