"""What the kernel says about the Wi-Fi side: the interface's state and addresses, and which MAC an address has.

Read from /sys and /proc only (no privileges, no subprocess): the MAC of a client comes from the neighbour
(ARP) table of the network namespace the hub runs in, which the kernel fills as soon as the client talks to it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PROC_ARP = Path("/proc/net/arp")
SYS_NET = Path("/sys/class/net")
ATF_COM = 0x2  # the entry is complete (resolved)


class Neighbours(Protocol):
    def mac_for(self, ip: str) -> str | None:
        """The MAC the Wi-Fi side's `ip` is sending from, or None if the kernel does not know it."""
        ...


class ArpTable:
    """The kernel's IPv4 neighbour table, limited to one interface."""

    def __init__(self, interface: str, path: Path = PROC_ARP) -> None:
        self.interface = interface
        self.path = path

    def mac_for(self, ip: str) -> str | None:
        try:
            lines = self.path.read_text().splitlines()[1:]
        except OSError:
            return None
        for line in lines:
            fields = line.split()
            if len(fields) < 6 or fields[0] != ip or fields[5] != self.interface:
                continue
            if int(fields[2], 16) & ATF_COM and fields[3] != "00:00:00:00:00:00":
                return fields[3].lower()
        return None


class SimulatedNeighbours:
    """Simulated hardware (the demo on loopback): every address has a stable, locally administered MAC."""

    def mac_for(self, ip: str) -> str | None:
        digest = hashlib.sha256(ip.encode()).digest()
        return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


@dataclass(frozen=True)
class InterfaceState:
    name: str
    present: bool
    up: bool
    addresses: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"present": self.present, "up": self.up, "addresses": list(self.addresses)}


def interface_state(name: str) -> InterfaceState:
    base = SYS_NET / name
    if not base.exists():
        return InterfaceState(name, False, False)
    try:
        operstate = (base / "operstate").read_text().strip()
        flags = int((base / "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return InterfaceState(name, True, False)
    # IFF_UP and a carrier ("up"), or "unknown" (some drivers, veth peers) with IFF_UP.
    up = bool(flags & 0x1) and operstate in ("up", "unknown")
    return InterfaceState(name, True, up, tuple(_addresses(name)))


def _addresses(name: str) -> list[str]:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    try:
        out = subprocess.run(
            [ip, "-j", "addr", "show", "dev", name], capture_output=True, text=True, timeout=3, check=False
        ).stdout
        data = json.loads(out or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in data
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    ]


def has_address(state: InterfaceState, address: ipaddress.IPv4Interface) -> bool:
    return address.with_prefixlen in state.addresses
