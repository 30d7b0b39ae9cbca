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
from hub.bus import CommandError, EventBus, Message
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
        self.last_rejection: str | None = None
        self.tests = 0
        # relay -> the state to go back to after a technician's test (kept current if an owner declares meanwhile)
        self._testing: dict[str, bool] = {}
        self._test_tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        requests = self.bus.subscribe("relays.apply")
        withdraw = self.bus.serve("relays.test", self._test_command)
        # relays.apply as a command too, for a caller that must know the relays switched (the broadcast
        # sequencer counts the amplifier's warm-up from the moment it really went on).
        withdraw_apply = self.bus.serve("relays.apply", self._apply_command)
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
            withdraw()
            withdraw_apply()
            for task in self._test_tasks:
                task.cancel()

    async def _apply_command(self, data: dict[str, Any]) -> dict[str, Any]:
        result = await self.handle(Message("relays.apply", data))
        if result is None:
            raise CommandError(self.last_rejection or "relays.apply refused")
        return {"ok": result.ok, "switched": result.switched, "failed": result.failed}

    async def handle(self, message: Message) -> ApplyResult | None:
        desired = message.data.get("desired")
        reason = str(message.data.get("reason") or "unspecified")
        if not isinstance(desired, dict):
            log.error("relays.apply without a 'desired' mapping: %r", message.data)
            self.rejected += 1
            self.last_rejection = "relays.apply needs a 'desired' mapping of relay names to true/false"
            return None
        for name, on in desired.items():
            if name in self._testing and isinstance(on, bool):
                self._testing[name] = on
                desired = {k: v for k, v in desired.items() if k != name}  # applied when the test ends
        try:
            result = await self.relays.bank.apply(desired, reason)
        except (UnknownRelayError, TypeError) as exc:
            log.error("relays.apply refused: %s", exc)
            self.rejected += 1
            self.last_rejection = str(exc)
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

    async def _test_command(self, data: dict[str, Any]) -> dict[str, Any]:
        """The technician's relay test: the relay goes to the opposite of its declared state for a few seconds,
        then back to whatever its owner declares by then (a light rule that changed meanwhile wins)."""
        name = str(data.get("relay") or "")
        seconds = data.get("seconds", 3)
        who = str(data.get("who") or "unknown")
        if name not in self.relays.bank.names:
            raise CommandError(f"unknown relay {name!r}; relays: {', '.join(self.relays.bank.names) or 'none'}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0.2 <= seconds <= 30:
            raise CommandError(f"seconds must be a number from 0.2 to 30, not {seconds!r}")
        if name in self._testing:
            raise CommandError(f"relay {name!r} is already being tested")
        declared = self.relays.bank.state(name).declared
        self._testing[name] = declared
        result = await self.relays.bank.apply({name: not declared}, f"test by {who}")
        await self._record(result, f"test by {who}")
        self.tests += 1
        task = asyncio.create_task(self._end_test(name, float(seconds), who), name=f"relay-test:{name}")
        self._test_tasks.add(task)
        task.add_done_callback(self._test_tasks.discard)
        return {"relay": name, "on": not declared, "seconds": seconds, "failed": result.failed}

    async def _end_test(self, name: str, seconds: float, who: str) -> None:
        try:
            await asyncio.sleep(seconds)
        finally:
            back = self._testing.pop(name)
            result = await self.relays.bank.apply({name: back}, f"end of test by {who}")
            await self._record(result, f"end of test by {who}")

    def health(self) -> dict[str, Any]:
        bank = self.relays.bank
        return {
            **bank.health().as_dict(),
            "relays": [state.as_dict() for state in bank.states().values()],
            "devices": {name: h.as_dict() for name, h in bank.device_health().items()},
            "simulated": self.relays.simulation is not None,
            "requests_applied": self.applied,
            "requests_rejected": self.rejected,
            "tests": self.tests,
            "testing": sorted(self._testing),
        }

    def problems(self) -> list[str]:
        health = self.relays.bank.health()
        if health.ok or not self.relays.bank.names:
            return []
        return [f"relays {health.state}" + (f": {health.last_error}" if health.last_error else "")]
