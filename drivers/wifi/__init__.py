"""The Wi-Fi side of the box: access point (hostapd) and DHCP/DNS (dnsmasq) configuration, interface state,
and the neighbour table that tells which MAC an address belongs to."""

from __future__ import annotations

from drivers.wifi.config import (
    DNSMASQ_FILE,
    ENV_FILE,
    HOSTAPD_FILE,
    RULESET_FILE,
    WifiConfig,
    render_dnsmasq,
    render_env,
    render_hostapd,
    write_all,
    write_if_changed,
)
from drivers.wifi.link import ArpTable, InterfaceState, Neighbours, SimulatedNeighbours, has_address, interface_state

__all__ = [
    "DNSMASQ_FILE",
    "ENV_FILE",
    "HOSTAPD_FILE",
    "RULESET_FILE",
    "ArpTable",
    "InterfaceState",
    "Neighbours",
    "SimulatedNeighbours",
    "WifiConfig",
    "has_address",
    "interface_state",
    "render_dnsmasq",
    "render_env",
    "render_hostapd",
    "write_all",
    "write_if_changed",
]
