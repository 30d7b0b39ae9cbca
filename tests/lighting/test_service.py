"""The lighting service driven by a manual clock, with a real store and a real event bus: what it asks the relay
service to do (`relays.apply`) and what it writes to the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from drivers.relays import RelaysSettings, build
from hub.bus import EventBus, Message
from hub.lighting.service import STATE_KEY, LightingService
from hub.lighting.settings import LightingSection
from hub.relays.service import RelayService
from hub.store import Store
from tests.lighting.manual_clock import ManualClock
from tests.lighting.village import (
    HALF,
    HALL,
    PLACE,
    RELAYS,
    SATURDAY,
    SOCKETS,
    STREET,
    lighting,
    local,
    street_off,
    street_on,
)

SUNDAY = SATURDAY + dt.timedelta(days=1)
STREET_RELAYS = ("đèn đường 1", "đèn đường 3")
HALF_RELAYS = ("đèn đường 2", "đèn đường 4")


class Harness:
    """One run of the service (one "boot"), on a store that outlives it."""

    def __init__(
        self,
        store: Store,
        start: dt.datetime,
        section: LightingSection | None = None,
        relay_names: list[str] | None = RELAYS,
    ) -> None:
        self.store = store
        self.bus = EventBus()
        self.clock = ManualClock(start)
        self.applies = self.bus.subscribe("relays.apply", maxsize=10_000)
        self.rejected = self.bus.subscribe("lighting.override_rejected")
        self.service = LightingService(
            section or lighting(), PLACE, store, self.bus, relay_names=relay_names, clock=self.clock
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        await self.service.start()
        self.task = asyncio.create_task(self.service.run())
        await self.clock.settle()
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def drain(self) -> list[tuple[dict[str, bool], str]]:
        out = []
        while not self.applies.queue.empty():
            message = self.applies.queue.get_nowait()
            out.append((message.data["desired"], message.data["reason"]))
        return out

    async def next_applies(self) -> list[tuple[dict[str, bool], str]]:
        """What was asked of the relays after something this test cannot step through (a bus request)."""
        await wait_until(lambda: not self.applies.queue.empty())
        await self.clock.settle()
        return self.drain()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


def records(store: Store, kind: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    out = [(r.kind, json.loads(r.payload_json)) for r in store.pending(10_000)]
    return [(k, p) for k, p in out if k.startswith("lighting.") and (kind is None or k == kind)]


def changes(store: Store, circuit: str) -> list[dict[str, Any]]:
    return [p for _, p in records(store, "lighting.changed") if p["circuit"] == circuit]


def switched(applies: list[tuple[dict[str, bool], str]], relays: tuple[str, ...]) -> list[tuple[bool, str]]:
    return [(next(iter(d.values())), reason) for d, reason in applies if tuple(d) == relays]


def at_local(payload: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(payload["local_time"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path)
    yield s
    s.close()


async def test_street_lights_follow_sunset_half_night_and_sunrise(store: Store) -> None:
    async with Harness(store, local(SATURDAY, 17)) as hub:
        # At start every circuit is declared as of now, whatever the relays were left at.
        assert hub.drain() == [
            ({"đèn đường 1": False, "đèn đường 3": False}, f"lighting {STREET}: dusk_dawn (restore)"),
            ({"đèn đường 2": False, "đèn đường 4": False}, f"lighting {HALF}: dusk_dawn (restore)"),
            ({"đèn hội trường": False}, f"lighting {HALL}: no rule (restore)"),
            ({"ổ cắm đài": True, "ổ cắm tivi": True}, f"lighting {SOCKETS}: đài và tivi (restore)"),
        ]
        on_at = street_on(SATURDAY)
        await hub.clock.advance_to(on_at - dt.timedelta(seconds=30))
        applies = hub.drain()
        assert switched(applies, STREET_RELAYS) == []
        await hub.clock.advance(60)
        applies += hub.drain()
        assert switched(applies, STREET_RELAYS) == [(True, f"lighting {STREET}: dusk_dawn")]
        lit = changes(store, STREET)[-1]
        assert (lit["on"], lit["cause"], lit["reason"]) == (True, "rule", "dusk_dawn")
        assert on_at <= at_local(lit) < on_at + dt.timedelta(minutes=1)
        health = {c["name"]: c for c in hub.service.health()["circuits"]}
        assert health[STREET]["next_change"] == street_off(SATURDAY).isoformat()

        await hub.clock.advance_to(local(SATURDAY, 23, 0, 30))
        applies += hub.drain()
        assert switched(applies, HALF_RELAYS) == [
            (True, f"lighting {HALF}: dusk_dawn"),
            (False, f"lighting {HALF}: nửa đêm"),
        ]
        await hub.clock.advance_to(local(SUNDAY, 4, 30, 30))
        assert switched(hub.drain(), HALF_RELAYS) == [(True, f"lighting {HALF}: dusk_dawn")]
        await hub.clock.advance_to(street_off(SATURDAY) + dt.timedelta(seconds=30))
        applies = hub.drain()
        assert switched(applies, STREET_RELAYS) == [(False, f"lighting {STREET}: dusk_dawn")]
        assert switched(applies, HALF_RELAYS) == [(False, f"lighting {HALF}: dusk_dawn")]

    # What the commune computes from the outbox: hours of light per circuit.
    def lit_seconds(circuit: str) -> float:
        total, since = 0.0, None
        for change in changes(store, circuit):
            if change["on"] and since is None:
                since = at_local(change)
            elif not change["on"] and since is not None:
                total += (at_local(change) - since).total_seconds()
                since = None
        return total

    night = (street_off(SATURDAY) - street_on(SATURDAY)).total_seconds()
    assert lit_seconds(STREET) == pytest.approx(night, abs=1)
    cut = (local(SUNDAY, 4, 30) - local(SATURDAY, 23)).total_seconds()
    assert lit_seconds(HALF) == pytest.approx(night - cut, abs=1)
    assert [(c["on"], c["cause"]) for c in changes(store, HALF)] == [
        (False, "restore"),
        (True, "rule"),
        (False, "rule"),
        (True, "rule"),
        (False, "rule"),
    ]


@pytest.mark.parametrize(("before", "after", "on"), [(10, 22, True), (22, 10, False)])
async def test_restart_recomputes_now_and_trusts_no_last_toggle(
    tmp_path: Path, before: int, after: int, on: bool
) -> None:
    store = Store.open(tmp_path)
    async with Harness(store, local(SATURDAY, before)) as hub:
        assert switched(hub.drain(), STREET_RELAYS) == [(not on, f"lighting {STREET}: dusk_dawn (restore)")]
    store.close()  # power cut; the box comes back hours later
    store = Store.open(tmp_path)
    try:
        async with Harness(store, local(SUNDAY, after)) as hub:
            assert switched(hub.drain(), STREET_RELAYS) == [(on, f"lighting {STREET}: dusk_dawn (restore)")]
            last = changes(store, STREET)[-1]
            assert (last["on"], last["cause"], last["rule"]) == (on, "restore", "dusk_dawn")
    finally:
        store.close()


async def test_override_until_a_time_over_the_bus_then_back_to_the_rule(store: Store) -> None:
    async with Harness(store, local(SATURDAY, 17)) as hub:
        hub.drain()
        hub.bus.publish(
            "lighting.override",
            circuit=HALL,
            on=True,
            until="2025-06-21T17:30",  # no offset: local time
            who="anh Hùng (trưởng thôn)",
            reason="họp thôn",
        )
        assert await hub.next_applies() == [
            ({"đèn hội trường": True}, f"lighting {HALL}: override by anh Hùng (trưởng thôn): họp thôn")
        ]
        [(_, asked)] = records(store, "lighting.override_set")
        assert (asked["circuit"], asked["on"], asked["who"], asked["reason"]) == (
            HALL,
            True,
            "anh Hùng (trưởng thôn)",
            "họp thôn",
        )
        assert asked["until"] == "2025-06-21T17:30:00+07:00"
        assert changes(store, HALL)[-1]["cause"] == "override"
        health = {c["name"]: c for c in hub.service.health()["circuits"]}
        assert health[HALL]["override"] == {"on": True, "who": "anh Hùng (trưởng thôn)", "until": asked["until"]}
        assert store.get_state(STATE_KEY)[HALL]["who"] == "anh Hùng (trưởng thôn)"

        await hub.clock.advance_to(local(SATURDAY, 17, 29, 59))
        assert hub.drain() == []
        await hub.clock.advance(2)
        assert hub.drain() == [({"đèn hội trường": False}, f"lighting {HALL}: no rule")]
        [(_, expired)] = records(store, "lighting.override_expired")
        assert expired["circuit"] == HALL
        back = changes(store, HALL)[-1]
        assert (back["on"], back["cause"], at_local(back)) == (False, "rule", local(SATURDAY, 17, 30))
        assert store.get_state(STATE_KEY) == {}
        # And the weekend rule still runs the hall at 18:30.
        await hub.clock.advance_to(local(SATURDAY, 18, 31))
        assert hub.drain() == [({"đèn hội trường": True}, f"lighting {HALL}: sinh hoạt cuối tuần")]


async def test_override_until_the_next_rule_change(store: Store) -> None:
    async with Harness(store, local(SATURDAY, 17)) as hub:
        hub.drain()
        override = await hub.service.set_override(STREET, True, None, "chị Lan", "kiểm tra bóng đèn")
        assert override.until == street_on(SATURDAY)
        assert override.until_next_change
        assert switched(hub.drain(), STREET_RELAYS) == [
            (True, f"lighting {STREET}: override by chị Lan: kiểm tra bóng đèn")
        ]
        await hub.clock.advance_to(street_on(SATURDAY) + dt.timedelta(minutes=5))
        assert switched(hub.drain(), STREET_RELAYS) == []  # the rule takes over with the lamps already on
        assert [k for k, p in records(store) if p.get("circuit") == STREET] == [
            "lighting.changed",  # restore: off
            "lighting.override_set",
            "lighting.changed",  # on, by the override
            "lighting.override_expired",  # and no change: the rule says on as well
        ]
        health = {c["name"]: c for c in hub.service.health()["circuits"]}
        assert (health[STREET]["on"], health[STREET]["cause"], health[STREET]["override"]) == (True, "rule", None)


async def test_override_survives_a_restart_and_expires_by_itself(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    async with Harness(store, local(SATURDAY, 12)) as hub:
        await hub.service.set_override(SOCKETS, False, local(SATURDAY, 14), "kỹ thuật viên Minh", "thay ổ cắm")
        await hub.service.set_override(HALL, True, local(SATURDAY, 20), "kỹ thuật viên Minh", "thay bóng")
    store.close()

    store = Store.open(tmp_path)
    async with Harness(store, local(SATURDAY, 13)) as hub:
        applies = hub.drain()
        assert switched(applies, ("ổ cắm đài", "ổ cắm tivi")) == [
            (False, f"lighting {SOCKETS}: override by kỹ thuật viên Minh: thay ổ cắm (restore)")
        ]
        restored = changes(store, SOCKETS)[-1]
        assert (restored["on"], restored["cause"], restored["override"]["who"]) == (
            False,
            "restore",
            "kỹ thuật viên Minh",
        )
        await hub.clock.advance_to(local(SATURDAY, 14, 0, 1))
        assert switched(hub.drain(), ("ổ cắm đài", "ổ cắm tivi")) == [(True, f"lighting {SOCKETS}: đài và tivi")]
        assert set(store.get_state(STATE_KEY)) == {HALL}
    store.close()

    # The box was off when the hall's override ran out: it is dropped and recorded at the next start.
    store = Store.open(tmp_path)
    try:
        async with Harness(store, local(SATURDAY, 21)) as hub:
            assert switched(hub.drain(), ("đèn hội trường",)) == [
                (True, f"lighting {HALL}: sinh hoạt cuối tuần (restore)")
            ]
            assert [p["circuit"] for _, p in records(store, "lighting.override_expired")] == [SOCKETS, HALL]
            assert store.get_state(STATE_KEY) == {}
    finally:
        store.close()


async def test_a_wall_clock_jump_recomputes_at_once(store: Store) -> None:
    section = lighting(recheck_s=600.0, jump_check_s=5.0)
    async with Harness(store, local(SATURDAY, 13), section) as hub:
        hub.drain()
        hub.clock.jump(dt.timedelta(hours=6))  # NTP sync on a box without RTC: 13:00 was wrong, it is 19:00
        await hub.clock.advance(5)
        assert switched(hub.drain(), STREET_RELAYS) == [(True, f"lighting {STREET}: dusk_dawn")]
        lit = changes(store, STREET)[-1]
        # Not at the next 10-minute recheck: within the 5 s jump check.
        assert at_local(lit) <= local(SATURDAY, 19, 0, 5)
        [(_, jump)] = records(store, "lighting.clock_jumped")
        assert jump["jump_s"] == pytest.approx(6 * 3600, abs=1)
        hub.clock.jump(dt.timedelta(hours=-6))  # and back again
        await hub.clock.advance(5)
        assert switched(hub.drain(), STREET_RELAYS) == [(False, f"lighting {STREET}: dusk_dawn")]
        assert hub.service.health()["clock_jumps"] == 2


async def test_cancel_override_over_the_bus(store: Store) -> None:
    async with Harness(store, local(SATURDAY, 20)) as hub:
        hub.drain()
        hub.bus.publish(
            "lighting.override", circuit=STREET, on=False, until=None, who="công an xã", reason="sự cố điện"
        )
        assert switched(await hub.next_applies(), STREET_RELAYS) == [
            (False, f"lighting {STREET}: override by công an xã: sự cố điện")
        ]
        assert hub.service.overrides[STREET].until == street_off(SATURDAY)
        hub.bus.publish("lighting.cancel_override", circuit=STREET, who="thợ điện Tâm", reason="đã sửa xong")
        assert switched(await hub.next_applies(), STREET_RELAYS) == [(True, f"lighting {STREET}: dusk_dawn")]
        [(_, cancelled)] = records(store, "lighting.override_cancelled")
        assert (cancelled["who"], cancelled["reason"], cancelled["override"]["who"]) == (
            "thợ điện Tâm",
            "đã sửa xong",
            "công an xã",
        )
        assert store.get_state(STATE_KEY) == {}
        assert await hub.service.cancel_override(STREET, "x") is False


@pytest.mark.parametrize(
    ("request_data", "error"),
    [
        ({"circuit": "đèn chợ", "on": True, "until": None, "who": "a"}, "unknown circuit"),
        ({"circuit": HALL, "on": True, "until": "2025-06-21T16:00", "who": "a"}, "not in the future"),
        ({"circuit": HALL, "on": True, "until": "tối nay", "who": "a"}, "not an ISO"),
        ({"circuit": HALL, "on": True, "until": None, "who": " "}, "who asked"),
        ({"circuit": HALL, "on": "yes", "until": None, "who": "a"}, "true or false"),
    ],
)
async def test_bad_override_requests_are_refused_on_the_bus(
    store: Store, request_data: dict[str, Any], error: str
) -> None:
    async with Harness(store, local(SATURDAY, 17)) as hub:
        hub.drain()
        hub.bus.publish("lighting.override", **request_data)
        message: Message = await asyncio.wait_for(hub.rejected.get(), timeout=5)
        assert error in message.data["error"]
        assert message.data["request"] == request_data
        assert hub.drain() == []
        assert hub.service.overrides == {}
        assert records(store, "lighting.override_set") == []


async def test_unknown_and_failed_relays_are_problems_not_crashes(store: Store) -> None:
    section = LightingSection.model_validate(
        {"circuit": [{"name": STREET, "relays": ["đèn đường 1", "đèn đường 9"], "rule": [{"kind": "dusk_dawn"}]}]}
    )
    async with Harness(store, local(SATURDAY, 22), section) as hub:
        # The known lamp lights; the typo is reported, and left out of the request the relay bank would refuse.
        assert hub.drain() == [({"đèn đường 1": True}, f"lighting {STREET}: dusk_dawn (restore)")]
        assert hub.service.problems() == [
            f"circuit {STREET!r}: relay 'đèn đường 9' is not configured in [relays]",
        ]
        hub.bus.publish(
            "relays.changed", switched={}, failed={"đèn đường 1": "modbus: no answer"}, reason=f"lighting {STREET}"
        )
        hub.bus.publish("relays.rejected", error="unknown relay 'x'", reason=f"lighting {STREET}: dusk_dawn")
        await wait_until(lambda: len(hub.service.problems()) == 3)
        assert f"circuit {STREET!r}: relay 'đèn đường 1' failed: modbus: no answer" in hub.service.problems()
        health = hub.service.health()["circuits"][0]
        assert health["unknown_relays"] == ["đèn đường 9"]
        assert health["failed_relays"] == {"đèn đường 1": "modbus: no answer"}
        hub.bus.publish("relays.changed", switched={"đèn đường 1": True}, failed={}, reason="verify")
        await wait_until(lambda: len(hub.service.problems()) == 1)


async def test_with_the_real_relay_service_the_lamps_light(store: Store) -> None:
    relay_settings = RelaysSettings.model_validate(
        {
            "stagger_ms": 0,
            "gpio": [{"name": name, "pin": 5 + i, "active_high": True} for i, name in enumerate(RELAYS)],
        }
    )
    relays = build(relay_settings, simulated=True)
    await relays.bank.safe_state("boot")
    hub = Harness(store, local(SATURDAY, 22), relay_names=list(relays.bank.names))
    relay_service = RelayService(relays, store, hub.bus)
    relay_task = asyncio.create_task(relay_service.run())  # started before lighting, as in hub/app.py

    def lit() -> set[str]:
        return {name for name, state in relays.bank.states().items() if state.on}

    try:
        async with hub:
            # 22:00 on a Saturday: the whole street is lit (the half-night cut starts at 23:00), the hall
            # closed at 21:30, the sockets went off at 22:00.
            street = {"đèn đường 1", "đèn đường 2", "đèn đường 3", "đèn đường 4"}
            await wait_until(lambda: lit() == street and relay_service.applied == 4)
            assert relay_service.rejected == 0
            switched_records = [json.loads(r.payload_json) for r in store.pending(1000) if r.kind == "relays.switched"]
            assert switched_records[0]["reason"] == f"lighting {STREET}: dusk_dawn (restore)"
            # A board that lost its power and the relay service restarted: lighting declares everything again.
            await relays.bank.safe_state("power blink")
            assert lit() == set()
            hub.bus.publish("supervisor.service_running", service="relays")
            await wait_until(lambda: lit() == street and relay_service.applied == 8)
    finally:
        # On Python 3.11 asyncio.wait_for (in RelayService.run) can swallow a cancel that arrives just as a
        # request does: cancel until the task has really ended.
        while not relay_task.done():
            relay_task.cancel()
            await asyncio.wait({relay_task}, timeout=0.1)
        await relays.close()
