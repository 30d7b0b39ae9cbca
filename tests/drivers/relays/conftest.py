"""Relay banks on simulated hardware: gpiozero mock pins and Modbus boards answering on ptys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from drivers.relays import Relays, RelaySimulation, RelaysSettings, build

PORT = "/dev/ttyUSB0"  # as written in hub.toml; the simulation puts a pty behind it

BuildRelays = Callable[[dict[str, Any]], Awaitable[Relays]]


def bus(*modules: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A bus table with short timeouts, so a silent board costs tenths of a second, not seconds."""
    return {"port": PORT, "timeout_s": 0.08, "retries": 2, "module": list(modules), **options}


def module(device_id: int, profile: str, **channels: Any) -> dict[str, Any]:
    """channels: name → channel number, or (channel, safe_state)."""
    relays = []
    for name, spec in channels.items():
        channel, safe = spec if isinstance(spec, tuple) else (spec, "off")
        relays.append({"channel": channel, "name": name.replace("_", " "), "safe_state": safe})
    return {"device_id": device_id, "profile": profile, "relay": relays}


def sim(relays: Relays) -> RelaySimulation:
    assert relays.simulation is not None
    return relays.simulation


@pytest.fixture
async def build_relays() -> AsyncIterator[BuildRelays]:
    built: list[Relays] = []

    async def make(config: dict[str, Any]) -> Relays:
        relays = build(RelaysSettings.model_validate(config), simulated=True)
        built.append(relays)
        return relays

    yield make
    for relays in built:
        await relays.close()
