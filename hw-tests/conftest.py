"""Hardware tests run only on a real Raspberry Pi or Jetson; anywhere else every one of them is skipped.

Never faked: there is no simulated backend and no override here. The board is recognised the way the
kernel and NVIDIA describe it, independently of the hub's own detection in drivers/platform.py (which
test_platform.py checks against this).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import pytest

MODEL_PATHS = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
JETSON_RELEASE = Path("/etc/nv_tegra_release")
HW_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RealBoard:
    family: str  # "raspberry-pi" | "jetson"
    model: str  # the device-tree model string ("" if a Jetson has none)
    machine: str  # platform.machine(), e.g. "aarch64"


def read_model() -> str | None:
    """The device-tree model string, or None if this machine has no device tree (a PC, a VM)."""
    for path in MODEL_PATHS:
        try:
            return path.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
        except OSError:
            continue
    return None


def detect_real_board() -> RealBoard | None:
    model = read_model() or ""
    if "Raspberry Pi" in model:
        return RealBoard("raspberry-pi", model, platform.machine())
    if JETSON_RELEASE.exists():
        return RealBoard("jetson", model, platform.machine())
    return None


BOARD = detect_real_board()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    hw_items = [item for item in items if HW_DIR in item.path.parents or item.path.parent == HW_DIR]
    for item in hw_items:
        # Marked before `-m hw` selects, so a test that forgets its mark is still run, not dropped.
        item.add_marker(pytest.mark.hw)
        if BOARD is None:
            item.add_marker(
                pytest.mark.skip(reason="not a Raspberry Pi or Jetson: hardware tests run only on a real box")
            )


@pytest.fixture(scope="session")
def board() -> RealBoard:
    """The board under test (collection already skipped every test if there is none)."""
    if BOARD is None:  # pragma: no cover - unreachable after the collection hook
        pytest.skip("no real board")
    return BOARD
