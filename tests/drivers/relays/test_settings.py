"""The [relays] section: every mistake is reported at the key that is wrong, with what would be right."""

from __future__ import annotations

import tomllib
import unicodedata
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.relays import BUILTIN_PROFILES, RelaysSettings

EXAMPLE = """
stagger_ms = 80

[[gpio]]
name = "loa khu 1"
pin = 17
active_high = false

[[gpio]]
name = "đèn đường"
pin = 27
active_high = true
safe_state = "on"

[[modbus.bus]]
port = "/dev/ttyUSB0"
baudrate = 19200
parity = "E"

[[modbus.bus.module]]
device_id = 2
profile = "registers-8"
label = "tủ điện sân khấu"

[[modbus.bus.module.relay]]
channel = 1
name = "amply"

[[modbus.bus.module.relay]]
channel = 8
name = "ổ cắm sân khấu"
safe_state = "off"
"""


def _profile(**overrides: Any) -> dict[str, Any]:
    return {"channels": 4, "write_function": 6, "read_function": 3, "register_on": 1, "register_off": 2} | overrides


def errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        RelaysSettings.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors(include_url=False)]


def gpio(name: str, pin: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "pin": pin, "active_high": False, **extra}


def modbus(*modules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"bus": [{"port": "/dev/ttyUSB0", "module": list(modules)}], **extra}


def test_example_table_loads_from_toml() -> None:
    settings = RelaysSettings.model_validate(tomllib.loads(EXAMPLE))
    assert settings.stagger_ms == 80
    assert settings.relay_names() == ["loa khu 1", "đèn đường", "amply", "ổ cắm sân khấu"]
    bus = settings.modbus.bus[0]
    assert (bus.baudrate, bus.parity, bus.timeout_s, bus.retries) == (19200, "E", 0.3, 2)
    assert settings.modbus.profile(bus.module[0].profile).write_function == 6
    assert RelaysSettings().stagger_ms == 50  # the default the brownout note asks for


def test_every_field_is_documented() -> None:
    from drivers.relays.settings import (
        GpioRelaySettings,
        ModbusBusSettings,
        ModbusModuleSettings,
        ModbusProfile,
        ModbusRelaySettings,
        ModbusSettings,
    )

    for model in (
        RelaysSettings,
        GpioRelaySettings,
        ModbusSettings,
        ModbusBusSettings,
        ModbusModuleSettings,
        ModbusRelaySettings,
        ModbusProfile,
    ):
        for name, field in model.model_fields.items():
            assert field.title, f"{model.__name__}.{name} has no title"
            assert field.description, f"{model.__name__}.{name} has no description"


def test_duplicate_relay_name_is_reported_where_it_is_repeated() -> None:
    found = errors(
        {
            "gpio": [gpio("loa khu 1", 17), gpio("đèn đường", 27)],
            "modbus": modbus({"device_id": 1, "profile": "coils-4", "relay": [{"channel": 1, "name": "loa khu 1"}]}),
        }
    )
    assert found == [
        ("modbus.bus.0.module.0.relay.0.name", "duplicate relay name 'loa khu 1': already the GPIO relay on pin 17")
    ]


def test_names_equal_after_unicode_normalisation_are_duplicates() -> None:
    decomposed = unicodedata.normalize("NFD", "đèn đường")
    found = errors({"gpio": [gpio("đèn đường", 17), gpio(decomposed, 27)]})
    assert found[0][0] == "gpio.1.name"
    assert "duplicate relay name" in found[0][1]


def test_pin_used_twice() -> None:
    assert errors({"gpio": [gpio("a", 17), gpio("b", 22), gpio("c", 17)]}) == [
        ("gpio.2.pin", "pin 17 is already relay 'a'")
    ]


def test_unknown_profile_lists_the_known_ones() -> None:
    ((key, message),) = errors(
        {"modbus": modbus({"device_id": 1, "profile": "coil-8", "relay": []}, profiles={"tủ bơm": _profile()})}
    )
    assert key == "modbus.bus.0.module.0.profile"
    assert "unknown profile 'coil-8'" in message
    assert "did you mean 'coils-8'?" in message
    for name in (*BUILTIN_PROFILES, "tủ bơm"):
        assert name in message


def test_channel_the_board_does_not_have_and_channel_used_twice() -> None:
    found = errors(
        {
            "modbus": modbus(
                {
                    "device_id": 1,
                    "profile": "coils-4",
                    "relay": [{"channel": 5, "name": "a"}, {"channel": 2, "name": "b"}, {"channel": 2, "name": "c"}],
                }
            )
        }
    )
    assert found == [
        ("modbus.bus.0.module.0.relay.0.channel", "channel 5 does not exist: profile 'coils-4' has 4 channels"),
        ("modbus.bus.0.module.0.relay.2.channel", "channel 2 is already relay 'b'"),
    ]


def test_device_id_twice_on_one_bus_and_port_twice() -> None:
    board = {"device_id": 3, "profile": "coils-4"}
    found = errors({"modbus": {"bus": [{"port": "/dev/ttyUSB0", "module": [board, board]}, {"port": "/dev/ttyUSB0"}]}})
    assert ("modbus.bus.1.port", "port '/dev/ttyUSB0' is already bus 0") in found
    assert ("modbus.bus.0.module.1.device_id", "device id 3 is already module 0 on /dev/ttyUSB0") in found


def test_polarity_has_no_default() -> None:
    found = errors({"gpio": [{"name": "loa", "pin": 17}]})
    assert found[0][0] == "gpio.0.active_high"
    assert "required" in found[0][1].lower()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"gpio": [gpio("loa", 28)]}, "gpio.0.pin"),
        ({"gpio": [gpio("loa", 17, safe_state="maybe")]}, "gpio.0.safe_state"),
        ({"gpio": [gpio(" loa", 17)]}, "gpio.0.name"),
        ({"gpio": [gpio("", 17)]}, "gpio.0.name"),
        ({"gpio": [{"name": "loa", "pin": "17", "active_high": False}]}, "gpio.0.pin"),  # TOML types kept
        ({"stagger_ms": -1}, "stagger_ms"),
        ({"gpio": [gpio("loa", 17, pin_mode="bcm")]}, "gpio.0.pin_mode"),  # a typo is refused
        ({"modbus": {"bus": [{"port": "/dev/ttyUSB0", "parity": "X"}]}}, "modbus.bus.0.parity"),
        ({"modbus": {"profiles": {"coils-8": _profile()}}}, "modbus.profiles.coils-8"),
        ({"modbus": {"profiles": {"x": _profile(register_off=1)}}}, "modbus.profiles.x.register_off"),
        ({"modbus": {"profiles": {"x": _profile(write_function=16)}}}, "modbus.profiles.x.write_function"),
    ],
)
def test_bad_values_name_their_key(data: dict[str, Any], key: str) -> None:
    assert key in [k for k, _ in errors(data)]
