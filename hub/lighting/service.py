"""Switches the lighting circuits by their rules (dusk to dawn, fixed times, half-night) and by people's overrides.

The service never remembers "the last toggle": at start (after a power cut, a crash, a restart) it computes
what every circuit should be *now* and declares it — the lights come back on if it is night. Then it sleeps
until the next change (on the monotonic clock, at most `recheck_s`), and recomputes at once when the wall
clock jumps (NTP sync on a box without RTC). Relays are switched through the relay service (`relays.apply`
on the bus); every change of a circuit goes to the outbox with its cause, so the commune can count the
hours of lighting per circuit. Overrides are kept in the store's state and survive restarts until they
expire by themselves.

Bus topics (data as keyword fields):
  lighting.override         {circuit, on, until: ISO time or null (= until the next rule change), who, reason}
  lighting.cancel_override  {circuit, who, reason}
  -> lighting.override_rejected {error, request} when a request cannot be honoured
  -> lighting.changed {circuit, on, cause, reason, ...} after every change of a circuit
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Collection
from typing import Any, Literal

from drivers.names import normalise_name
from hub.bus import CommandError, EventBus, Message, Subscription
from hub.clock import Clock, SystemClock
from hub.lighting.schedule import (
    Circuit,
    Decision,
    Override,
    Place,
    circuits_from_settings,
    decide,
    decide_circuit,
    next_change,
)
from hub.lighting.settings import LightingSection
from hub.service import Service
from hub.store import RecordClass, Store, Transaction

log = logging.getLogger(__name__)

STATE_KEY = "lighting.overrides"
# Wall minus monotonic drifts by milliseconds as NTP slews; an NTP step or a manual `date` moves it by more.
JUMP_TOLERANCE_S = 2.0
MIN_SLEEP_S = 0.01

Cause = Literal["rule", "override", "restore"]
Event = tuple[str, dict[str, Any]]


class OverrideError(ValueError):
    """A manual override that cannot be honoured (unknown circuit, a time in the past, nobody named)."""


class LightingService(Service):
    name = "lighting"

    def __init__(
        self,
        settings: LightingSection,
        place: Place,
        store: Store,
        bus: EventBus,
        *,
        relay_names: Collection[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`relay_names`: the relays the bank has (`relays.bank.names`); None skips the check."""
        super().__init__()
        self.settings = settings
        self.place = place
        self.store = store
        self.bus = bus
        self.clock: Clock = clock or SystemClock(place.tz)
        self.circuits: dict[str, Circuit] = {c.name: c for c in circuits_from_settings(settings)}
        self._owner = {relay: c.name for c in self.circuits.values() for relay in c.relays}
        known = None if relay_names is None else {normalise_name(n) for n in relay_names}
        # An unknown relay is left out of the requests: the bank refuses a whole request naming one, and the
        # other lamps of the circuit must still light.
        self.unknown_relays: dict[str, list[str]] = {
            c.name: [r for r in c.relays if r not in known] for c in self.circuits.values() if known is not None
        }
        self.overrides: dict[str, Override] = {}
        self.decisions: dict[str, Decision] = {}
        self.applied: dict[str, bool] = {}
        self.relay_failures: dict[str, str] = {}
        self.last_rejected: str | None = None
        self.store_error: str | None = None
        self.clock_jumps = 0
        self.last_jump_s: float | None = None
        self.last_update: dt.datetime | None = None
        self.updates = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._due = 0.0  # monotonic time of the next recompute
        self._offset: float | None = None  # wall minus monotonic at the last check

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        for circuit, relays in self.unknown_relays.items():
            for relay in relays:
                log.warning("lighting: circuit %r names relay %r, which is not configured in [relays]", circuit, relay)

    async def run(self) -> None:
        subscriptions = [
            self.bus.subscribe("lighting.override"),
            self.bus.subscribe("lighting.cancel_override"),
            self.bus.subscribe("relays.changed"),
            self.bus.subscribe("relays.rejected"),
            # The relay service (re)started: it may have missed requests, so every circuit is declared again.
            self.bus.subscribe("supervisor.service_running"),
        ]
        withdraw = [
            self.bus.serve("lighting.override", self._override_command),
            self.bus.serve("lighting.cancel_override", self._cancel_command),
        ]
        try:
            await self.restore()
            async with asyncio.TaskGroup() as group:
                for sub in subscriptions:
                    group.create_task(self._listen(sub), name=f"lighting:{sub.prefix}")
                group.create_task(self._timer(), name="lighting:timer")
        finally:
            for sub in subscriptions:
                sub.close()
            for undo in withdraw:
                undo()

    async def _override_command(self, data: dict[str, Any]) -> dict[str, Any]:
        """The technician page's and the cloud's override: the answer says what was set, or why not."""
        until = data.get("until")
        if until is not None and not isinstance(until, str):
            raise CommandError(f"'until' must be an ISO time or null, not {until!r}")
        try:
            override = await self.set_override(
                str(data.get("circuit") or ""),
                data.get("on"),  # type: ignore[arg-type]  # checked by set_override
                self.override_until_local(until or None),
                str(data.get("who") or ""),
                str(data.get("reason") or ""),
            )
        except OverrideError as exc:
            raise CommandError(str(exc)) from None
        return {"circuit": normalise_name(str(data.get("circuit"))), **override.as_dict()}

    async def _cancel_command(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            cancelled = await self.cancel_override(
                str(data.get("circuit") or ""), str(data.get("who") or ""), str(data.get("reason") or "")
            )
        except OverrideError as exc:
            raise CommandError(str(exc)) from None
        return {"circuit": normalise_name(str(data.get("circuit"))), "cancelled": cancelled}

    async def restore(self) -> None:
        """Load overrides that are still valid and declare every circuit's state as of now."""
        events: list[Event] = []
        self.overrides = {}
        self.applied = {}
        raw = self.store.get_state(STATE_KEY, {})
        for name, data in (raw if isinstance(raw, dict) else {}).items():
            if name not in self.circuits:
                log.warning("lighting: dropping the override of %r: no such circuit any more", name)
                events.append(("lighting.override_dropped", {"circuit": name, "override": data, "why": "no circuit"}))
                continue
            try:
                self.overrides[name] = Override.from_dict(data)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("lighting: unreadable stored override of %r (%s): dropped", name, exc)
                events.append(("lighting.override_dropped", {"circuit": name, "override": data, "why": str(exc)}))
        async with self._lock:
            self._offset = self._wall_offset()
            await self._recompute("restore", events, persist=bool(events))

    # ---- overrides ---------------------------------------------------------------------------------

    async def set_override(
        self, circuit: str, on: bool, until: dt.datetime | None, who: str, reason: str = ""
    ) -> Override:
        """On or off until `until` (aware), or until the circuit's next rule change when `until` is None."""
        name = self._circuit(circuit)
        if not isinstance(on, bool):
            raise OverrideError(f"'on' must be true or false, not {on!r}")
        who = who.strip()
        if not who:
            raise OverrideError("an override must say who asked for it")
        if until is not None and until.tzinfo is None:
            raise OverrideError("'until' needs a UTC offset (or use override_until_local)")
        async with self._lock:
            now = self.clock.now()
            if until is None:
                # Resolved now into a time, so that a restart keeps the same end rather than a later change.
                change = decide_circuit(self.circuits[name], self.place, now).next_change
                override = Override(on, change, who, reason, now, until_next_change=True)
            else:
                if until <= now:
                    raise OverrideError(f"'until' {until.isoformat()} is not in the future (now {now.isoformat()})")
                override = Override(on, until.astimezone(self.place.tz), who, reason, now)
            previous = self.overrides.get(name)
            self.overrides[name] = override
            event = {
                "circuit": name,
                **override.as_dict(),
                "replaced": previous.as_dict() if previous is not None else None,
            }
            await self._recompute("override", [("lighting.override_set", event)], persist=True)
        log.info("lighting: %r overridden %s until %s by %s (%s)", name, _on_off(on), override.until, who, reason)
        return override

    async def cancel_override(self, circuit: str, who: str, reason: str = "") -> bool:
        """Back to the rules now. False if the circuit had no override."""
        name = self._circuit(circuit)
        async with self._lock:
            override = self.overrides.pop(name, None)
            if override is None:
                return False
            event = {"circuit": name, "who": who, "reason": reason, "override": override.as_dict()}
            await self._recompute("rule", [("lighting.override_cancelled", event)], persist=True)
        log.info("lighting: override of %r cancelled by %s (%s)", name, who, reason)
        return True

    def override_until_local(self, value: str | None) -> dt.datetime | None:
        """An ISO time from a request; without an offset it is local time in the hub's zone."""
        if value is None:
            return None
        try:
            parsed = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise OverrideError(f"'until' {value!r} is not an ISO date and time (e.g. 2025-06-21T22:30)") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=self.place.tz)

    def _circuit(self, circuit: str) -> str:
        name = normalise_name(circuit) if isinstance(circuit, str) else ""
        if name not in self.circuits:
            raise OverrideError(f"unknown circuit {circuit!r}; circuits: {', '.join(self.circuits) or 'none'}")
        return name

    # ---- the loop ----------------------------------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            self.beat()
            offset = self._wall_offset()
            jumped = self._offset is not None and abs(offset - self._offset) > JUMP_TOLERANCE_S
            if jumped or self.clock.monotonic() >= self._due:
                async with self._lock:
                    events: list[Event] = []
                    if jumped and self._offset is not None:
                        self.clock_jumps += 1
                        self.last_jump_s = round(offset - self._offset, 3)
                        log.warning("lighting: wall clock jumped by %+.0f s; recomputing", self.last_jump_s)
                        events.append(
                            ("lighting.clock_jumped", {"jump_s": self.last_jump_s, "now": self.clock.now().isoformat()})
                        )
                    self._offset = offset
                    await self._recompute("rule", events)
            self._offset = offset
            delay = min(self._due - self.clock.monotonic(), self.settings.jump_check_s)
            self._wake.clear()
            await self._sleep(max(delay, MIN_SLEEP_S))

    async def _sleep(self, seconds: float) -> None:
        """The clock's sleep, cut short when an override moved the next change (`_wake`)."""
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _wall_offset(self) -> float:
        return self.clock.now().timestamp() - self.clock.monotonic()

    async def _recompute(self, cause: Cause, events: list[Event], *, persist: bool = False) -> None:
        """Decide every circuit now; record and declare what changed. Call with the lock held."""
        now = self.clock.now()
        mono = self.clock.monotonic()
        for name, override in list(self.overrides.items()):
            if not override.active(now):
                del self.overrides[name]
                events.append(("lighting.override_expired", {"circuit": name, "override": override.as_dict()}))
                persist = True
        decisions = decide(self.circuits.values(), self.place, now, self.overrides)
        restore = cause == "restore"
        changed = [d for d in decisions.values() if restore or self.applied.get(d.circuit) is not d.on]
        changes = [self._change(d, now, restore) for d in changed]
        events.extend(("lighting.changed", payload) for payload in changes)
        state = {name: o.as_dict() for name, o in self.overrides.items()} if persist else None
        if events:
            await self._write(events, state)
        self.decisions = decisions
        for decision, payload in zip(changed, changes, strict=True):
            self.applied[decision.circuit] = decision.on
            self._declare(decision, " (restore)" if restore else "")
            self.bus.publish("lighting.changed", **payload)
        self.last_update = now
        self.updates += 1
        upcoming = next_change(decisions.values())
        wait = self.settings.recheck_s
        if upcoming is not None:
            wait = min(wait, max((upcoming - now).total_seconds(), MIN_SLEEP_S))
        self._due = mono + wait
        self._wake.set()

    async def _write(self, events: list[Event], state: dict[str, Any] | None) -> None:
        def write(tx: Transaction) -> None:
            for kind, payload in events:
                tx.append(RecordClass.OPERATIONS, kind, payload)
            if state is not None:
                tx.set_state(STATE_KEY, state)

        try:
            await self.store.write(write)
        except Exception as exc:
            # The lamps must not wait on the SD card: switch anyway, and say the record was lost.
            log.exception("lighting: could not record %d event(s)", len(events))
            self.store_error = f"could not record lighting changes: {exc}"
        else:
            self.store_error = None

    def _change(self, decision: Decision, now: dt.datetime, restore: bool) -> dict[str, Any]:
        cause: Cause = "restore" if restore else decision.cause
        return {
            "circuit": decision.circuit,
            "on": decision.on,
            "cause": cause,
            "reason": decision.reason,
            "rule": decision.rule,
            "override": decision.override.as_dict() if decision.override is not None else None,
            "relays": list(self.circuits[decision.circuit].relays),
            "local_time": now.astimezone(self.place.tz).isoformat(),
        }

    def _declare(self, decision: Decision, note: str = "") -> None:
        circuit = self.circuits[decision.circuit]
        unknown = set(self.unknown_relays.get(circuit.name, ()))
        relays = [r for r in circuit.relays if r not in unknown]
        if not relays:
            return
        why = decision.reason
        if decision.override is not None:
            why = f"override by {decision.override.who}" + (f": {decision.reason}" if decision.override.reason else "")
        why += note
        self.bus.publish(
            "relays.apply",
            desired=dict.fromkeys(relays, decision.on),
            reason=f"lighting {circuit.name}: {why}",
        )

    # ---- bus ---------------------------------------------------------------------------------------

    async def _listen(self, sub: Subscription) -> None:
        while True:
            message = await sub.get()
            try:
                await self.handle(message)
            except OverrideError as exc:
                log.warning("lighting: %s refused: %s", message.topic, exc)
                self.bus.publish("lighting.override_rejected", error=str(exc), request=dict(message.data))
            except Exception:
                # One malformed message must not stop the lights: log it and go on listening.
                log.exception("lighting: could not handle %s %r", message.topic, message.data)

    async def handle(self, message: Message) -> None:
        data = message.data
        if message.topic == "lighting.override":
            until = data.get("until")
            if until is not None and not isinstance(until, str):
                raise OverrideError(f"'until' must be an ISO time or null, not {until!r}")
            await self.set_override(
                str(data.get("circuit") or ""),
                data.get("on"),  # type: ignore[arg-type]  # checked by set_override: a bus message is untyped
                self.override_until_local(until),
                str(data.get("who") or ""),
                str(data.get("reason") or ""),
            )
        elif message.topic == "lighting.cancel_override":
            await self.cancel_override(
                str(data.get("circuit") or ""), str(data.get("who") or ""), str(data.get("reason") or "")
            )
        elif message.topic == "relays.changed":
            failed = data.get("failed") or {}
            switched = data.get("switched") or {}
            for relay, error in failed.items():
                if relay in self._owner:
                    self.relay_failures[relay] = str(error)
            for relay in switched:
                if relay in self._owner:
                    self.relay_failures.pop(relay, None)
                    self.last_rejected = None
        elif message.topic == "relays.rejected" and str(data.get("reason", "")).startswith("lighting"):
            self.last_rejected = str(data.get("error"))
        elif message.topic == "supervisor.service_running" and data.get("service") == "relays":
            async with self._lock:
                for decision in self.decisions.values():
                    self._declare(decision, " (relay service started)")

    # ---- health ------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        circuits = []
        for name, circuit in self.circuits.items():
            decision = self.decisions.get(name)
            override = self.overrides.get(name)
            circuits.append(
                {
                    "name": name,
                    "relays": list(circuit.relays),
                    "on": None if decision is None else decision.on,
                    "cause": None if decision is None else decision.cause,
                    "reason": None if decision is None else decision.reason,
                    "next_change": None
                    if decision is None or decision.next_change is None
                    else decision.next_change.isoformat(),
                    "override": None
                    if override is None
                    else {"on": override.on, "who": override.who, "until": _iso(override.until)},
                    "unknown_relays": self.unknown_relays.get(name, []),
                    "failed_relays": {r: e for r, e in self.relay_failures.items() if self._owner.get(r) == name},
                }
            )
        return {
            "place": {
                "latitude": self.place.latitude,
                "longitude": self.place.longitude,
                "timezone": str(self.place.tz),
            },
            "circuits": circuits,
            "last_update": _iso(self.last_update),
            "updates": self.updates,
            "clock_jumps": self.clock_jumps,
            "last_jump_s": self.last_jump_s,
        }

    def problems(self) -> list[str]:
        out = [
            f"circuit {circuit!r}: relay {relay!r} is not configured in [relays]"
            for circuit, relays in self.unknown_relays.items()
            for relay in relays
        ]
        out += [f"circuit {self._owner[r]!r}: relay {r!r} failed: {e}" for r, e in self.relay_failures.items()]
        if self.last_rejected:
            out.append(f"the relay service refused a lighting request: {self.last_rejected}")
        if self.store_error:
            out.append(self.store_error)
        return out


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _on_off(on: bool) -> str:
    return "on" if on else "off"
