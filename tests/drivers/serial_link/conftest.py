"""A simulated node on a real pty and the hub's driver on the other end, with short timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.serial_link import NodeSimulator, SensorNodeSettings, SerialNodeLink

# Heartbeats every 50 ms; an answer is waited for 60 ms, 3 tries; the node's fail-safe at 0.6 s.
FAST: dict[str, Any] = {
    "heartbeat_interval_s": 0.05,
    "response_timeout_s": 0.06,
    "retries": 2,
    "failsafe_timeout_s": 0.6,
    "reconnect_interval_s": 0.05,
}


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> float:
    """Poll until predicate() holds; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[NodeSimulator]:
    with NodeSimulator(tmp_path / "ttyNODE", air_interval_s=0.05) as simulator:
        yield simulator


LinkFactory = Callable[..., Awaitable[SerialNodeLink]]


@pytest.fixture
async def make_link(sim: NodeSimulator) -> AsyncIterator[LinkFactory]:
    links: list[SerialNodeLink] = []

    async def make(connect: bool = True, **overrides: Any) -> SerialNodeLink:
        settings = SensorNodeSettings(port=str(sim.path), **{**FAST, **overrides})
        link = SerialNodeLink(settings)
        links.append(link)
        await link.start()
        if connect:
            assert await link.wait_connected(3), link.health()
        return link

    yield make
    for link in links:
        await link.stop()


@pytest.fixture
async def link(make_link: LinkFactory) -> SerialNodeLink:
    return await make_link()
