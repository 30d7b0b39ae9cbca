"""What the portal asks of a firewall backend, and what it reads back.

A backend owns one nftables table (or, dry, its in-memory stand-in): it loads the whole table in one
transaction together with the admitted clients, adds and removes clients with their own timeouts, and reports
what the kernel holds (which clients are still in, how long each has left, how many bytes each moved).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Protocol

from drivers.base import DriverHealth

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalise_mac(mac: str) -> str:
    """'AA-BB-CC-DD-EE-FF' or 'aa:bb:…' -> 'aa:bb:cc:dd:ee:ff'; ValueError for anything else."""
    value = mac.strip().lower().replace("-", ":")
    if not _MAC.match(value):
        raise ValueError(f"not a MAC address: {mac!r}")
    return value


def normalise_ip(ip: str) -> str:
    """A dotted IPv4 address in canonical form; ValueError for anything else (IPv6 is not admitted)."""
    return str(ipaddress.IPv4Address(ip.strip()))


@dataclass(frozen=True)
class ClientElement:
    """One admitted client as the firewall holds it: the address and MAC it may send from, for how long."""

    ip: str
    mac: str
    timeout_s: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", normalise_ip(self.ip))
        object.__setattr__(self, "mac", normalise_mac(self.mac))
        if self.timeout_s < 1:
            raise ValueError(f"timeout must be at least 1 s, not {self.timeout_s}")


@dataclass(frozen=True)
class ClientState:
    """A client as read back: still admitted, seconds left, bytes counted since its element was (re)made."""

    ip: str
    mac: str
    expires_s: float
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass
class FirewallState:
    present: bool  # is our table loaded at all
    clients: dict[str, ClientState] = field(default_factory=dict)  # by IP

    def client(self, ip: str) -> ClientState | None:
        return self.clients.get(ip)


class FirewallError(RuntimeError):
    """nft refused a command (syntax, missing privilege, missing kernel support); the message says which."""


class Firewall(Protocol):
    kind: str  # "nft" or "dry"

    async def load(self, clients: list[ClientElement]) -> None:
        """Replace the whole table, admitted clients included, in one transaction: no instant in between."""
        ...

    async def admit(self, client: ClientElement) -> None:
        """Add the client, or restart its timeout if it is already in (its counters start again from 0)."""
        ...

    async def revoke(self, ip: str, mac: str) -> None:
        """Remove the client (no error if it is already gone)."""
        ...

    async def read(self) -> FirewallState:
        """What the table holds now."""
        ...

    async def remove(self) -> None:
        """Delete the table (the portal is switched off)."""
        ...

    def health(self) -> DriverHealth: ...
