"""What the bank needs of one relay, whatever it is wired to, and the health of the device behind it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from drivers.base import DriverHealth
from drivers.relays.interface import RelayKind

DeviceState = Literal["unknown", "connected", "absent", "mismatch", "error"]


@dataclass
class DeviceStatus:
    """Communication health of one physical device: a GPIO pin, or one Modbus board (shared by its channels).

    It says whether the device answers; a relay that answered but disagreed is the relay's own fault, which
    the bank keeps per relay and folds in when it reports the device.
    """

    key: str
    kind: RelayKind
    state: DeviceState = "unknown"
    last_error: str | None = None
    last_ok_monotonic: float | None = None
    requests: int = 0
    failures: int = 0
    retries: int = 0  # requests that were answered only after one or more retries
    detail: dict[str, object] = field(default_factory=dict)

    def succeeded(self, retries: int = 0) -> None:
        self.requests += 1
        self.retries += 1 if retries else 0
        self.state = "connected"
        self.last_ok_monotonic = time.monotonic()

    def failed(self, state: DeviceState, message: str) -> None:
        self.requests += 1
        self.failures += 1
        # A board that answered but refused or disagreed is still on the bus.
        self.state = "absent" if state == "absent" else "connected" if state == "mismatch" else state
        self.last_error = message

    def health(self, state: DeviceState | None = None) -> DriverHealth:
        shown = state or self.state
        since = None if self.last_ok_monotonic is None else round(time.monotonic() - self.last_ok_monotonic, 1)
        return DriverHealth(
            ok=shown == "connected",
            state=shown,
            detail={
                "device": self.key,
                "kind": self.kind,
                "requests": self.requests,
                "failures": self.failures,
                "retried": self.retries,
                "last_ok_s_ago": since,
                **self.detail,
            },
            last_error=self.last_error,
        )


class RelayChannel(Protocol):
    """One relay. `switch` raises `RelayFault` (never anything else on purpose) when the relay did not end up
    as asked; it returns whether the relay may have physically moved, which is what the stagger spaces."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> RelayKind: ...

    @property
    def where(self) -> str: ...

    @property
    def safe_on(self) -> bool: ...

    @property
    def device(self) -> DeviceStatus: ...

    async def switch(self, on: bool) -> bool: ...

    async def read(self) -> bool | None: ...

    def pin_level(self) -> bool | None: ...

    async def close(self) -> None: ...
