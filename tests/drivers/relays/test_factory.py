"""build(): the bank over both kinds of relay, its simulators, and a clean close."""

from __future__ import annotations

import threading

from drivers.relays import RelaysSettings, build
from tests.drivers.relays.conftest import PORT, bus, module


def _settings() -> RelaysSettings:
    return RelaysSettings.model_validate(
        {
            "stagger_ms": 0,
            "gpio": [{"name": "loa khu 1", "pin": 17, "active_high": False}],
            "modbus": {"bus": [bus(module(1, "coils-8", đèn_đường=(3, "on")))]},
        }
    )


async def test_simulated_bank_runs_the_production_drivers_and_closes_cleanly() -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    relays = build(_settings(), simulated=True)
    simulation = relays.simulation
    assert simulation is not None
    port = simulation.buses[PORT].port
    assert port.startswith("/dev/pts/")  # a real tty, opened by pyserial like a USB adapter
    assert relays.bank.names == ("loa khu 1", "đèn đường")

    await relays.bank.safe_state()
    assert simulation.pins.level(17) is True
    assert simulation.board(PORT, 1).relay(3) is True
    health = relays.bank.health()
    assert health.ok
    assert health.state == "simulated"
    assert set(health.detail["devices"]) == {"GPIO17", f"{PORT} device 1"}

    await relays.bank.safe_state("shutdown")
    await relays.close()
    assert not simulation.pins.is_output(17)  # the pin was released
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    assert leftover == []
    await relays.close()  # twice is harmless (a stop after a failed start)


async def test_states_say_what_when_and_why() -> None:
    relays = build(_settings(), simulated=True)
    try:
        await relays.bank.safe_state()
        await relays.bank.apply({"đèn đường": False}, "bình minh 05:19")
        state = relays.bank.states()["đèn đường"]
        assert (state.on, state.declared, state.safe_on, state.ok) == (False, False, True, True)
        assert state.reason == "bình minh 05:19"
        assert state.changed_at is not None
        assert state.as_dict()["where"] == f"{PORT} device 1 channel 3"
        unchanged = relays.bank.states()["loa khu 1"]
        assert unchanged.reason == "safe state"
        assert unchanged.changed_monotonic is not None
        assert state.changed_monotonic is not None
        assert unchanged.changed_monotonic < state.changed_monotonic
    finally:
        await relays.close()
