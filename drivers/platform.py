"""Which board this is: a Raspberry Pi, a Jetson, or something else (then hardware is simulated)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

MODEL_PATHS = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
JETSON_RELEASE = Path("/etc/nv_tegra_release")


@dataclass(frozen=True)
class Board:
    family: str  # "raspberry-pi" | "jetson" | "other"
    model: str
    machine: str

    @property
    def real_hardware(self) -> bool:
        return self.family in ("raspberry-pi", "jetson")


def detect_board(root: Path = Path("/")) -> Board:
    machine = platform.machine()
    model = ""
    for path in MODEL_PATHS:
        candidate = root / path.relative_to("/")
        try:
            model = candidate.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
            break
        except OSError:
            continue
    if "Raspberry Pi" in model:
        return Board("raspberry-pi", model, machine)
    if (root / JETSON_RELEASE.relative_to("/")).exists() or "NVIDIA Jetson" in model:
        return Board("jetson", model or "NVIDIA Jetson", machine)
    return Board("other", model or platform.node(), machine)


def use_simulated(setting: str, board: Board) -> bool:
    """'auto' simulates exactly when no supported board is found."""
    if setting == "simulated":
        return True
    if setting == "real":
        return False
    return not board.real_hardware
