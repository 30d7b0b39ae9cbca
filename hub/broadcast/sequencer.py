"""The amplifier and zone relays around a broadcast: amplifier on, warm-up, zones on, play, zones off, and the
amplifier off after an idle delay.

The sequencer never switches a relay itself: it *declares* the state it wants through the relay service
(`relays.apply` on the bus, as a command so it knows when the amplifier really switched before counting the
warm-up) and keeps that declaration, so it can declare it again when the relay service restarts. At its own
start it declares "nothing is playing": zones off, amplifier off — after a restart mid-broadcast the box
recomputes instead of trusting what the relays were last told.

Order: the zones are connected only once the amplifier has been on for `warmup_s` (no thump in the
loudspeakers), and disconnected before the amplifier goes off.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.bus import CommandError, EventBus, NoHandlerError
from hub.clock import WallClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayAnswer:
    confirmed: bool  # the relay service applied it and answered
    failed: dict[str, str] = field(default_factory=dict)  # relay -> why it did not switch
    error: str | None = None  # no answer, or the request was refused


class RelayPort(Protocol):
    async def apply(self, desired: Mapping[str, bool], reason: str) -> RelayAnswer: ...


class BusRelays:
    """Declares relay states to the relay service over the bus and waits for its answer."""

    def __init__(self, bus: EventBus, timeout_s: float = 3.0) -> None:
        self.bus = bus
        self.timeout_s = timeout_s

    async def apply(self, desired: Mapping[str, bool], reason: str) -> RelayAnswer:
        try:
            result = await self.bus.call("relays.apply", timeout=self.timeout_s, desired=dict(desired), reason=reason)
        except NoHandlerError:
            # The relay service is (re)starting: publish the declaration anyway; it is declared again when the
            # service is back (supervisor.service_running).
            self.bus.publish("relays.apply", desired=dict(desired), reason=reason)
            return RelayAnswer(False, error="the relay service is not running; declared without confirmation")
        except CommandError as exc:
            return RelayAnswer(False, error=str(exc))
        failed = result.get("failed") or {}
        return RelayAnswer(True, failed={str(k): str(v) for k, v in failed.items()})


class Sequencer:
    def __init__(
        self,
        port: RelayPort,
        clock: WallClock,
        *,
        amplifier: str = "",
        zones: Mapping[str, str] | None = None,
        warmup_s: float = 2.0,
        known_relays: Collection[str] | None = None,
    ) -> None:
        """`zones`: zone name -> relay ('' for none). `known_relays`: the relay bank's names; relays not in it are
        left out of every request (the bank refuses a whole request naming an unknown relay)."""
        self.port = port
        self.clock = clock
        self.warmup_s = warmup_s
        known = None if known_relays is None else set(known_relays)
        self.unknown: list[str] = []
        wanted = [amplifier] if amplifier else []
        wanted += [relay for relay in (zones or {}).values() if relay]
        if known is not None:
            self.unknown = [relay for relay in wanted if relay not in known]
        self.amplifier = amplifier if amplifier and amplifier not in self.unknown else ""
        self.zone_relays: dict[str, str] = {
            zone: relay for zone, relay in (zones or {}).items() if relay and relay not in self.unknown
        }
        self.amp_on = False
        self.amp_on_mono: float | None = None
        self.zones_on: frozenset[str] = frozenset()
        self.failures: dict[str, str] = {}
        self.last_error: str | None = None
        self.switches = 0

    # ---- state -----------------------------------------------------------------------------------------------

    def declared(self) -> dict[str, bool]:
        """Every relay this sequencer owns, as it wants it now."""
        out = {relay: zone in self.zones_on for zone, relay in self.zone_relays.items()}
        if self.amplifier:
            out[self.amplifier] = self.amp_on
        return out

    def ready_at(self) -> float:
        """Monotonic time from which the zones may be connected (the amplifier has warmed up)."""
        if not self.amplifier or self.amp_on_mono is None:
            return self.clock.monotonic()
        return self.amp_on_mono + self.warmup_s

    # ---- the sequence ----------------------------------------------------------------------------------------

    async def amplifier_on(self, reason: str) -> float:
        """Power the amplifier (if it is not already); returns when the warm-up ends (monotonic)."""
        if self.amplifier and not self.amp_on:
            self.amp_on = True
            await self._apply({self.amplifier: True}, reason)
            self.amp_on_mono = self.clock.monotonic()
        elif not self.amplifier:
            self.amp_on = True
        return self.ready_at()

    async def connect(self, zones: Collection[str], reason: str) -> None:
        """Connect exactly these zones (others off). Call after the warm-up."""
        wanted = frozenset(zones)
        if wanted == self.zones_on:
            return
        change = {relay: zone in wanted for zone, relay in self.zone_relays.items()}
        self.zones_on = wanted
        if change:
            await self._apply(change, reason)

    async def disconnect(self, reason: str) -> None:
        if not self.zones_on:
            return
        self.zones_on = frozenset()
        if self.zone_relays:
            await self._apply(dict.fromkeys(self.zone_relays.values(), False), reason)

    async def amplifier_off(self, reason: str) -> None:
        await self.disconnect(reason)
        if self.amp_on:
            self.amp_on = False
            self.amp_on_mono = None
            if self.amplifier:
                await self._apply({self.amplifier: False}, reason)

    async def idle(self, reason: str) -> None:
        """Declare 'nothing plays' whatever was believed: zones off, then the amplifier off."""
        self.zones_on = frozenset()
        self.amp_on = False
        self.amp_on_mono = None
        if self.zone_relays:
            await self._apply(dict.fromkeys(self.zone_relays.values(), False), reason)
        if self.amplifier:
            await self._apply({self.amplifier: False}, reason)

    async def redeclare(self, reason: str) -> None:
        """The relay service restarted (it may have missed requests): declare everything again."""
        desired = self.declared()
        # Zones first when going off, amplifier first when going on: two requests keep the order.
        zones = {relay: on for relay, on in desired.items() if relay != self.amplifier}
        amp = {self.amplifier: self.amp_on} if self.amplifier else {}
        for part in (amp, zones) if self.amp_on else (zones, amp):
            if part:
                await self._apply(part, reason)

    async def _apply(self, desired: dict[str, bool], reason: str) -> None:
        answer = await self.port.apply(desired, reason)
        self.switches += 1
        for relay in desired:
            if relay in answer.failed:
                self.failures[relay] = answer.failed[relay]
            else:
                self.failures.pop(relay, None)
        self.last_error = answer.error
        if answer.error:
            log.warning("broadcast: relays %s: %s", desired, answer.error)
        for relay, why in answer.failed.items():
            log.warning("broadcast: relay %r did not switch: %s", relay, why)

    # ---- health ----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "amplifier": self.amplifier or None,
            "amplifier_on": self.amp_on,
            "zones_on": sorted(self.zones_on),
            "declared": self.declared(),
            "failed_relays": dict(self.failures),
        }

    def problems(self) -> list[str]:
        out = [f"relay {relay!r} of [broadcast] is not configured in [relays]" for relay in self.unknown]
        out += [f"relay {relay!r} failed: {why}" for relay, why in self.failures.items()]
        if self.last_error:
            out.append(f"relays: {self.last_error}")
        return out
