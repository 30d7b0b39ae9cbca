from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.power import PowerSettings, ShutdownPlan

# A harmless stand-in for `systemctl poweroff`: it leaves a marker file.
MARKER_SCRIPT = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('poweroff')"


async def exists(path: Path) -> bool:
    """Off the event loop, as async code should touch files (ruff's ASYNC240)."""
    return await asyncio.to_thread(path.exists)


def state(plan: ShutdownPlan) -> str:
    """The plan's state, read afresh: plain str so that mypy does not narrow it between two reads."""
    return plan.state


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "powered-off"


SettingsFactory = Callable[..., PowerSettings]


@pytest.fixture
def make_settings(marker: Path) -> SettingsFactory:
    def make(**overrides: Any) -> PowerSettings:
        values: dict[str, Any] = {
            "ina219_address": 0x42,
            "sample_interval_s": 0.02,
            "battery_low_v": 6.4,
            "battery_ok_v": 7.0,
            "confirm_samples": 2,
            "shutdown_delay_s": 0.3,
            "shutdown_command": [sys.executable, "-c", MARKER_SCRIPT, str(marker)],
        }
        return PowerSettings(**(values | overrides))

    return make
