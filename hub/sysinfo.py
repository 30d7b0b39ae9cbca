"""What the operating system tells about the box: memory, disk, load, temperature, uptime.

Plain /proc and /sys reads and statvfs; no hardware library (those belong to drivers/).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import socket
import subprocess
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
        "throttling": throttling(),
        "hub_rss_bytes": process_rss_bytes(),
    }


# ---- time -------------------------------------------------------------------------------------------------------


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux, 64-bit longs)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5
RTC_DIR = Path("/sys/class/rtc/rtc0")


def time_sync() -> dict[str, Any]:
    """Whether the kernel clock is disciplined by NTP, and how far off it thinks it is (adjtimex with modes=0 only
    reads, so it needs no privilege), plus the hardware clock if the board has one. A box without an RTC that has
    not synchronised yet has a wrong date: schedules and logs must be read with that in mind."""
    result: dict[str, Any] = {"synchronised": None, "offset_ms": None, "max_error_ms": None}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
        if state >= 0:
            scale = 1e-6 if tx.status & STA_NANO else 1e-3
            result["synchronised"] = state != TIME_ERROR and not tx.status & STA_UNSYNC
            result["offset_ms"] = round(tx.offset * scale, 3)
            result["max_error_ms"] = round(tx.maxerror / 1000, 1)
    except (OSError, AttributeError):
        pass
    rtc = None
    with contextlib.suppress(OSError):
        rtc = (RTC_DIR / "name").read_text().strip()
    result["rtc"] = rtc
    result["source"] = "ntp" if result["synchronised"] else ("rtc" if rtc else "none")
    return result


THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
_THROTTLE_BITS = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred",
    17: "frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}


def throttling() -> dict[str, Any] | None:
    """A Raspberry Pi's firmware flags (the same bits as `vcgencmd get_throttled`); None on other boards."""
    try:
        raw = int(THROTTLED.read_text().strip(), 16)
    except (OSError, ValueError):
        return None
    return {"raw": hex(raw), "flags": [text for bit, text in _THROTTLE_BITS.items() if raw & (1 << bit)]}


# ---- network ----------------------------------------------------------------------------------------------------


def network_interfaces() -> list[dict[str, Any]]:
    """Interfaces with their state and addresses, from iproute2's JSON (present on every Debian box)."""
    try:
        out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, timeout=3, check=True).stdout
        raw = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return [{"name": name, "state": None, "mac": None, "addresses": []} for _, name in socket.if_nameindex()]
    return [
        {
            "name": item.get("ifname"),
            "state": item.get("operstate"),
            "mac": item.get("address"),
            "addresses": [f"{a.get('local')}/{a.get('prefixlen')}" for a in item.get("addr_info", [])],
        }
        for item in raw
    ]
