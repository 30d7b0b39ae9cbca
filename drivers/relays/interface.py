"""What hub/ sees of the relays: declare the wanted state, read back what each relay is believed to be.

The hub never toggles. It declares the state each relay should be in (`apply`), and the driver reconciles:
it switches only the relays that differ (or whose last switch failed), one at a time, `stagger_ms` apart.
A failed or silent device never raises into the hub: it shows in the outcome, in `states()` and `health()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from drivers.base import DriverHealth

RelayKind = Literal["gpio", "modbus"]
Action = Literal["switched", "unchanged", "failed", "skipped"]


class UnknownRelayError(KeyError):
    """A request named relays that are not configured: a bug or a stale config in the caller, never hardware."""

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = tuple(unknown)
        self.known = tuple(known)
        super().__init__(
            f"unknown relay name(s): {', '.join(map(repr, self.unknown))}; "
            f"configured relays: {', '.join(map(repr, self.known)) or 'none'}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message and double its quotes
        return str(self.args[0])


class RelayFault(Exception):
    """A switch that did not happen as asked. `state` is the device's health word afterwards."""

    def __init__(self, state: Literal["absent", "mismatch", "error"], message: str) -> None:
        self.state = state
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class RelayState:
    name: str
    kind: RelayKind
    where: str  # "GPIO17", "/dev/ttyUSB0 device 3 channel 2": what a technician looks for on the board
    on: bool | None  # what the relay is believed to be; None until a switch or a read-back confirmed it
    declared: bool  # what the hub last asked for (the safe state until it asked anything)
    safe_on: bool
    changed_at: datetime | None  # wall clock (UTC) of the last confirmed change; may jump with NTP
    changed_monotonic: float | None  # time.monotonic() of the same change, for durations
    reason: str | None  # the reason given with the request that last changed it
    ok: bool
    error: str | None
    pin_level: bool | None = None  # GPIO only: the electrical level driven on the pin (True = high)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "where": self.where,
            "on": self.on,
            "declared": self.declared,
            "safe_state": "on" if self.safe_on else "off",
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "reason": self.reason,
            "ok": self.ok,
            "error": self.error,
            "pin_level": None if self.pin_level is None else ("high" if self.pin_level else "low"),
        }


@dataclass(frozen=True)
class RelayOutcome:
    name: str
    action: Action  # skipped: not attempted because its device was found absent earlier in the same pass
    on: bool  # the state that was declared
    error: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    reason: str
    outcomes: tuple[RelayOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(o.action in ("switched", "unchanged") for o in self.outcomes)

    @property
    def switched(self) -> list[str]:
        return [o.name for o in self.outcomes if o.action == "switched"]

    @property
    def failed(self) -> dict[str, str]:
        return {o.name: o.error or o.action for o in self.outcomes if o.action in ("failed", "skipped")}


class RelayDriver(Protocol):
    """The whole relay bank; `drivers.relays.RelayBank` is the implementation."""

    @property
    def names(self) -> tuple[str, ...]: ...

    async def safe_state(self, reason: str = "safe state") -> ApplyResult: ...

    async def apply(self, desired: Mapping[str, bool], reason: str) -> ApplyResult: ...

    async def verify(self, reason: str = "verify") -> ApplyResult: ...

    def states(self) -> dict[str, RelayState]: ...

    def health(self) -> DriverHealth: ...

    async def close(self) -> None: ...
