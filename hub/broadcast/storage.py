"""Programmes and schedules in the store, and what each schedule has already decided.

A schedule row keeps `since` (occurrences at or before it are not this schedule's business: it did not exist
yet, or not in this form) and `last_occurrence` (the newest occurrence decided: played or logged missed, kept
across edits). Editing a schedule moves `since` to the time of the edit: moving 05:00 to 05:30 at 06:00 does
not log a 05:30 that never was as missed. Both together are the schedule's watermark: nothing at or before
it plays, whatever the wall clock does afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Literal, cast

from hub.broadcast.log import utc_iso
from hub.broadcast.model import ModelError, Programme, Schedule, parse_programme, parse_schedule
from hub.store import Store, Transaction

log = logging.getLogger(__name__)

Origin = Literal["api", "config"]


@dataclass
class StoredProgramme:
    programme: Programme
    origin: Origin


@dataclass
class StoredSchedule:
    schedule: Schedule
    origin: Origin
    since: dt.datetime  # aware
    last_occurrence: dt.datetime | None  # aware

    @property
    def watermark(self) -> dt.datetime:
        return max(self.since, self.last_occurrence) if self.last_occurrence else self.since


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


class Catalogue:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self) -> tuple[dict[str, StoredProgramme], dict[str, StoredSchedule], list[str]]:
        """Everything stored; rows that no longer validate are skipped and named in the third list."""

        def read(tx: Transaction) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str, str, str | None]]]:
            programmes = tx.conn.execute("SELECT id, body, origin FROM broadcast_programmes ORDER BY id").fetchall()
            schedules = tx.conn.execute(
                "SELECT id, body, origin, since, last_occurrence FROM broadcast_schedules ORDER BY id"
            ).fetchall()
            return programmes, schedules

        raw_programmes, raw_schedules = await self.store.write(read)
        problems: list[str] = []
        programmes: dict[str, StoredProgramme] = {}
        for pid, body, origin in raw_programmes:
            try:
                programmes[pid] = StoredProgramme(parse_programme(json.loads(body)), cast(Origin, origin))
            except (ModelError, ValueError) as exc:
                problems.append(f"stored programme {pid!r} is not valid any more and is left out: {exc}")
        schedules: dict[str, StoredSchedule] = {}
        for sid, body, origin, since, last in raw_schedules:
            try:
                schedule = parse_schedule(json.loads(body))
                since_at = _parse_time(since)
                assert since_at is not None
                schedules[sid] = StoredSchedule(schedule, cast(Origin, origin), since_at, _parse_time(last))
            except (ModelError, ValueError) as exc:
                problems.append(f"stored schedule {sid!r} is not valid any more and is left out: {exc}")
        for problem in problems:
            log.error("broadcast: %s", problem)
        return programmes, schedules, problems

    async def put_programme(self, programme: Programme, origin: Origin) -> None:
        body = json.dumps(programme.as_json(), ensure_ascii=False)
        now = dt.datetime.now(dt.UTC).timestamp()

        def write(tx: Transaction) -> None:
            tx.conn.execute(
                "INSERT INTO broadcast_programmes (id, body, origin, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body, origin = excluded.origin, "
                "updated_at = excluded.updated_at",
                (programme.id, body, origin, now),
            )

        await self.store.write(write)

    async def delete_programme(self, programme_id: str) -> None:
        await self.store.write(
            lambda tx: tx.conn.execute("DELETE FROM broadcast_programmes WHERE id = ?", (programme_id,))
        )

    async def put_schedule(self, schedule: Schedule, origin: Origin, since: dt.datetime) -> StoredSchedule:
        """Insert or update with `since` (now; kept if nothing changed), keeping `last_occurrence`."""
        body = json.dumps(schedule.as_json(), ensure_ascii=False)
        now = dt.datetime.now(dt.UTC).timestamp()

        def write(tx: Transaction) -> tuple[str, str | None]:
            tx.conn.execute(
                "INSERT INTO broadcast_schedules (id, programme_id, body, origin, since, last_occurrence, updated_at) "
                "VALUES (?, ?, ?, ?, ?, NULL, ?) ON CONFLICT (id) DO UPDATE SET programme_id = excluded.programme_id, "
                "body = excluded.body, origin = excluded.origin, updated_at = excluded.updated_at, "
                # the same schedule again (hub.toml at every start): it keeps its history of missed occurrences
                "since = CASE WHEN broadcast_schedules.body = excluded.body THEN broadcast_schedules.since "
                "ELSE excluded.since END",
                (schedule.id, schedule.programme_id, body, origin, utc_iso(since), now),
            )
            row = tx.conn.execute(
                "SELECT since, last_occurrence FROM broadcast_schedules WHERE id = ?", (schedule.id,)
            ).fetchone()
            return row[0], row[1]

        stored_since, last = await self.store.write(write)
        since_at = _parse_time(stored_since)
        assert since_at is not None
        return StoredSchedule(schedule, origin, since_at, _parse_time(last))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.store.write(
            lambda tx: tx.conn.execute("DELETE FROM broadcast_schedules WHERE id = ?", (schedule_id,))
        )
