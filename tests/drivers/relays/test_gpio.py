"""GPIO relays on gpiozero's mock pins: polarity, the boot safe state, the stagger, and the bank's contract."""

from __future__ import annotations

import importlib
import itertools
import sys
import unicodedata

import pytest

from drivers.relays import RelaysSettings, UnknownRelayError, build
from drivers.relays.bank import RelayBank
from drivers.relays.gpio import GpioRelay, UnavailablePins
from drivers.relays.settings import GpioRelaySettings
from tests.drivers.relays.conftest import BuildRelays, sim

LOW_HAT = [  # a 4-relay HAT that pulls in on a low pin, as most do
    {"name": "loa khu 1", "pin": 5, "active_high": False},
    {"name": "loa khu 2", "pin": 6, "active_high": False},
    {"name": "đèn đường", "pin": 13, "active_high": False, "safe_state": "on"},
    {"name": "ổ cắm sân khấu", "pin": 19, "active_high": True},
]


async def test_active_low_relay_is_on_when_its_pin_is_low(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 0})
    pins = sim(relays).pins
    await relays.bank.safe_state()
    assert pins.level(5) is True  # off, active-low: high
    assert pins.level(13) is False  # safe state on, active-low: low
    assert pins.level(19) is False  # off, active-high: low

    result = await relays.bank.apply({"loa khu 1": True, "ổ cắm sân khấu": True, "đèn đường": False}, "test")
    assert result.ok, result
    assert (pins.level(5), pins.level(6), pins.level(13), pins.level(19)) == (False, True, True, True)
    assert relays.bank.pin_level("loa khu 1") is False
    assert relays.bank.states()["loa khu 1"].as_dict()["pin_level"] == "low"


async def test_boot_applies_the_safe_state_to_every_relay_first(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 5})
    pins = sim(relays).pins
    safe_level = {5: True, 6: True, 13: False, 19: False}
    for pin, level in safe_level.items():
        # Each pin floats at the wrong level before the hub starts, so its first driven level shows.
        (pins.pin(pin).drive_low if level else pins.pin(pin).drive_high)()
        pins.pin(pin).clear_states()
    # Building claims nothing: every pin is still an input until the safe state drives it.
    assert not any(pins.is_output(p) for p in safe_level)

    # A hub that forgets the boot step still gets the safe state on the wire before its request.
    await relays.bank.apply({"loa khu 1": True, "đèn đường": False}, "first request")

    for pin, level in safe_level.items():
        assert pins.is_output(pin)
        assert pins.history(pin)[1][1] == level, f"GPIO{pin}: first driven level is not the safe one"
    assert [lvl for _, lvl in pins.history(5)] == [False, True, False]  # floating, safe off (high), on (low)
    assert [lvl for _, lvl in pins.history(13)] == [True, False, True]  # floating, safe on (low), off (high)
    first_request = min(pins.history(5)[2][0], pins.history(13)[2][0])
    assert all(pins.history(pin)[1][0] < first_request for pin in safe_level)
    states = relays.bank.states()
    assert states["loa khu 2"].reason == "safe state (boot)"
    assert states["loa khu 1"].reason == "first request"


async def test_explicit_safe_state_at_boot_and_shutdown(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 0})
    pins = sim(relays).pins
    result = await relays.bank.safe_state()
    assert result.ok
    assert set(result.switched) == {r["name"] for r in LOW_HAT}
    assert all(s.on is s.safe_on and s.reason == "safe state" for s in relays.bank.states().values())

    await relays.bank.apply({"loa khu 1": True, "loa khu 2": True, "đèn đường": False}, "programme")
    await relays.bank.safe_state("shutdown")
    assert (pins.level(5), pins.level(6), pins.level(13), pins.level(19)) == (True, True, False, False)
    assert relays.bank.states()["loa khu 1"].reason == "shutdown"


async def test_switches_are_staggered_on_the_pins(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 50})
    pins = sim(relays).pins
    await relays.bank.safe_state()
    pins.clear_history()

    result = await relays.bank.apply(
        {"loa khu 1": True, "loa khu 2": True, "ổ cắm sân khấu": True, "đèn đường": False}, "all at once"
    )
    assert result.ok
    changes = sorted(t for pin in (5, 6, 13, 19) for t, _ in pins.history(pin)[1:])
    assert len(changes) == 4
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert all(gap >= 0.049 for gap in gaps), gaps
    assert all(gap < 0.25 for gap in gaps), gaps  # staggered, not serialised behind something slow


async def test_stagger_holds_across_requests(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 60})
    pins = sim(relays).pins
    await relays.bank.safe_state()
    pins.clear_history()
    await relays.bank.apply({"loa khu 1": True}, "one service")
    await relays.bank.apply({"loa khu 2": True}, "another service, right after")
    (t1, _), (t2, _) = pins.history(5)[1], pins.history(6)[1]
    assert t2 - t1 >= 0.059


async def test_relays_going_off_switch_before_relays_going_on(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 10})
    pins = sim(relays).pins
    await relays.bank.safe_state()
    await relays.bank.apply({"loa khu 1": True}, "before")
    pins.clear_history()
    await relays.bank.apply({"loa khu 1": False, "đèn đường": False, "ổ cắm sân khấu": True}, "swap")
    off_times = [pins.history(p)[1][0] for p in (5, 13)]
    on_time = pins.history(19)[1][0]
    assert max(off_times) < on_time


async def test_declared_state_is_reconciled_not_toggled(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 0})
    pins = sim(relays).pins
    await relays.bank.safe_state()
    first = await relays.bank.apply({"loa khu 1": True}, "broadcast")
    assert first.switched == ["loa khu 1"]
    pins.clear_history()
    again = await relays.bank.apply({"loa khu 1": True}, "broadcast, declared again")
    assert again.switched == []
    assert again.ok
    assert pins.history(5)[1:] == []
    state = relays.bank.state("loa khu 1")
    assert state.on is True
    assert state.reason == "broadcast"
    assert state.changed_at is not None


async def test_unknown_names_are_refused_before_anything_moves(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 0})
    pins = sim(relays).pins
    await relays.bank.safe_state()
    pins.clear_history()
    with pytest.raises(UnknownRelayError) as caught:
        await relays.bank.apply({"loa khu 1": True, "loa khu 9": True, "den duong": False}, "typo")
    message = str(caught.value)
    assert "'loa khu 9'" in message
    assert "'den duong'" in message
    assert "'đèn đường'" in message
    assert caught.value.unknown == ("loa khu 9", "den duong")
    assert pins.history(5)[1:] == []  # the valid part of a bad request is not half-applied
    with pytest.raises(TypeError, match="loa khu 1"):
        await relays.bank.apply({"loa khu 1": 1}, "not a bool")  # type: ignore[dict-item]


async def test_decomposed_vietnamese_name_matches(build_relays: BuildRelays) -> None:
    relays = await build_relays({"gpio": LOW_HAT, "stagger_ms": 0})
    await relays.bank.safe_state()
    decomposed = unicodedata.normalize("NFD", "đèn đường")
    assert decomposed != "đèn đường"
    result = await relays.bank.apply({decomposed: False}, "from an NFD source")
    assert result.switched == ["đèn đường"]
    assert sim(relays).pins.level(13) is True


async def test_a_pin_that_cannot_be_driven_is_unhealthy_not_a_crash() -> None:
    backend = UnavailablePins("Jetson.GPIO is not installed")
    relay = GpioRelay(GpioRelaySettings(name="loa khu 1", pin=5, active_high=False), backend)
    bank = RelayBank([relay], stagger_s=0)
    result = await bank.safe_state()
    assert not result.ok
    assert "Jetson.GPIO is not installed" in result.failed["loa khu 1"]
    health = bank.health()
    assert not health.ok
    assert health.state == "error"
    assert "GPIO5" in (health.last_error or "")
    await bank.close()


def test_jetson_backend_imports_without_jetson_gpio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "Jetson", None)  # as on any machine without the jetson extra
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", None)
    jetson = importlib.reload(importlib.import_module("drivers.relays.jetson"))
    with pytest.raises(jetson.JetsonUnavailable, match="jetson"):
        jetson.JetsonPins()
    settings = RelaysSettings.model_validate(
        {"gpio_backend": "jetson", "gpio": [{"name": "loa khu 1", "pin": 5, "active_high": False}]}
    )
    relays = build(settings, simulated=False)
    assert relays.simulation is None
    assert relays.bank.health().state == "unknown"  # nothing tried yet, and building did not raise
