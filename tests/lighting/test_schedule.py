"""The pure decision: state, reason and next change of each circuit at any instant, against astral's figures."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.lighting.schedule import (
    NO_RULE,
    Circuit,
    Fixed,
    Override,
    circuits_from_settings,
    decide,
    decide_circuit,
    next_change,
)
from tests.lighting.village import (
    HALF,
    HALL,
    PLACE,
    SATURDAY,
    SOCKETS,
    STREET,
    TZ,
    lighting,
    local,
    street_off,
    street_on,
)

CIRCUITS = {c.name: c for c in circuits_from_settings(lighting())}
US = dt.timedelta(microseconds=1)
FRIDAY = SATURDAY - dt.timedelta(days=1)
SUNDAY = SATURDAY + dt.timedelta(days=1)


def at(name: str, when: dt.datetime, override: Override | None = None) -> tuple[bool, str, dt.datetime | None]:
    d = decide_circuit(CIRCUITS[name], PLACE, when, override)
    return d.on, d.reason, d.next_change


def test_astral_puts_sunset_in_local_evening() -> None:
    # The field notes give 18:38 for 19.77 N on this date; Quảng Lưu is a little further south.
    sunset = street_on(SATURDAY) - dt.timedelta(minutes=10)
    assert local(SATURDAY, 18, 35) < sunset < local(SATURDAY, 18, 41)


def test_dusk_dawn_switches_exactly_at_sunset_plus_offset_and_sunrise_minus_offset() -> None:
    on_at, off_at = street_on(SATURDAY), street_off(SATURDAY)
    assert at(STREET, local(SATURDAY, 12)) == (False, "dusk_dawn", on_at)
    assert at(STREET, on_at - US)[0] is False
    assert at(STREET, on_at) == (True, "dusk_dawn", off_at)
    assert at(STREET, local(SUNDAY, 3)) == (True, "dusk_dawn", off_at)
    assert at(STREET, off_at - US)[0] is True
    assert at(STREET, off_at) == (False, "dusk_dawn", street_on(SUNDAY))


def test_the_same_instant_in_utc_gives_the_same_answer() -> None:
    when = local(SATURDAY, 20)
    assert at(STREET, when.astimezone(dt.UTC)) == at(STREET, when)


def test_half_night_cuts_a_window_out_of_the_night() -> None:
    on_at, off_at = street_on(SATURDAY), street_off(SATURDAY)
    assert at(HALF, on_at) == (True, "dusk_dawn", local(SATURDAY, 23))
    assert at(HALF, local(SATURDAY, 23) - US)[0] is True
    assert at(HALF, local(SATURDAY, 23)) == (False, "nửa đêm", local(SUNDAY, 4, 30))
    assert at(HALF, local(SUNDAY, 2)) == (False, "nửa đêm", local(SUNDAY, 4, 30))
    assert at(HALF, local(SUNDAY, 4, 30)) == (True, "dusk_dawn", off_at)
    # The window alone never lights anything: in the day it changes nothing and is never a "next change".
    assert at(HALF, local(SUNDAY, 12)) == (False, "dusk_dawn", street_on(SUNDAY))


def test_half_night_window_longer_than_the_night_keeps_the_lamps_dark() -> None:
    circuit = Circuit(
        "x",
        ("r",),
        (
            Fixed("tối", frozenset(range(7)), dt.time(18), dt.time(22)),
            *(r for r in CIRCUITS[HALF].rules if r.name == "nửa đêm"),
        ),
    )
    d = decide_circuit(circuit, PLACE, local(SATURDAY, 21))
    assert (d.on, d.next_change) == (True, local(SATURDAY, 22))


def test_weekday_pattern_fixed_rule() -> None:
    # Saturday and Sunday (written 'cn') 18:30–21:30 only.
    assert at(HALL, local(FRIDAY, 19)) == (False, NO_RULE, local(SATURDAY, 18, 30))
    assert at(HALL, local(SATURDAY, 18, 30)) == (True, "sinh hoạt cuối tuần", local(SATURDAY, 21, 30))
    assert at(HALL, local(SUNDAY, 20))[0] is True
    # After Sunday's evening the next one is six days away: the horizon reaches it.
    assert at(HALL, local(SUNDAY, 21, 30)) == (False, "sinh hoạt cuối tuần", local(SATURDAY + dt.timedelta(7), 18, 30))


def test_a_night_belongs_to_its_evening_for_weekday_patterns() -> None:
    only_saturday = lighting().circuit[0].rule[0].model_copy(update={"days": ["sat"]})
    section = lighting()
    street = section.circuit[0].model_copy(update={"rule": [only_saturday]})
    circuit = circuits_from_settings(section.model_copy(update={"circuit": [street]}))[0]
    assert decide_circuit(circuit, PLACE, local(FRIDAY, 21)).on is False
    assert decide_circuit(circuit, PLACE, local(SATURDAY, 21)).on is True
    assert decide_circuit(circuit, PLACE, local(SUNDAY, 3)).on is True  # Saturday's night, after midnight
    sunday_night = decide_circuit(circuit, PLACE, local(SUNDAY, 21))
    assert sunday_night.on is False
    assert sunday_night.next_change == street_on(SATURDAY + dt.timedelta(7))


def test_fixed_rule_across_midnight_and_a_toml_local_time() -> None:
    assert at(SOCKETS, local(SATURDAY, 4, 59)) == (False, "đài và tivi", local(SATURDAY, 5))
    assert at(SOCKETS, local(SATURDAY, 5)) == (True, "đài và tivi", local(SATURDAY, 22))
    circuit = Circuit("x", ("r",), (Fixed("đêm", frozenset(range(7)), dt.time(22), dt.time(2)),))
    assert decide_circuit(circuit, PLACE, local(SUNDAY, 1)).on is True
    assert decide_circuit(circuit, PLACE, local(SUNDAY, 1)).next_change == local(SUNDAY, 2)
    assert decide_circuit(circuit, PLACE, local(SUNDAY, 2)).on is False


def test_a_circuit_without_rules_is_off_and_never_changes() -> None:
    d = decide_circuit(Circuit("x", ("r",)), PLACE, local(SATURDAY, 20))
    assert (d.on, d.reason, d.next_change) == (False, NO_RULE, None)


def test_override_holds_until_its_time_then_the_rule_is_back() -> None:
    until = local(SATURDAY, 19, 30)
    override = Override(False, until, "chị Lan", "sửa đèn", local(SATURDAY, 18))
    d = decide_circuit(CIRCUITS[STREET], PLACE, local(SATURDAY, 19), override)
    assert (d.on, d.cause, d.reason, d.next_change, d.override) == (False, "override", "sửa đèn", until, override)
    d = decide_circuit(CIRCUITS[STREET], PLACE, until, override)
    assert (d.on, d.cause, d.reason) == (True, "rule", "dusk_dawn")


def test_decide_all_and_the_earliest_change() -> None:
    decisions = decide(CIRCUITS.values(), PLACE, local(SATURDAY, 18))
    assert {n: d.on for n, d in decisions.items()} == {STREET: False, HALF: False, HALL: False, SOCKETS: True}
    assert next_change(decisions.values()) == local(SATURDAY, 18, 30)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide_circuit(CIRCUITS[STREET], PLACE, dt.datetime(2025, 6, 21, 20))


def test_winter_night_is_longer() -> None:
    winter = dt.date(2025, 12, 21)
    d = decide_circuit(CIRCUITS[STREET], PLACE, dt.datetime(2025, 12, 21, 17, 40, tzinfo=TZ))
    assert d.on is True  # sunset about 17:23 (field notes), +10 min
    assert d.next_change == street_off(winter)
    assert (street_off(winter) - street_on(winter)) > (street_off(SATURDAY) - street_on(SATURDAY))
