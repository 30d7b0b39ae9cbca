"""What footage is kept: event clips for days, continuous footage for hours, and a disk budget that deletes
continuous footage first and event clips last, so evidence outlives the routine and the disk never fills
under the store.

Layout under `<data_dir>/camera/`:
    clips/<camera>/continuous/<session>-<n>.mp4   segments as the recorder writes them
    clips/<camera>/events/<event id>/*.mp4         hard links to the segments around an event (no copy)
    snapshots/<camera>/<event id>.jpg
A segment's file time is the end of the footage it holds (the recorder last wrote it then).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Policy:
    budget_bytes: int
    min_free_bytes: int
    event_max_age_s: float
    continuous_max_age_s: float


@dataclass
class Report:
    deleted_continuous: int = 0
    deleted_events: int = 0
    deleted_snapshots: int = 0
    used_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted_continuous": self.deleted_continuous,
            "deleted_events": self.deleted_events,
            "deleted_snapshots": self.deleted_snapshots,
            "used_bytes": self.used_bytes,
            "errors": self.errors[-5:],
        }


def link_event_segments(continuous: Path, event_dir: Path, start: float, end: float, segment_s: float) -> int:
    """Hard-link the segments that overlap [start, end] (wall times) into `event_dir`; returns how many."""
    linked = 0
    if not continuous.is_dir():
        return 0
    for segment in sorted(continuous.glob("*.mp4")):
        try:
            written = segment.stat().st_mtime
        except FileNotFoundError:
            continue
        if written >= start and written - segment_s <= end:
            event_dir.mkdir(parents=True, exist_ok=True)
            target = event_dir / segment.name
            if not target.exists():
                try:
                    os.link(segment, target)
                except OSError:
                    shutil.copy2(segment, target)  # another file system: a copy is the next best
            linked += 1
    return linked


class _Usage:
    """Bytes on disk, each inode once (an event clip and its continuous segment are one file)."""

    def __init__(self, paths: list[Path]) -> None:
        self.inode: dict[Path, tuple[int, int]] = {}
        self.refs: dict[tuple[int, int], int] = {}
        self.size: dict[tuple[int, int], int] = {}
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                key = (st.st_dev, st.st_ino)
                self.inode[path] = key
                self.refs[key] = self.refs.get(key, 0) + 1
                self.size[key] = st.st_size
        self.total = sum(self.size.values())

    def forget(self, path: Path) -> int:
        """The path was deleted; returns the bytes that freed (0 while another link holds the file)."""
        key = self.inode.pop(path, None)
        if key is None:
            return 0
        self.refs[key] -= 1
        if self.refs[key] > 0:
            return 0
        freed = self.size.pop(key)
        self.total -= freed
        return freed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def enforce(root: Path, policy: Policy, now: float, free_bytes: int | None = None) -> Report:
    """Apply ages and the budget under `root` (<data_dir>/camera). `free_bytes`: the disk's free space now
    (None: measured)."""
    report = Report()
    clips = root / "clips"
    continuous = sorted(clips.glob("*/continuous/*.mp4"), key=_mtime)
    events = sorted((p for p in clips.glob("*/events/*") if p.is_dir()), key=_mtime)
    snapshots = sorted(root.glob("snapshots/*/*.jpg"), key=_mtime)

    def remove(path: Path) -> bool:
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            return True
        except OSError as exc:
            report.errors.append(f"{path}: {exc}")
            return False

    for segment in [s for s in continuous if now - _mtime(s) > policy.continuous_max_age_s]:
        if remove(segment):
            report.deleted_continuous += 1
            continuous.remove(segment)
    for event in [e for e in events if now - _mtime(e) > policy.event_max_age_s]:
        if remove(event):
            report.deleted_events += 1
            events.remove(event)
    for snapshot in [s for s in snapshots if now - _mtime(s) > policy.event_max_age_s]:
        if remove(snapshot):
            report.deleted_snapshots += 1
            snapshots.remove(snapshot)

    members = {e: list(e.glob("*")) for e in events}
    usage = _Usage(continuous + [f for e in events for f in members[e]] + snapshots)
    if free_bytes is None:
        root.mkdir(parents=True, exist_ok=True)
        free_bytes = shutil.disk_usage(root).free

    def short() -> bool:
        return usage.total > policy.budget_bytes or free_bytes < policy.min_free_bytes

    # Continuous footage first, oldest first; the segment being written (the newest) last of all.
    while short() and continuous:
        segment = continuous.pop(0)
        if remove(segment):
            report.deleted_continuous += 1
            free_bytes += usage.forget(segment)
    # Then whole events, oldest first (their snapshots stay: they are small and name what happened).
    while short() and events:
        event = events.pop(0)
        if remove(event):
            report.deleted_events += 1
            free_bytes += sum(usage.forget(f) for f in members[event])
    report.used_bytes = usage.total
    return report
