"""The portal's statistics: what goes to the commune (clients per day, sessions, bytes) and nothing personal.

A device is known to the cloud only as a salted hash of its MAC: HMAC-SHA256 with a random key made on the box
at the first start and kept in the store, never sent anywhere, truncated to 16 hex digits. The day's tally is
kept in the store's state (a restart loses nothing of it) and sent as one `portal.daily` record when the local
day ends; each ended session is one `portal.session` record.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

SALT_KEY = "portal.salt"
DAY_KEY = "portal.day"
DAILY_KIND = "portal.daily"
SESSION_KIND = "portal.session"
KICK_KIND = "portal.kicked"


def new_salt() -> str:
    return secrets.token_hex(32)


def client_hash(salt: str, mac: str) -> str:
    return hmac.new(bytes.fromhex(salt), mac.lower().encode(), hashlib.sha256).hexdigest()[:16]


def mask_mac(mac: str) -> str:
    """For people's eyes (the technician page): the maker's prefix and the last byte, 'a4:5e:60:••:••:3c'."""
    parts = mac.split(":")
    if len(parts) != 6:
        return "••:••:••:••:••:••"
    return ":".join([*parts[:3], "••", "••", parts[5]])


@dataclass
class DayTally:
    day: str
    clients: dict[str, int] = field(default_factory=dict)  # client hash -> bytes today (the quota counts these)
    sessions: int = 0
    renewals: int = 0
    refused_full: int = 0
    refused_quota: int = 0
    kicked: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    peak_admitted: int = 0

    @classmethod
    def from_state(cls, value: Any, day: str) -> DayTally:
        if not isinstance(value, dict) or value.get("day") != day:
            return cls(day)
        known = {k: value[k] for k in cls.__dataclass_fields__ if k in value}
        try:
            tally = cls(**known)
        except TypeError:
            return cls(day)
        tally.clients = {str(k): int(v) for k, v in dict(tally.clients).items()}
        return tally

    def as_state(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "clients": dict(self.clients),
            "sessions": self.sessions,
            "renewals": self.renewals,
            "refused_full": self.refused_full,
            "refused_quota": self.refused_quota,
            "kicked": self.kicked,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "peak_admitted": self.peak_admitted,
        }

    def record(self, quota_bytes: int | None) -> dict[str, Any]:
        """The day as the cloud gets it: counts only."""
        return {
            "day": self.day,
            "clients": len(self.clients),
            "sessions": self.sessions,
            "renewals": self.renewals,
            "refused_full": self.refused_full,
            "refused_quota": self.refused_quota,
            "kicked": self.kicked,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "peak_admitted": self.peak_admitted,
            "clients_at_quota": sum(1 for b in self.clients.values() if quota_bytes and b >= quota_bytes),
        }

    def add_bytes(self, client: str, up: int, down: int) -> None:
        self.clients[client] = self.clients.get(client, 0) + up + down
        self.bytes_up += up
        self.bytes_down += down
