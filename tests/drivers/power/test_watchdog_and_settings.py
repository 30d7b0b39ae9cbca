"""The watchdog check against sysfs trees as kernels lay them out, and the [power] settings."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.power import PowerSettings, check_watchdog


def watchdog(root: Path, name: str, *, timeout: int | None, state: str | None, identity: str = "") -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "identity").write_text((identity or "Broadcom BCM2835 Watchdog timer") + "\n")
    if timeout is not None:
        (d / "timeout").write_text(f"{timeout}\n")
    if state is not None:
        (d / "state").write_text(f"{state}\n")


def test_watchdog_states(tmp_path: Path) -> None:
    assert check_watchdog(tmp_path / "none").state == "absent"

    cases: list[tuple[int | None, str | None, str]] = [
        (15, "active", "ok"),
        (10, None, "ok"),  # a kernel that does not say whether it is armed
        (20, "active", "too_long"),
        (15, "inactive", "inactive"),
        (None, "active", "unknown"),
    ]
    for i, (timeout, state, expected) in enumerate(cases):
        root = tmp_path / f"case{i}"
        watchdog(root, "watchdog0", timeout=timeout, state=state)
        status = check_watchdog(root)
        assert status.state == expected, (timeout, state, status)
        assert status.ok is (expected == "ok")
        assert "watchdog0" in status.message
    assert check_watchdog(tmp_path / "case0").as_dict()["devices"][0]["identity"] == "Broadcom BCM2835 Watchdog timer"


def test_watchdog0_is_the_one_judged(tmp_path: Path) -> None:
    watchdog(tmp_path, "watchdog10", timeout=60, state="inactive", identity="softdog")
    watchdog(tmp_path, "watchdog0", timeout=14, state="active")
    status = check_watchdog(tmp_path)
    assert status.state == "ok"
    assert [d.name for d in status.devices] == ["watchdog0", "watchdog10"]
    assert check_watchdog(tmp_path, max_timeout_s=10).state == "too_long"


def test_defaults_are_valid_and_documented() -> None:
    settings = PowerSettings()
    assert settings.shutdown_command == ["systemctl", "poweroff"]
    assert settings.ina219_address == 0x40
    assert settings.rtc_address == 0x68
    for name, field in PowerSettings.model_fields.items():
        assert field.title, name
        assert field.description, name


def test_from_toml() -> None:
    text = """
    [power]
    i2c_bus = 1
    ina219_address = 0x42
    shunt_ohms = 0.1
    battery_low_v = 3.3
    battery_ok_v = 3.6
    shutdown_command = ["systemctl", "poweroff", "--no-wall"]
    shutdown_delay_s = 30.0
    """
    settings = PowerSettings.model_validate(tomllib.loads(text)["power"])
    assert settings.ina219_address == 0x42
    assert settings.shutdown_command[-1] == "--no-wall"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"battery_low_v": 7.0, "battery_ok_v": 7.0}, "must be above"),
        ({"mains_detect": "gpio"}, "mains_gpio"),
        ({"ina219_address": 0x68}, "less than or equal"),
        ({"i2c_bus": "1"}, "valid integer"),  # TOML types are not coerced
        ({"shutdown_command": []}, "at least 1"),
        ({"shutdown_delay": 5}, "Extra inputs"),  # a typo of shutdown_delay_s
    ],
)
def test_mistakes_are_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        PowerSettings(**values)
