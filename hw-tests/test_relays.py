"""Every configured relay clicks, one after the other, on the real box.

What a person standing next to the box should see and hear: first every relay going to its safe state
(clicks about stagger_ms apart), then, in the order of hub.toml, each relay clicking to the opposite of its
safe state (its LED changes; a loudspeaker zone or socket comes on, a street light whose safe state is on goes
off) for about one second and clicking back. At the end every relay is in its safe state again, also when a
test fails. A Modbus board that does not answer fails the test with the board named.

The configuration is the box's own hub.toml: $VILLAGE_HUB_CONFIG, else /etc/village-hub/hub.toml. Stop the
hub first (`systemctl stop village-hub`): it holds the pins and serial ports these tests drive.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.relays import Relays, RelaysSettings, build

pytestmark = pytest.mark.hw

DEFAULT_CONFIG = Path("/etc/village-hub/hub.toml")
HOLD_S = 1.0


def relay_settings() -> RelaysSettings:
    path = Path(os.environ.get("VILLAGE_HUB_CONFIG") or DEFAULT_CONFIG)
    if not path.is_file():
        pytest.skip(f"no hub.toml at {path} (set VILLAGE_HUB_CONFIG)")
    section = tomllib.loads(path.read_text(encoding="utf-8")).get("relays")
    if not section:
        pytest.skip(f"{path} has no [relays] section")
    settings = RelaysSettings.model_validate(section)
    if not settings.relay_names():
        pytest.skip(f"{path} configures no relays")
    return settings


@pytest.fixture
async def relays() -> AsyncIterator[Relays]:
    built = build(relay_settings(), simulated=False)
    try:
        result = await built.bank.safe_state("hw-test: start")
        assert result.ok, f"safe state not reached: {result.failed}"
        yield built
    finally:
        await built.bank.safe_state("hw-test: leave as found")
        await built.close()


async def test_every_device_answers(relays: Relays) -> None:
    health = relays.bank.health()
    assert health.ok, f"{health.state}: {health.last_error}; devices: {health.detail['devices']}"


async def test_each_relay_clicks_in_turn(relays: Relays) -> None:
    bank = relays.bank
    for name in bank.names:
        safe = bank.state(name).safe_on
        result = await bank.apply({name: not safe}, f"hw-test: click {name}")
        assert result.ok, f"{name!r} did not switch: {result.failed}"
        state = bank.state(name)
        assert state.on is (not safe)
        if state.kind == "gpio":
            assert state.pin_level is not None, f"{name!r}: no level readable on {state.where}"
        await asyncio.sleep(HOLD_S)
        result = await bank.apply({name: safe}, f"hw-test: back {name}")
        assert result.ok, f"{name!r} did not switch back: {result.failed}"
        await asyncio.sleep(HOLD_S / 2)
