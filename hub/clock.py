"""Time as the box sees it: wall clock (may jump at NTP sync), boot-relative time, and which boot this is."""

from __future__ import annotations

import functools
import time
import uuid
from pathlib import Path

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def wall() -> float:
    return time.time()


def uptime() -> float:
    """Seconds since boot, counting suspend, immune to wall-clock jumps."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@functools.cache
def boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        # Not Linux (a developer's laptop): one id per process is the best stand-in.
        return str(uuid.uuid4())
