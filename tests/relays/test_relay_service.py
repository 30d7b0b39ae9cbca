"""The relay service on simulated hardware: requests over the bus switch mock pins and a Modbus board on a
pty, switches and failures reach the outbox, and `hub run` starts with every relay in its safe state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.relays import Relays, RelaysSettings, build
from hub.bus import EventBus, Message
from hub.relays.service import RelayService
from hub.store import Store
from tests.support.processes import HubProcess, write_hub_config

RELAYS_TOML = """
[relays]
stagger_ms = 5

[[relays.gpio]]
name = "ampli"
pin = 17
active_high = false

[[relays.gpio]]
name = "đèn đường"
pin = 27
active_high = true
safe_state = "on"

[[relays.modbus.bus]]
port = "/dev/ttyUSB0"
timeout_s = 0.1
retries = 1

[[relays.modbus.bus.module]]
device_id = 3
profile = "coils-4"

[[relays.modbus.bus.module.relay]]
channel = 2
name = "loa khu 1"
"""

SETTINGS: dict[str, Any] = {
    "stagger_ms": 5,
    "gpio": [
        {"name": "ampli", "pin": 17, "active_high": False},
        {"name": "đèn đường", "pin": 27, "active_high": True, "safe_state": "on"},
    ],
    "modbus": {
        "bus": [
            {
                "port": "/dev/ttyUSB0",
                "timeout_s": 0.1,
                "retries": 1,
                "module": [{"device_id": 3, "profile": "coils-4", "relay": [{"channel": 2, "name": "loa khu 1"}]}],
            }
        ]
    },
}


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[RelayService, Relays, Store, EventBus]]:
    relays = build(RelaysSettings.model_validate(SETTINGS), simulated=True)
    store = Store.open(tmp_path)
    bus = EventBus()
    await relays.bank.safe_state("boot")
    service = RelayService(relays, store, bus, verify_interval_s=0.2)
    yield service, relays, store, bus
    await relays.close()
    store.close()


def outbox(store: Store) -> list[tuple[str, dict[str, Any]]]:
    return [(r.kind, json.loads(r.payload_json)) for r in store.pending(1000)]


async def test_requests_switch_pins_and_board_and_are_recorded(setup: Any) -> None:
    service, relays, store, _ = setup
    assert relays.simulation is not None
    pins = relays.simulation.pins
    board = relays.simulation.board("/dev/ttyUSB0", 3)
    assert pins.level(17) is True  # active-low amplifier relay, off: pin high
    assert pins.level(27) is True  # street light safe on, active-high
    result = await service.handle(
        Message("relays.apply", {"desired": {"ampli": True, "loa khu 1": True}, "reason": "phát thanh 05:00"})
    )
    assert result is not None
    assert result.ok
    assert pins.level(17) is False  # energised: pin pulled low
    assert board.relays()[1] is True  # channel 2
    records = outbox(store)
    assert records == [
        (
            "relays.switched",
            {"switched": {"ampli": True, "loa khu 1": True}, "failed": {}, "reason": "phát thanh 05:00"},
        )
    ]
    # an unknown name changes nothing and records nothing
    assert await service.handle(Message("relays.apply", {"desired": {"loa khu 9": True}, "reason": "x"})) is None
    assert service.rejected == 1
    assert len(outbox(store)) == 1


async def test_unplugged_board_is_a_security_event_and_unhealthy(setup: Any) -> None:
    service, relays, store, _ = setup
    board = relays.simulation.board("/dev/ttyUSB0", 3)
    board.unplug()
    result = await service.handle(Message("relays.apply", {"desired": {"loa khu 1": True}, "reason": "test"}))
    assert result is not None
    assert not result.ok
    kind, payload = outbox(store)[-1]
    assert kind == "relays.failed"
    assert "loa khu 1" in payload["failed"]
    assert service.problems()
    assert service.health()["ok"] is False
    board.replug()
    result = await service.handle(Message("relays.apply", {"desired": {"loa khu 1": True}, "reason": "test again"}))
    assert result is not None
    assert result.ok
    assert service.problems() == []


async def test_drift_is_put_right_by_the_periodic_check(setup: Any) -> None:
    service, relays, _, _ = setup
    board = relays.simulation.board("/dev/ttyUSB0", 3)
    await service.handle(Message("relays.apply", {"desired": {"loa khu 1": True}, "reason": "on"}))
    board.power_cycle()  # the board's power blinked: every channel off
    assert board.relays()[1] is False
    task = asyncio.create_task(service.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.05)
            if board.relays()[1]:
                break
        assert board.relays()[1] is True
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_hub_boots_with_every_relay_in_its_safe_state(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", "thon-relays", cloud_url=None, token=None, extra=RELAYS_TOML)
    hub = HubProcess(config).start()
    try:
        relays = hub.health()["services"]["relays"]
        assert relays["state"] == "running"
        assert relays["ok"], relays
        states = {r["name"]: r for r in relays["details"]["relays"]}
        assert set(states) == {"ampli", "đèn đường", "loa khu 1"}
        assert states["ampli"]["on"] is False
        assert states["ampli"]["pin_level"] == "high"  # active-low, off
        assert states["đèn đường"]["on"] is True
        assert states["loa khu 1"]["on"] is False
        assert all(s["reason"] == "boot" for s in states.values() if s["changed_at"])
    finally:
        hub.terminate()
