"""The local SQLite store: outbox, state, and (later) schedules, logs and settings."""

from hub.store.records import OutboxRecord, OutboxStats, RecordClass
from hub.store.store import PayloadError, Store, StoreClosedError, StoreLimits, Transaction

__all__ = [
    "OutboxRecord",
    "OutboxStats",
    "PayloadError",
    "RecordClass",
    "Store",
    "StoreClosedError",
    "StoreLimits",
    "Transaction",
]
