"""The broadcast log: one row per broadcast in the store, from queued to its outcome, and each outcome in the
outbox for the commune's records.

Outcomes: played, interrupted (cut by an emergency, or the hub stopped mid-broadcast), failed (and why),
missed (the box was off or the clock jumped over it), blocked (quiet hours), duplicate (the same alert within
the window), expired (a CAP alert past its expiry), cancelled (stopped, or a CAP Cancel/Update), ignored
(a CAP message that is not an actual alert). While it lives a row says queued or playing; a row still saying
so when the hub starts was cut by a crash or a power cut, and is closed as interrupted (or missed, if it never
started) by `recover`.

Writes are handed to the store's writer without waiting (an emergency alert must not wait for an fsync);
the writer keeps their order. `flush()` waits for everything handed so far.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from hub.broadcast.arbiter import Job
from hub.broadcast.model import Level
from hub.store import RecordClass, Store, StoreClosedError, Transaction

log = logging.getLogger(__name__)

OUTBOX_KIND = "broadcast.log"
SUMMARY_KIND = "broadcast.daily_summary"
LIVE_OUTCOMES = ("queued", "playing")
FINAL_OUTCOMES = (
    "played",
    "interrupted",
    "failed",
    "missed",
    "blocked",
    "duplicate",
    "expired",
    "cancelled",
    "ignored",
)

_UPSERT = """
INSERT INTO broadcast_log (job_id, origin, level, title, programme_id, schedule_id, zones, planned_at, started_at,
                           ended_at, outcome, reason, dedupe_key, detail, updated_at)
VALUES (:job_id, :origin, :level, :title, :programme_id, :schedule_id, :zones, :planned_at, :started_at, :ended_at,
        :outcome, :reason, :dedupe_key, :detail, :updated_at)
ON CONFLICT (job_id) DO UPDATE SET
    zones = excluded.zones, started_at = excluded.started_at, ended_at = excluded.ended_at,
    outcome = excluded.outcome, reason = excluded.reason, detail = excluded.detail, updated_at = excluded.updated_at
"""
_COLUMNS = (
    "job_id, origin, level, title, programme_id, schedule_id, zones, planned_at, started_at, ended_at, outcome, "
    "reason, dedupe_key, detail, updated_at"
)


def _ts(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _iso(value: float | None, tz: dt.tzinfo) -> str | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz).isoformat(timespec="milliseconds")


def utc_iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def record_class(level: str) -> RecordClass:
    """Emergency broadcasts are safety records: the last to be evicted from a full outbox."""
    return RecordClass.SAFETY if level == Level.EMERGENCY.label else RecordClass.OPERATIONS


class BroadcastLog:
    def __init__(self, store: Store, tz: dt.tzinfo) -> None:
        self.store = store
        self.tz = tz
        self.write_errors = 0
        self.last_error: str | None = None

    # ---- rows ------------------------------------------------------------------------------------------------

    def row(self, job: Job, outcome: str, reason: str | None, ended_at: dt.datetime | None) -> dict[str, Any]:
        detail = {
            "items": job.results,
            "interruptions": job.interruptions,
            "late": job.late,
            "volume": job.volume,
            "item_count": len(job.items),
            "alert": job.alert_key,
            **job.detail,
        }
        return {
            "job_id": job.id,
            "origin": job.origin,
            "level": job.level.label,
            "title": job.title,
            "programme_id": job.programme_id,
            "schedule_id": job.schedule_id,
            "zones": json.dumps(list(job.zones), ensure_ascii=False),
            "planned_at": _ts(job.planned_at),
            "started_at": _ts(job.started_at),
            "ended_at": _ts(ended_at),
            "outcome": outcome,
            "reason": reason,
            "dedupe_key": job.dedupe_key,
            "detail": json.dumps(detail, ensure_ascii=False, default=str),
            "updated_at": dt.datetime.now(dt.UTC).timestamp(),
        }

    def entry(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row as the outbox, the API and health show it: local ISO times, JSON decoded."""
        detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else dict(row["detail"])
        started, ended = row["started_at"], row["ended_at"]
        return {
            "job_id": row["job_id"],
            "origin": row["origin"],
            "level": row["level"],
            "title": row["title"],
            "programme_id": row["programme_id"],
            "schedule_id": row["schedule_id"],
            "zones": json.loads(row["zones"]) if isinstance(row["zones"], str) else row["zones"],
            "planned_at": _iso(row["planned_at"], self.tz),
            "started_at": _iso(started, self.tz),
            "ended_at": _iso(ended, self.tz),
            "duration_s": round(ended - started, 3) if started is not None and ended is not None else None,
            "outcome": row["outcome"],
            "reason": row["reason"],
            "dedupe_key": row["dedupe_key"],
            **detail,
        }

    # ---- writing ---------------------------------------------------------------------------------------------

    def _submit(self, fn: Callable[[Transaction], Any]) -> Future[Any] | None:
        try:
            future = self.store.submit(fn)
        except StoreClosedError as exc:
            self._failed(exc)
            return None
        future.add_done_callback(self._check)
        return future

    def _check(self, future: Future[Any]) -> None:
        exc = future.exception()
        if exc is not None:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.write_errors += 1
        self.last_error = f"could not write the broadcast log: {exc}"
        log.error("broadcast: %s", self.last_error)

    def queued(self, job: Job, decided: tuple[str, dt.datetime] | None = None) -> None:
        """The job is in the queue (a scheduled occurrence is decided: `decided` = (schedule id, occurrence))."""
        row = self.row(job, "queued", None, None)

        def write(tx: Transaction) -> None:
            tx.conn.execute(_UPSERT, row)
            if decided is not None:
                _mark_decided(tx, *decided)

        self._submit(write)

    def playing(self, job: Job) -> None:
        row = self.row(job, "playing", None, None)
        self._submit(lambda tx: tx.conn.execute(_UPSERT, row))

    def final(
        self,
        job: Job,
        outcome: str,
        reason: str | None,
        ended_at: dt.datetime | None,
        decided: tuple[str, dt.datetime] | None = None,
    ) -> dict[str, Any]:
        """The outcome: the row, and the same entry in the outbox, in one transaction."""
        row = self.row(job, outcome, reason, ended_at)
        entry = self.entry(row)
        cls = record_class(row["level"])

        def write(tx: Transaction) -> None:
            tx.conn.execute(_UPSERT, row)
            tx.append(cls, OUTBOX_KIND, entry)
            if decided is not None:
                _mark_decided(tx, *decided)

        self._submit(write)
        return entry

    async def flush(self) -> None:
        """Wait until everything handed to the store so far is committed."""
        await self.store.write(lambda tx: None)

    # ---- reading ---------------------------------------------------------------------------------------------

    async def _rows(self, where: str, params: tuple[Any, ...] = (), suffix: str = "") -> list[dict[str, Any]]:
        names = [c.strip() for c in _COLUMNS.split(",")]

        def read(tx: Transaction) -> list[dict[str, Any]]:
            cursor = tx.conn.execute(f"SELECT {_COLUMNS} FROM broadcast_log WHERE {where} {suffix}", params)  # noqa: S608 - our own clauses
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

        return await self.store.write(read)

    async def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = await self._rows("1", (), f"ORDER BY updated_at DESC, id DESC LIMIT {int(limit)}")
        return [self.entry(r) for r in rows]

    async def between(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        """Entries that started (or were planned, if they never started) in [start, end)."""
        rows = await self._rows(
            "coalesce(started_at, planned_at, updated_at) >= ? AND coalesce(started_at, planned_at, updated_at) < ?",
            (start.timestamp(), end.timestamp()),
            "ORDER BY id",
        )
        return [self.entry(r) for r in rows]

    async def dedupe_keys_since(self, since: dt.datetime) -> dict[str, float]:
        """Keys of broadcasts admitted after `since` (wall): a restart must not replay an alert within the window."""
        rows = await self._rows(
            "dedupe_key IS NOT NULL AND outcome NOT IN ('duplicate', 'blocked', 'ignored') AND updated_at >= ?",
            (since.timestamp(),),
        )
        out: dict[str, float] = {}
        for row in rows:
            out[row["dedupe_key"]] = max(out.get(row["dedupe_key"], 0.0), row["updated_at"])
        return out

    async def counts(self) -> dict[str, int]:
        def read(tx: Transaction) -> dict[str, int]:
            return {o: n for o, n in tx.conn.execute("SELECT outcome, count(*) FROM broadcast_log GROUP BY outcome")}

        return await self.store.write(read)

    async def recover(self, now: dt.datetime) -> list[dict[str, Any]]:
        """Close the rows a crash or power cut left open: playing -> interrupted, queued -> missed."""
        names = [c.strip() for c in _COLUMNS.split(",")]
        stamp = now.timestamp()

        def fix(tx: Transaction) -> list[dict[str, Any]]:
            cursor = tx.conn.execute(
                f"SELECT {_COLUMNS} FROM broadcast_log WHERE outcome IN ('queued', 'playing') ORDER BY id"  # noqa: S608
            )
            closed = []
            for values in cursor.fetchall():
                row = dict(zip(names, values, strict=True))
                if row["outcome"] == "playing":
                    row["outcome"] = "interrupted"
                    row["reason"] = "the hub stopped mid-broadcast (crash, kill or power cut); found at restart"
                    detail = json.loads(row["detail"])
                    # The end is not known: the last moment the row was written is the best bound.
                    row["ended_at"] = row["updated_at"]
                    row["detail"] = json.dumps({**detail, "end_unknown": True}, ensure_ascii=False)
                else:
                    row["outcome"] = "missed"
                    row["reason"] = "the hub stopped before it started (crash, kill or power cut); found at restart"
                row["updated_at"] = stamp
                tx.conn.execute(_UPSERT, row)
                entry = self.entry(row)
                tx.append(record_class(row["level"]), OUTBOX_KIND, entry)
                closed.append(entry)
            return closed

        return await self.store.write(fix)

    async def summary(self, day: dt.date) -> dict[str, Any]:
        """Minutes broadcast per zone and outcomes on a local day (the daily summary for the commune)."""
        start = dt.datetime.combine(day, dt.time(0), tzinfo=self.tz)
        entries = await self.between(start, start + dt.timedelta(days=1))
        minutes: dict[str, float] = {}
        outcomes: dict[str, int] = {}
        for entry in entries:
            outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
            seconds = sum(float(item.get("played_s") or 0.0) for item in entry.get("items") or [])
            for zone in entry["zones"]:
                minutes[zone] = minutes.get(zone, 0.0) + seconds / 60.0
        return {
            "date": day.isoformat(),
            "minutes_per_zone": {zone: round(m, 2) for zone, m in sorted(minutes.items())},
            "outcomes": outcomes,
            "broadcasts": len(entries),
        }

    async def write_summary(self, summary: dict[str, Any], state_key: str) -> None:
        def write(tx: Transaction) -> None:
            tx.append(RecordClass.OPERATIONS, SUMMARY_KIND, summary)
            tx.set_state(state_key, summary["date"])

        await self.store.write(write)


def _mark_decided(tx: Transaction, schedule_id: str, occurrence: dt.datetime) -> None:
    # Never backwards: with two occurrences decided in one pass, the newer one stays. Stored in UTC, so that the
    # text compares as the time does.
    stamp = utc_iso(occurrence)
    tx.conn.execute(
        "UPDATE broadcast_schedules SET last_occurrence = ? WHERE id = ? "
        "AND (last_occurrence IS NULL OR last_occurrence < ?)",
        (stamp, schedule_id, stamp),
    )
