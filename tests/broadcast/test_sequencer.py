"""The amplifier and zone relay sequence through the real relay service and relay bank on gpiozero's mock pins:
amplifier first, zones after the warm-up, zones off before the amplifier, and every switch confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.relays import Relays, RelaysSettings, build
from hub.broadcast.sequencer import BusRelays, Sequencer
from hub.bus import EventBus
from hub.clock import SystemClock
from hub.relays.service import RelayService
from hub.store import Store
from tests.broadcast.rig import AMP_PIN, RELAYS, VN, ZONE1_PIN, ZONE2_PIN, relay_changes

ZONES = {"khu 1": "loa khu 1", "khu 2": "loa khu 2"}


@pytest.fixture
async def bank(tmp_path: Path) -> AsyncIterator[tuple[Relays, EventBus]]:
    relays = build(RelaysSettings.model_validate(RELAYS), simulated=True)
    store = Store.open(tmp_path)
    bus = EventBus()
    await relays.bank.safe_state("boot")
    task = asyncio.create_task(RelayService(relays, store, bus).run())
    await asyncio.sleep(0.01)
    yield relays, bus
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await relays.close()
    store.close()


def on(relays: Relays, pin: int) -> bool:
    assert relays.simulation is not None
    return not relays.simulation.pins.level(pin)  # active-low boards: a low pin pulls the relay in


def switched_on_at(relays: Relays, pin: int) -> float:
    return relay_changes(relays, pin, True)[-1]


def switched_off_at(relays: Relays, pin: int) -> float:
    return relay_changes(relays, pin, False)[-1]


async def test_amplifier_then_zones_and_the_reverse(bank: tuple[Relays, EventBus]) -> None:
    relays, bus = bank
    seq = Sequencer(BusRelays(bus), SystemClock(VN), amplifier="ampli", zones=ZONES, warmup_s=0.3)
    ready = await seq.amplifier_on("test")
    assert on(relays, AMP_PIN)  # the command returned after the relay switched
    assert not on(relays, ZONE1_PIN)
    await asyncio.sleep(ready - time.monotonic())
    await seq.connect(["khu 1"], "test")
    assert on(relays, ZONE1_PIN)
    assert not on(relays, ZONE2_PIN)
    assert switched_on_at(relays, ZONE1_PIN) - switched_on_at(relays, AMP_PIN) >= 0.3  # the warm-up
    await seq.connect(["khu 1", "khu 2"], "test")
    assert on(relays, ZONE2_PIN)
    await seq.amplifier_off("idle")
    assert not on(relays, AMP_PIN)
    assert not on(relays, ZONE1_PIN)
    assert not on(relays, ZONE2_PIN)
    assert switched_off_at(relays, ZONE1_PIN) < switched_off_at(relays, AMP_PIN)
    assert switched_off_at(relays, ZONE2_PIN) < switched_off_at(relays, AMP_PIN)
    assert seq.problems() == []
    states = relays.bank.states()
    assert states["ampli"].reason == "idle"


async def test_idle_declares_everything_off_whatever_was_believed(bank: tuple[Relays, EventBus]) -> None:
    relays, bus = bank
    await relays.bank.apply({"ampli": True, "loa khu 1": True}, "left on by the previous run")
    seq = Sequencer(BusRelays(bus), SystemClock(VN), amplifier="ampli", zones=ZONES)
    await seq.idle("restart: nothing is playing")
    assert not on(relays, AMP_PIN)
    assert not on(relays, ZONE1_PIN)
    assert switched_off_at(relays, ZONE1_PIN) < switched_off_at(relays, AMP_PIN)


async def test_unknown_relays_are_left_out_and_reported(bank: tuple[Relays, EventBus]) -> None:
    relays, bus = bank
    seq = Sequencer(
        BusRelays(bus),
        SystemClock(VN),
        amplifier="ampli",
        zones={"khu 1": "loa khu 1", "khu 3": "loa khu 3", "sân": ""},
        warmup_s=0.0,
        known_relays=relays.bank.names,
    )
    assert seq.problems() == ["relay 'loa khu 3' of [broadcast] is not configured in [relays]"]
    await seq.amplifier_on("test")
    await seq.connect(["khu 1", "khu 3", "sân"], "test")
    assert on(relays, ZONE1_PIN)  # the request was not refused as a whole for the unknown one
    assert seq.health()["zones_on"] == ["khu 1", "khu 3", "sân"]


async def test_without_the_relay_service_it_declares_and_says_so(tmp_path: Path) -> None:
    bus = EventBus()
    applies = bus.subscribe("relays.apply")
    seq = Sequencer(BusRelays(bus, timeout_s=0.2), SystemClock(VN), amplifier="ampli", zones=ZONES, warmup_s=0.0)
    await seq.amplifier_on("test")
    message = applies.queue.get_nowait()
    assert message.data == {"desired": {"ampli": True}, "reason": "test"}
    assert any("not running" in p for p in seq.problems())


async def test_redeclare_repeats_the_whole_state(bank: tuple[Relays, EventBus]) -> None:
    relays, bus = bank
    seq = Sequencer(BusRelays(bus), SystemClock(VN), amplifier="ampli", zones=ZONES, warmup_s=0.0)
    await seq.amplifier_on("test")
    await seq.connect(["khu 2"], "test")
    await relays.bank.apply({"ampli": False, "loa khu 2": False}, "someone else")  # e.g. a board that lost power
    await seq.redeclare("relay service started")
    assert on(relays, AMP_PIN)
    assert on(relays, ZONE2_PIN)
    assert switched_on_at(relays, AMP_PIN) <= switched_on_at(relays, ZONE2_PIN)
