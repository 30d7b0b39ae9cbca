"""The box itself: a 64-bit Raspberry Pi or Jetson, recognised as such by the hub."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from drivers.platform import detect_board

if TYPE_CHECKING:  # conftest is pytest's to import; only its type is needed here
    from conftest import RealBoard

pytestmark = pytest.mark.hw

MODEL_PATHS = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))


def test_board_is_a_64_bit_pi_or_jetson(board: RealBoard) -> None:
    readable = [path for path in MODEL_PATHS if path.is_file()]
    assert readable, f"no device-tree model at {' or '.join(map(str, MODEL_PATHS))}"
    model = readable[0].read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
    assert model == board.model
    if board.family == "raspberry-pi":
        assert "Raspberry Pi" in model
    else:
        assert Path("/etc/nv_tegra_release").read_text(encoding="utf-8", errors="replace").strip()
        assert "NVIDIA" in model or "Jetson" in model, f"unexpected Jetson model {model!r}"
    assert platform.machine() == "aarch64", f"a {platform.machine()} userland: the images are arm64"


def test_hub_recognises_the_board(board: RealBoard) -> None:
    detected = detect_board()
    assert detected.real_hardware, f"drivers.platform sees {detected}: the hub would simulate the hardware"
    assert detected.family == board.family
    if board.model:
        assert detected.model == board.model
