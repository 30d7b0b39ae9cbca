"""The portal's firewall: one nftables table of the hub's own (nft), or a dry stand-in in memory (simulated)."""

from __future__ import annotations

from drivers.firewall.dry import DryFirewall
from drivers.firewall.interface import (
    ClientElement,
    ClientState,
    Firewall,
    FirewallError,
    FirewallState,
    normalise_ip,
    normalise_mac,
)
from drivers.firewall.nft import NftFirewall, nft_path, run_nft
from drivers.firewall.ruleset import TABLE, FirewallConfig, render_table

__all__ = [
    "TABLE",
    "ClientElement",
    "ClientState",
    "DryFirewall",
    "Firewall",
    "FirewallConfig",
    "FirewallError",
    "FirewallState",
    "NftFirewall",
    "build",
    "nft_path",
    "normalise_ip",
    "normalise_mac",
    "render_table",
    "run_nft",
]


def build(config: FirewallConfig, real: bool) -> Firewall:
    """nft when `real`, else the dry backend."""
    return NftFirewall(config) if real else DryFirewall(config)
