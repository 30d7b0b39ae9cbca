"""What every driver family shares: settings sections with the hub's strictness, and a health report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


class DriverSettings(BaseModel):
    """Base of every driver's config section (a table in hub.toml). Same rules as the hub's own sections:
    TOML types are not coerced, unknown keys are refused as typos, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass
class DriverHealth:
    """A device's health as the technician page, `hub doctor` and the cloud show it."""

    ok: bool
    state: str  # one short word: "connected", "absent", "resyncing", "simulated", ...
    detail: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "state": self.state, "last_error": self.last_error, **self.detail}
