"""`[lighting]` validation: every mistake is reported at the key that is wrong, as the hub's loader prints it."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hub.config.loader import ConfigError, _validate
from hub.lighting import settings as lighting_settings
from hub.lighting.settings import LightingSection
from hub.section import Section
from tests.lighting.village import LIGHTING_TOML, lighting


class _Config(Section):
    # Only the [lighting] table, so that the messages checked here are not mixed with [hub]'s required keys.
    lighting: LightingSection = LightingSection()


def errors(data: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as info:
        LightingSection.model_validate(data)
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors()}


def circuit(**fields: Any) -> dict[str, Any]:
    return {"name": "đèn đường thôn", "relays": ["đèn đường 1"], **fields}


def test_the_village_example_parses() -> None:
    section = lighting()
    assert [c.name for c in section.circuit] == [
        "đèn đường thôn",
        "đèn đường thôn (nửa đêm)",
        "đèn nhà văn hóa",
        "ổ cắm đài và tivi",
    ]
    hall = section.circuit[2].rule[0]
    assert hall.weekdays == {5, 6}
    assert (hall.on, hall.off) == (dt.time(18, 30), dt.time(21, 30))
    assert section.circuit[3].rule[0].on == dt.time(5)  # a TOML local time works as well as "05:00"
    assert LightingSection().circuit == []


def test_the_module_docstring_example_parses() -> None:
    doc = lighting_settings.__doc__ or ""
    example = doc.split("```toml", 1)[1].split("```", 1)[0]
    section = LightingSection.model_validate(tomllib.loads(example)["lighting"])
    assert len(section.circuit) == 3


def test_unknown_rule_kind() -> None:
    found = errors({"circuit": [circuit(rule=[{"kind": "dusk_dawn"}, {"kind": "moonlight"}])]})
    assert list(found) == [("circuit", 0, "rule", 1, "kind")]
    assert "'dusk_dawn', 'fixed' or 'half_night'" in found[("circuit", 0, "rule", 1, "kind")]


@pytest.mark.parametrize("value", ["25:00", "18:60", "7 giờ", "18h30"])
def test_time_out_of_range_or_malformed(value: str) -> None:
    found = errors({"circuit": [circuit(rule=[{"kind": "fixed", "on": value, "off": "22:00"}])]})
    assert list(found) == [("circuit", 0, "rule", 0, "on")]
    assert value in found[("circuit", 0, "rule", 0, "on")]


def test_a_time_of_day_is_not_an_integer() -> None:
    found = errors({"circuit": [circuit(rule=[{"kind": "fixed", "on": 64800, "off": "22:00"}])]})
    assert list(found) == [("circuit", 0, "rule", 0, "on")]


def test_empty_relay_list() -> None:
    found = errors({"circuit": [circuit(relays=[])]})
    assert found == {("circuit", 0, "relays"): "Value error, a circuit needs at least one relay"}


def test_keys_that_do_not_fit_the_kind_and_missing_times() -> None:
    found = errors(
        {
            "circuit": [
                circuit(
                    rule=[
                        {"kind": "dusk_dawn", "on": "18:00"},
                        {"kind": "fixed", "on": "18:00"},
                        {"kind": "half_night", "off": "23:00", "on": "23:00", "on_offset_min": 5},
                    ]
                )
            ]
        }
    )
    assert set(found) == {
        ("circuit", 0, "rule", 0, "on"),
        ("circuit", 0, "rule", 1, "off"),
        ("circuit", 0, "rule", 2, "on_offset_min"),
        ("circuit", 0, "rule", 2, "off"),
    }
    assert "does not apply to a dusk_dawn rule" in found[("circuit", 0, "rule", 0, "on")]
    assert "the same time" in found[("circuit", 0, "rule", 2, "off")]


def test_offsets_days_and_unknown_keys() -> None:
    found = errors(
        {
            "circuit": [
                circuit(
                    rule=[
                        {"kind": "dusk_dawn", "on_offset_min": 500},
                        {"kind": "dusk_dawn", "name": "b", "days": ["mon", "funday"]},
                        {"kind": "dusk_dawn", "name": "c", "days": []},
                        {"kind": "dusk_dawn", "name": "d", "offset": 5},
                    ]
                )
            ]
        }
    )
    assert set(found) == {
        ("circuit", 0, "rule", 0, "on_offset_min"),
        ("circuit", 0, "rule", 1, "days"),
        ("circuit", 0, "rule", 2, "days"),
        ("circuit", 0, "rule", 3, "offset"),
    }


def test_cross_checks_name_the_key() -> None:
    found = errors(
        {
            "circuit": [
                circuit(),
                circuit(relays=["đèn đường 2", "đèn đường 1"]),
                circuit(name="b", relays=["x"], rule=[{"kind": "dusk_dawn"}, {"kind": "dusk_dawn"}]),
            ]
        }
    )
    assert set(found) == {("circuit", 2, "rule", 1, "name")}
    found = errors({"circuit": [circuit(), circuit(relays=["đèn đường 2", "đèn đường 1"])]})
    assert set(found) == {("circuit", 1, "name"), ("circuit", 1, "relays", 1)}
    assert "is already circuit 0" in found[("circuit", 1, "name")]
    assert "already belongs to circuit 0 ('đèn đường thôn')" in found[("circuit", 1, "relays", 1)]


def test_decomposed_vietnamese_is_the_same_name() -> None:
    decomposed = "đe\u0300n đường thôn"  # "đèn" with a combining grave accent
    found = errors({"circuit": [circuit(), circuit(name=decomposed, relays=["x"])]})
    assert set(found) == {("circuit", 1, "name")}


def test_the_hub_loader_names_file_key_and_line(tmp_path: Path) -> None:
    text = LIGHTING_TOML.replace('off = "21:30"', 'off = "21:75"').replace('kind = "half_night"', 'kind = "half"')
    path = tmp_path / "hub.toml"
    with pytest.raises(ConfigError) as info:
        _validate(_Config, tomllib.loads(text), path, text)
    lines = text.splitlines()
    messages = sorted(str(p) for p in info.value.problems)
    half = lines.index('kind = "half"') + 1
    off = lines.index('off = "21:75"') + 1
    kind_problem, off_problem = messages
    assert kind_problem.startswith(
        f"{path}:{half}: key 'lighting.circuit.1.rule.1.kind': Input should be 'dusk_dawn', 'fixed' or 'half_night'"
    )
    assert kind_problem.endswith('got string "half"')
    assert off_problem == (
        f"{path}:{off}: key 'lighting.circuit.2.rule.0.off': time '21:75' is out of range: expected 00:00 to 23:59"
    )
