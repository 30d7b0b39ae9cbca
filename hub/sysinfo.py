"""What the operating system tells about the box: memory, disk, load, temperature, uptime.

Plain /proc and /sys reads and statvfs; no hardware library (those belong to drivers/).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hub import clock

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def memory() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return {"total_bytes": values.get("MemTotal", 0), "available_bytes": values.get("MemAvailable", 0)}


def process_rss_bytes(pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def disk(path: Path) -> dict[str, int]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"total_bytes": usage.total, "free_bytes": usage.free}


def cpu_temperature_c() -> float | None:
    try:
        return int(THERMAL_ZONE.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def vitals(data_dir: Path) -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    return {
        "uptime_s": round(clock.uptime(), 1),
        "load": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "memory": memory(),
        "disk": disk(data_dir),
        "cpu_temp_c": cpu_temperature_c(),
        "hub_rss_bytes": process_rss_bytes(),
    }
