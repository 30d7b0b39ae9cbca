"""The dry backend: the same table as text (for anyone to read) and the same admission semantics in memory.

Used on simulated hardware (the demo, a laptop, tests of the hub process): the host's firewall is never touched,
yet clients are admitted, expire on their own timeouts (monotonic time, as the kernel counts them) and are
removed exactly as with nft, so the portal behaves the same. No bytes flow, so its counters stay at zero
unless a test adds some.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.base import DriverHealth
from drivers.firewall.interface import ClientElement, ClientState, FirewallState
from drivers.firewall.ruleset import FirewallConfig, render_table


class DryFirewall:
    kind = "dry"

    def __init__(self, config: FirewallConfig, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.monotonic = monotonic
        self.present = False
        self.ruleset = ""
        self.loads = 0
        # ip -> (mac, deadline on the monotonic clock, bytes up, bytes down)
        self._clients: dict[str, tuple[str, float, int, int]] = {}

    def _expire(self) -> None:
        now = self.monotonic()
        for ip in [ip for ip, (_, deadline, _, _) in self._clients.items() if deadline <= now]:
            del self._clients[ip]

    def allows(self, ip: str, mac: str) -> bool:
        """Would the table forward a packet from this address and MAC (the `clients` set lookup)?"""
        self._expire()
        held = self._clients.get(ip)
        return self.present and held is not None and held[0] == mac

    def add_traffic(self, ip: str, up: int, down: int) -> None:
        """Tests: count bytes for a client, as the kernel's per-element counters would."""
        mac, deadline, u, d = self._clients[ip]
        self._clients[ip] = (mac, deadline, u + up, d + down)

    async def load(self, clients: list[ClientElement]) -> None:
        self.ruleset = render_table(self.config, clients)
        now = self.monotonic()
        self._clients = {c.ip: (c.mac, now + c.timeout_s, 0, 0) for c in clients}
        self.present = True
        self.loads += 1

    async def admit(self, client: ClientElement) -> None:
        self._clients[client.ip] = (client.mac, self.monotonic() + client.timeout_s, 0, 0)

    async def revoke(self, ip: str, mac: str) -> None:
        held = self._clients.get(ip)
        if held is not None and held[0] == mac:
            del self._clients[ip]

    async def read(self) -> FirewallState:
        if not self.present:
            return FirewallState(present=False)
        self._expire()
        now = self.monotonic()
        return FirewallState(
            present=True,
            clients={
                ip: ClientState(ip, mac, max(0.0, deadline - now), up, down)
                for ip, (mac, deadline, up, down) in self._clients.items()
            },
        )

    async def remove(self) -> None:
        self.present = False
        self._clients.clear()

    def health(self) -> DriverHealth:
        return DriverHealth(
            ok=True,
            state="simulated",
            detail={"backend": self.kind, "table": f"inet {self.config.table}", "table_present": self.present},
        )
