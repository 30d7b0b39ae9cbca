"""Is the hardware watchdog armed, and with a timeout short enough? (See README.md: RuntimeWatchdogSec.)

Read from /sys/class/watchdog/watchdogN/{identity,timeout,state}. `timeout` and `state` exist only with
CONFIG_WATCHDOG_SYSFS (Raspberry Pi OS kernels have it); `state` says whether anything (systemd) opened the
device and keeps feeding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SYSFS_WATCHDOG = Path("/sys/class/watchdog")
# bcm2835_wdt's limit: a 20-bit counter of 1/65536 s ticks, just under 16 s. Newer kernels accept longer
# timeouts and bridge them in software, which would let a hung systemd go unnoticed that much longer.
MAX_TIMEOUT_S = 15

WatchdogState = Literal["ok", "too_long", "inactive", "unknown", "absent"]


@dataclass(frozen=True, slots=True)
class WatchdogDevice:
    name: str  # watchdog0
    identity: str | None  # "Broadcom BCM2835 Watchdog timer"
    timeout_s: int | None
    active: bool | None  # None: the kernel does not say


@dataclass(frozen=True, slots=True)
class WatchdogStatus:
    state: WatchdogState
    message: str
    devices: list[WatchdogDevice] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "message": self.message,
            "devices": [
                {"name": d.name, "identity": d.identity, "timeout_s": d.timeout_s, "active": d.active}
                for d in self.devices
            ],
        }


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def check_watchdog(root: Path = SYSFS_WATCHDOG, max_timeout_s: int = MAX_TIMEOUT_S) -> WatchdogStatus:
    """ok: the first watchdog (the one systemd uses, /dev/watchdog0) has a timeout <= max_timeout_s and, where
    the kernel says, is active. too_long: its timeout is above that. inactive: nobody feeds it
    (RuntimeWatchdogSec unset). unknown: it exists but its timeout cannot be read. absent: no watchdog."""
    names = sorted((p.name for p in root.glob("watchdog*")), key=lambda n: int(n[8:]) if n[8:].isdigit() else 1 << 30)
    devices = []
    for name in names:
        timeout = _read(root / name / "timeout")
        state = _read(root / name / "state")
        devices.append(
            WatchdogDevice(
                name=name,
                identity=_read(root / name / "identity"),
                timeout_s=int(timeout) if timeout and timeout.isdigit() else None,
                active=None if state is None else state == "active",
            )
        )
    if not devices:
        return WatchdogStatus("absent", f"no hardware watchdog in {root} (is bcm2835_wdt loaded?)")
    main = devices[0]
    label = f"{main.name} ({main.identity or 'unknown driver'})"
    if main.timeout_s is None:
        return WatchdogStatus(
            "unknown", f"{label}: timeout not readable (kernel without CONFIG_WATCHDOG_SYSFS?)", devices
        )
    if main.timeout_s > max_timeout_s:
        return WatchdogStatus("too_long", f"{label}: timeout {main.timeout_s} s is over {max_timeout_s} s", devices)
    if main.active is False:
        return WatchdogStatus(
            "inactive", f"{label}: not armed; set RuntimeWatchdogSec in /etc/systemd/system.conf", devices
        )
    return WatchdogStatus("ok", f"{label}: armed, timeout {main.timeout_s} s", devices)
