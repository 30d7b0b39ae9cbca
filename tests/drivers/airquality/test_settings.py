"""The [air_quality] settings and the factory."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drivers.airquality import AirQualitySettings, Pms5003Simulator, Pms5003Uart, build


def test_defaults_and_documentation() -> None:
    settings = AirQualitySettings()
    assert settings.source == "node"
    assert settings.baudrate == 9600
    for name, field in AirQualitySettings.model_fields.items():
        assert field.title, name
        assert field.description, name


@pytest.mark.parametrize(
    "bad",
    [{"source": "i2c"}, {"baudrate": 115200}, {"stale_after_s": 0}, {"stale_after_s": "10"}, {"prot": "/dev/x"}],
)
def test_invalid_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AirQualitySettings(**bad)  # type: ignore[arg-type]


async def test_factory() -> None:
    assert build(AirQualitySettings(source="none"), simulated=True) == (None, None)
    with pytest.raises(ValueError, match="sensor node link"):
        build(AirQualitySettings(source="node"), simulated=False)
    real, none = build(AirQualitySettings(source="uart", port="/dev/ttyAMA1"), simulated=False)
    assert isinstance(real, Pms5003Uart)
    assert none is None
    sensor, simulator = build(AirQualitySettings(source="uart", port="/dev/ignored"), simulated=True)
    assert isinstance(sensor, Pms5003Uart)
    assert isinstance(simulator, Pms5003Simulator)
    try:
        assert sensor.settings.port == str(simulator.path)
    finally:
        simulator.stop()
