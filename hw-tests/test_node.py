"""The sensor node on the real box answers its handshake over its serial link.

What a person next to the box sees: nothing moves. The valve is never touched; the node's status LED (if its
firmware has one) may blink with the traffic. Stop the hub first (`systemctl stop village-hub`): the hub holds
the port with an exclusive lock while it runs.

The port comes from $HUB_NODE_PORT, else from [sensor_node] in /etc/village-hub/hub.toml (or $HUB_CONFIG). A
box whose config has no [sensor_node] table has no node: the test is skipped there, not faked.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from drivers.micropython.vhnode import protocol
from drivers.serial_link import SensorNodeSettings, SerialNodeLink

if TYPE_CHECKING:  # conftest is pytest's to import; only its type is needed here
    from conftest import RealBoard

pytestmark = pytest.mark.hw

CONFIG = Path(os.environ.get("HUB_CONFIG", "/etc/village-hub/hub.toml"))


def node_settings() -> SensorNodeSettings:
    table: dict[str, Any] = {}
    if CONFIG.is_file():
        config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
        if "sensor_node" not in config and "HUB_NODE_PORT" not in os.environ:
            pytest.skip(f"{CONFIG} has no [sensor_node]: this box has no sensor node")
        table = dict(config.get("sensor_node", {}))
    if "HUB_NODE_PORT" in os.environ:
        table["port"] = os.environ["HUB_NODE_PORT"]
    return SensorNodeSettings(**table)


@pytest.fixture
def settings(board: RealBoard) -> SensorNodeSettings:
    settings = node_settings()
    assert Path(settings.port).exists(), (
        f"{settings.port} does not exist on this {board.model or board.family}: is the node wired and powered "
        f"(and the UART enabled: enable_uart=1 on a Pi)?"
    )
    return settings


async def test_node_answers_its_handshake(settings: SensorNodeSettings) -> None:
    link = SerialNodeLink(settings)
    await link.start()
    try:
        connected = await link.wait_connected(10)
        health = link.health()
        assert connected, f"no session with the node on {settings.port}: {health.state}, {health.last_error}"
        info = link.info
        assert info is not None
        assert info.protocol.split(".")[0] == str(protocol.PROTOCOL_MAJOR)
        assert info.firmware
        assert info.node_id
        assert info.failsafe_s == pytest.approx(settings.failsafe_timeout_s, rel=0.01)
        readings = await link.read_sensors()
        if "soil" in info.capabilities:
            assert len(readings.soil_raw) == info.soil_probes
            assert all(0 <= raw <= 0xFFFF for raw in readings.soil_raw)
        status = await link.status()
        assert status.uptime_s > 0
        assert link.health().ok
    finally:
        await link.stop()
