"""What every driver family shares: settings sections with the hub's strictness, a health report, and the
stopping of a driver's background task."""

from __future__ import annotations

import asyncio
import contextlib
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


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task (a driver's background task, one of its helpers) and wait until it has finished; None (never
    started): nothing to do."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
