"""The [sensor_node] settings, and build() giving a link (and its simulator when simulated)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.serial_link import LinkState, NodeSimulator, SensorNodeSettings, SerialNodeLink, build


def test_defaults_and_documentation() -> None:
    settings = SensorNodeSettings()
    assert settings.baudrate == 115200
    assert settings.failsafe_timeout_s == 30.0
    for name, field in SensorNodeSettings.model_fields.items():
        assert field.title, name
        assert field.description, name


@pytest.mark.parametrize(
    "bad",
    [
        {"baudrate": 12345},
        {"retries": "3"},  # TOML types are not coerced
        {"heartbeat_interval_s": 0},
        {"port": ""},
        {"heartbeat": 1.0},  # a typo is refused, not ignored
        {"max_valve_open_s": 7201.0},
    ],
)
def test_invalid_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SensorNodeSettings(**bad)  # type: ignore[arg-type]


def test_failsafe_must_outlast_a_heartbeat_and_its_retries() -> None:
    with pytest.raises(ValidationError, match=r"failsafe_timeout_s=3.0 must be at least .* >= 3.6"):
        SensorNodeSettings(failsafe_timeout_s=3.0)  # heartbeat 1 s + 4 x 0.2 s, twice over
    assert SensorNodeSettings(failsafe_timeout_s=3.6).failsafe_timeout_s == 3.6


async def test_build_simulated_points_the_link_at_the_simulator() -> None:
    link, simulator = build(SensorNodeSettings(port="/dev/does-not-matter"), simulated=True)
    assert isinstance(simulator, NodeSimulator)
    try:
        assert link.settings.port == str(simulator.path)
        await link.start()
        assert await link.wait_connected(3)
        assert link.state is LinkState.CONNECTED
    finally:
        await link.stop()
        simulator.stop()


def test_build_real_opens_nothing_yet() -> None:
    link, simulator = build(SensorNodeSettings(port="/dev/ttyUSB7"), simulated=False)
    assert isinstance(link, SerialNodeLink)
    assert simulator is None
    assert link.state is LinkState.STOPPED
    assert link.health().ok is False
