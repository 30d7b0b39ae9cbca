"""Owns the relay bank: applies declared states, re-checks the hardware, and reports every switch.

Other services never touch relays: they publish `relays.apply` on the bus with the states they want and a
reason; this service applies them, and writes what actually switched to the outbox (the commune sees
when the amplifier or the street lights went on and why). Every minute it reads the relays back and
puts right any that drifted (a Modbus board whose power blinked comes back all off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from drivers.relays import ApplyResult, Relays, UnknownRelayError
from hub.bus import EventBus, Message
from hub.service import Service
from hub.store import RecordClass, Store

log = logging.getLogger(__name__)

VERIFY_INTERVAL_S = 60.0


class RelayService(Service):
    name = "relays"

    def __init__(self, relays: Relays, store: Store, bus: EventBus, verify_interval_s: float = VERIFY_INTERVAL_S):
        super().__init__()
        self.relays = relays
        self.store = store
        self.bus = bus
        self.verify_interval_s = verify_interval_s
        self.applied = 0
        self.rejected = 0

    async def run(self) -> None:
        requests = self.bus.subscribe("relays.apply")
        try:
            while True:
                self.beat()
                message: Message | None = None
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands together
                # with a message, and the service would then outlive its stop by a whole interval.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.verify_interval_s):
                        message = await requests.get()
                if message is None:
                    await self._record(await self.relays.bank.verify(), "verify")
                    continue
                await self.handle(message)
        finally:
            requests.close()

    async def handle(self, message: Message) -> ApplyResult | None:
        desired = message.data.get("desired")
        reason = str(message.data.get("reason") or "unspecified")
        if not isinstance(desired, dict):
            log.error("relays.apply without a 'desired' mapping: %r", message.data)
            self.rejected += 1
            return None
        try:
            result = await self.relays.bank.apply(desired, reason)
        except (UnknownRelayError, TypeError) as exc:
            log.error("relays.apply refused: %s", exc)
            self.rejected += 1
            self.bus.publish("relays.rejected", error=str(exc), reason=reason)
            return None
        self.applied += 1
        await self._record(result, reason)
        return result

    async def _record(self, result: ApplyResult, reason: str) -> None:
        switched = {o.name: o.on for o in result.outcomes if o.action == "switched"}
        failed = result.failed
        if not switched and not failed:
            return
        payload: dict[str, Any] = {"switched": switched, "failed": failed, "reason": reason}
        cls = RecordClass.OPERATIONS if not failed else RecordClass.SECURITY
        await self.store.append(cls, "relays.switched" if not failed else "relays.failed", payload)
        self.bus.publish("relays.changed", **payload)

    def health(self) -> dict[str, Any]:
        bank = self.relays.bank
        return {
            **bank.health().as_dict(),
            "relays": [state.as_dict() for state in bank.states().values()],
            "devices": {name: h.as_dict() for name, h in bank.device_health().items()},
            "simulated": self.relays.simulation is not None,
            "requests_applied": self.applied,
            "requests_rejected": self.rejected,
        }

    def problems(self) -> list[str]:
        health = self.relays.bank.health()
        if health.ok or not self.relays.bank.names:
            return []
        return [f"relays {health.state}" + (f": {health.last_error}" if health.last_error else "")]
