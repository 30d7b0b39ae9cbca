"""The relay bank: all relays of the box, GPIO and Modbus alike, reconciled to the state the hub declares.

Reconciling, in one pass:
- the relays to switch are those whose believed state differs from the declared one, or whose last switch
  failed (so a board that comes back is put right by the next pass, without a restart);
- relays going off switch before relays going on (the load drops before it rises), and relays on devices
  that answered last time before those on devices that did not (a silent board costs its timeouts last);
- one relay at a time, at least `stagger` after the previous one moved, across passes too;
- a device found absent is not asked again within the same pass: its other relays are marked skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from drivers.base import DriverHealth
from drivers.names import normalise_name
from drivers.relays.channel import DeviceState, RelayChannel
from drivers.relays.interface import (
    Action,
    ApplyResult,
    RelayFault,
    RelayOutcome,
    RelayState,
    UnknownRelayError,
)

log = logging.getLogger(__name__)

# Worst first: the state word health() shows for the bank is the worst of its devices'.
_SEVERITY: tuple[DeviceState, ...] = ("absent", "mismatch", "error", "unknown", "connected")


@dataclass
class _Record:
    channel: RelayChannel
    declared: bool
    believed: bool | None = None
    changed_at: datetime | None = None
    changed_monotonic: float | None = None
    reason: str | None = None
    fault: RelayFault | None = None


class RelayBank:
    """Implements `drivers.relays.interface.RelayDriver`. All methods are for one event loop."""

    def __init__(
        self,
        channels: Sequence[RelayChannel],
        *,
        stagger_s: float = 0.05,
        simulated: bool = False,
        on_close: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._records: dict[str, _Record] = {}
        for channel in channels:
            if channel.name in self._records:
                raise ValueError(f"duplicate relay name {channel.name!r}")
            self._records[channel.name] = _Record(channel, declared=channel.safe_on)
        self.stagger_s = stagger_s
        self.simulated = simulated
        self._on_close = list(on_close)
        self._lock = asyncio.Lock()
        self._safe_state_done = False
        self._last_move: float | None = None  # time.monotonic() of the last relay that may have moved
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._records)

    # -- commands -------------------------------------------------------------------------------------------

    async def safe_state(self, reason: str = "safe state") -> ApplyResult:
        """Every relay to its safe state, each one written even if believed there already.

        At boot, before anything else (the first write claims the GPIO pins, at the safe level); at shutdown,
        before `close()`.
        """
        async with self._lock:
            for record in self._records.values():
                record.declared = record.channel.safe_on
            self._safe_state_done = True
            return await self._reconcile(reason, force=True)

    async def apply(self, desired: Mapping[str, bool], reason: str) -> ApplyResult:
        """Declare the state of the relays named in `desired` (others keep their declared state) and reconcile.

        Raises UnknownRelayError (naming them) for names that are not configured, and TypeError for a value
        that is not a bool, before anything is switched. Hardware trouble never raises: see the result.
        """
        wanted = self._validated(desired)
        async with self._lock:
            await self._boot_safe_state_if_skipped(reason)
            for name, on in wanted.items():
                self._records[name].declared = on
            return await self._reconcile(reason, force=False)

    async def verify(self, reason: str = "verify") -> ApplyResult:
        """Read every relay back from the hardware and put right those that drifted (a board that lost power
        and came back all off). Meant to be called now and then, e.g. once a minute."""
        async with self._lock:
            if await self._boot_safe_state_if_skipped(reason):
                return await self._reconcile(reason, force=False)
            absent: set[str] = set()
            for record in self._records.values():
                channel = record.channel
                if channel.device.key in absent:
                    record.believed = None
                    continue
                try:
                    seen = await channel.read()
                except RelayFault as fault:
                    record.believed = None
                    record.fault = fault
                    if fault.state == "absent":
                        absent.add(channel.device.key)
                    continue
                except Exception as exc:
                    log.exception("relays: reading %s failed unexpectedly", channel.where)
                    record.believed = None
                    record.fault = RelayFault("error", f"{channel.where}: {type(exc).__name__}: {exc}")
                    continue
                if seen is not None:
                    record.fault = None  # it answered; a state that differs is put right below
                if seen is not None and seen != record.believed:
                    if record.believed is not None:
                        log.warning(
                            "relays: %r (%s) reads %s, believed %s",
                            channel.name,
                            channel.where,
                            _on_off(seen),
                            _on_off(record.believed),
                        )
                    record.believed = seen
            return await self._reconcile(reason, force=False, absent=absent)

    # -- what is known --------------------------------------------------------------------------------------

    def states(self) -> dict[str, RelayState]:
        return {name: self._state(record) for name, record in self._records.items()}

    def state(self, name: str) -> RelayState:
        record = self._records.get(normalise_name(name))
        if record is None:
            raise UnknownRelayError([name], list(self._records))
        return self._state(record)

    def pin_level(self, name: str) -> bool | None:
        """The electrical level on a GPIO relay's pin (True = high); None for Modbus or a pin not claimed yet."""
        return self.state(name).pin_level

    def device_health(self) -> dict[str, DriverHealth]:
        """One entry per physical device (a GPIO pin, a Modbus board), keyed like "GPIO17", "/dev/ttyUSB0 device 3"."""
        return {key: health for key, (_, health) in self._devices().items()}

    def health(self) -> DriverHealth:
        devices = self._devices()
        words = [word for word, _ in devices.values()]
        worst = min(words, key=_SEVERITY.index, default="connected")
        bad = sorted(
            (health for word, health in devices.values() if word != "connected"),
            key=lambda health: _SEVERITY.index(health.state),  # worst first: its error is the one to show
        )
        healthy_word = "simulated" if self.simulated else "connected"
        return DriverHealth(
            ok=not bad,
            state=healthy_word if worst == "connected" else worst,
            detail={
                "relays": len(self._records),
                "devices": {key: health.as_dict() for key, (_, health) in devices.items()},
                "faulty_relays": {name: r.fault.message for name, r in self._records.items() if r.fault},
            },
            last_error=bad[0].last_error if bad else None,
        )

    def _devices(self) -> dict[str, tuple[DeviceState, DriverHealth]]:
        grouped: dict[str, list[_Record]] = {}
        for record in self._records.values():
            grouped.setdefault(record.channel.device.key, []).append(record)
        out: dict[str, tuple[DeviceState, DriverHealth]] = {}
        for key, records in grouped.items():
            device = records[0].channel.device
            faults = [r.fault for r in records if r.fault is not None]
            word = device.state
            # The device answers, but a relay on it did not follow or was refused: the device is not healthy.
            if word in ("connected", "unknown"):
                kinds = {f.state for f in faults}
                word = "mismatch" if "mismatch" in kinds else "error" if "error" in kinds else word
            health = device.health(word)
            if faults:
                health.detail["relay_errors"] = [f.message for f in faults]
                if word in ("mismatch", "error"):
                    health.last_error = faults[-1].message
            out[key] = (word, health)
        return out

    async def close(self) -> None:
        """Release pins and ports. Does not switch anything: call safe_state() first at shutdown."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            for record in self._records.values():
                try:
                    await record.channel.close()
                except Exception:
                    log.exception("relays: closing %s failed", record.channel.where)
            for closer in self._on_close:
                try:
                    await closer()
                except Exception:
                    log.exception("relays: closing failed")

    # -- the reconciler -------------------------------------------------------------------------------------

    async def _boot_safe_state_if_skipped(self, reason: str) -> bool:
        if self._safe_state_done:
            return False
        # The hub skipped the boot step; the hardware still sees the safe state before anything else.
        log.warning("relays: %r before safe_state(); applying the safe state first", reason)
        for record in self._records.values():
            record.declared = record.channel.safe_on
        self._safe_state_done = True
        await self._reconcile("safe state (boot)", force=True)
        return True

    def _validated(self, desired: Mapping[str, bool]) -> dict[str, bool]:
        wanted: dict[str, bool] = {}
        unknown: list[str] = []
        for raw_name, on in desired.items():
            name = normalise_name(raw_name)
            if name not in self._records:
                unknown.append(raw_name)
                continue
            if not isinstance(on, bool):
                raise TypeError(f"relay {raw_name!r}: the state must be true or false, not {on!r}")
            wanted[name] = on
        if unknown:
            raise UnknownRelayError(unknown, list(self._records))
        return wanted

    async def _reconcile(self, reason: str, *, force: bool, absent: set[str] | None = None) -> ApplyResult:
        absent = set() if absent is None else absent
        order = list(self._records.values())
        # A relay whose last switch failed is unknown (None), so it is tried again here.
        pending = [r for r in order if force or r.believed is not r.declared]
        pending.sort(key=lambda r: (r.declared, r.channel.device.state in ("absent", "error")))
        outcomes: dict[str, RelayOutcome] = {}
        for record in pending:
            outcomes[record.channel.name] = await self._switch_one(record, reason, absent)
        moved = [o for o in outcomes.values() if o.action == "switched"]
        failed = [o for o in outcomes.values() if o.action in ("failed", "skipped")]
        if moved:
            log.info("relays (%s): %s", reason, ", ".join(f"{o.name!r} {_on_off(o.on)}" for o in moved))
        for outcome in failed:
            log.warning("relays (%s): %r %s: %s", reason, outcome.name, outcome.action, outcome.error)
        result = [
            outcomes.get(name) or RelayOutcome(name, "unchanged", record.declared)
            for name, record in self._records.items()
        ]
        return ApplyResult(reason, tuple(result))

    async def _switch_one(self, record: _Record, reason: str, absent: set[str]) -> RelayOutcome:
        channel = record.channel
        target = record.declared
        if channel.device.key in absent:
            record.believed = None
            record.fault = RelayFault("absent", f"{channel.where}: not tried, the device did not answer just before")
            return RelayOutcome(channel.name, "skipped", target, record.fault.message)
        await self._wait_for_stagger()
        before = record.believed
        record.believed = None  # in doubt while the command is out (cancelled, or the board half-done)
        action: Action
        try:
            moved = await channel.switch(target)
        except RelayFault as fault:
            record.fault = fault
            if fault.state == "absent":
                absent.add(channel.device.key)
            else:
                self._last_move = time.monotonic()  # a board that refused or disagreed may have clicked anyway
            return RelayOutcome(channel.name, "failed", target, fault.message)
        except Exception as exc:  # a driver bug still must not take the hub down
            log.exception("relays: switching %s failed unexpectedly", channel.where)
            record.fault = RelayFault("error", f"{channel.where}: {type(exc).__name__}: {exc}")
            self._last_move = time.monotonic()
            return RelayOutcome(channel.name, "failed", target, record.fault.message)
        if moved:
            self._last_move = time.monotonic()
        record.fault = None
        record.believed = target
        if before is not target:
            record.changed_at = datetime.now(UTC)
            record.changed_monotonic = time.monotonic()
            record.reason = reason
            action = "switched"
        else:
            action = "unchanged"
        return RelayOutcome(channel.name, action, target)

    async def _wait_for_stagger(self) -> None:
        if self._last_move is None or self.stagger_s <= 0:
            return
        delay = self._last_move + self.stagger_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _state(self, record: _Record) -> RelayState:
        channel = record.channel
        fault = record.fault
        return RelayState(
            name=channel.name,
            kind=channel.kind,
            where=channel.where,
            on=record.believed,
            declared=record.declared,
            safe_on=channel.safe_on,
            changed_at=record.changed_at,
            changed_monotonic=record.changed_monotonic,
            reason=record.reason,
            ok=fault is None and record.believed is record.declared,
            error=fault.message if fault else None,
            pin_level=channel.pin_level(),
        )


def _on_off(on: bool) -> str:
    return "on" if on else "off"
