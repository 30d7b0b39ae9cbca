"""What goes into the outbox: priority classes and records."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class RecordClass(enum.IntEnum):
    """Priority classes, lowest first: when the outbox is full the lowest class is evicted first."""

    TELEMETRY = 0
    OPERATIONS = 1
    SECURITY = 2
    SAFETY = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | RecordClass) -> RecordClass:
        if isinstance(value, RecordClass):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.upper()]
        except KeyError:
            names = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown record class {value!r}; expected one of {names}") from None


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    seq: int
    cls: RecordClass
    kind: str
    created_at: float
    boot_id: str
    uptime: float
    payload_json: str

    def to_wire(self) -> dict[str, Any]:
        """The record as docs/protocol.md describes it (payload kept as already-encoded JSON by the caller)."""
        return {
            "seq": self.seq,
            "class": self.cls.label,
            "kind": self.kind,
            "created_at": self.created_at,
            "boot_id": self.boot_id,
            "uptime": self.uptime,
        }


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    pending_bytes: int
    pending_by_class: dict[str, int]
    oldest_pending_at: float | None
    last_seq: int
    acked_seq: int
    delivered: int
    dropped: dict[str, int]
    max_records: int
    max_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "pending_bytes": self.pending_bytes,
            "pending_by_class": self.pending_by_class,
            "oldest_pending_at": self.oldest_pending_at,
            "last_seq": self.last_seq,
            "acked_seq": self.acked_seq,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "max_records": self.max_records,
            "max_bytes": self.max_bytes,
        }
