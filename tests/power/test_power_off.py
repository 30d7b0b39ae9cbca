"""The whole hub on a simulated UPS: mains loss is a safety event at once; a flat battery stops the hub
cleanly (everything stored) and then runs the shutdown command; mains back before that cancels it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from hub.app import Hub
from hub.config import load_settings
from hub.config.settings import Secrets
from hub.store.database import DB_NAME
from tests.support.processes import free_port


def config(tmp_path: Path, marker: Path, delay_s: float) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""[hub]
id = "thon-ups"
data_dir = "{tmp_path / "data"}"
secrets_file = "{tmp_path / "secrets.toml"}"
hardware = "simulated"

[management]
port = {free_port()}

[power]
sample_interval_s = 0.05
confirm_samples = 1
battery_low_v = 6.4
battery_ok_v = 7.0
shutdown_delay_s = {delay_s}
shutdown_command = ["sh", "-c", "echo powered-off > {marker}"]
""",
        encoding="utf-8",
    )
    return path


def outbox(tmp_path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    conn = sqlite3.connect(tmp_path / "data" / DB_NAME)
    try:
        return [(c, k, json.loads(p)) for c, k, p in conn.execute("SELECT cls, kind, payload FROM outbox ORDER BY seq")]
    finally:
        conn.close()


async def until(predicate: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def start(tmp_path: Path, marker: Path, delay_s: float) -> tuple[Hub, asyncio.Task[int]]:
    path = config(tmp_path, marker, delay_s)
    hub = Hub(load_settings(path), Secrets(), path)
    task = asyncio.create_task(hub.run())
    await until(lambda: hub.supervisor is not None and hub.health()["services"]["power"]["state"] == "running")
    return hub, task


async def test_flat_battery_stops_the_hub_cleanly_then_powers_off(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    hub, task = await start(tmp_path, marker, delay_s=0.3)
    assert hub.power is not None
    ups = hub.power.simulation.ups if hub.power.simulation else None
    assert ups is not None

    ups.lose_mains()
    await until(lambda: any(k == "power.mains_lost" for _, k, _ in outbox(tmp_path)))
    assert [c for c, k, _ in outbox(tmp_path) if k == "power.mains_lost"] == [3]  # safety class
    assert not task.done()

    ups.set_battery_voltage(6.1)
    exit_code = await asyncio.wait_for(task, timeout=20)
    assert exit_code == 0
    assert marker.read_text().strip() == "powered-off"
    kinds = [k for _, k, _ in outbox(tmp_path)]
    assert kinds.index("power.battery_low") < kinds.index("power.shutdown") < kinds.index("hub.stopped")
    assert kinds[-1] == "hub.stopped"  # the last thing written before the power went
    conn = sqlite3.connect(tmp_path / "data" / DB_NAME)
    running = conn.execute("SELECT count(*) FROM state WHERE key = 'hub.running'").fetchone()[0]
    conn.close()
    assert running == 0  # a clean stop: the next start will not report a crash


async def test_mains_back_before_the_deadline_cancels_the_power_off(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    hub, task = await start(tmp_path, marker, delay_s=1.5)
    assert hub.power is not None
    ups = hub.power.simulation.ups if hub.power.simulation else None
    assert ups is not None
    ups.lose_mains()
    ups.set_battery_voltage(6.1)
    await until(lambda: hub.power is not None and hub.power.plan.state == "armed")
    assert "power-off armed" in " ".join(hub.health()["problems"])
    ups.restore_mains()
    await until(lambda: hub.power is not None and hub.power.plan.state == "idle")
    await asyncio.sleep(1.8)  # past the original deadline
    assert not marker.exists()
    assert not task.done()
    kinds = [k for _, k, _ in outbox(tmp_path)]
    assert "power.mains_restored" in kinds
    assert "power.shutdown" not in kinds
    hub.request_stop("test over")
    assert await asyncio.wait_for(task, timeout=10) == 0
