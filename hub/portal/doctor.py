"""`hub doctor`'s checks of the portal: nft, the table, the Wi-Fi interface, hostapd/dnsmasq and their files.

Read-only, like the rest of `hub doctor`: nothing is loaded, written or restarted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from drivers.firewall import nft_path, render_table
from drivers.firewall.nft import table_status
from drivers.platform import detect_board, use_simulated
from drivers.wifi import DNSMASQ_FILE, HOSTAPD_FILE, interface_state, render_dnsmasq, render_hostapd
from hub.config.settings import Settings
from hub.portal.service import CONFIG_SUBDIR, firewall_config, uses_nft, wifi_config

Level = Literal["ok", "warn", "fail"]
Line = tuple[Level, str, str]


def portal_checks(settings: Settings) -> list[Line]:
    portal = settings.portal
    if portal is None or not portal.enabled:
        return [("ok", "portal", "not configured (no [portal] in hub.toml): no public Wi-Fi")]
    simulated = use_simulated(settings.hub.hardware, detect_board())
    real = uses_nft(portal, simulated)
    lines: list[Line] = []
    bad: Level = "fail" if real else "warn"
    lines.append(("ok", "portal", f"{portal.url} on {portal.interface} ({'nft' if real else 'dry'} firewall)"))

    binary = nft_path()
    lines.append(("ok", "  nft", binary) if binary else (bad, "  nft", "not installed (apt-get install nftables)"))
    if real:
        present, text = table_status()
        level: Level = "ok" if present else ("fail" if present is False else "warn")
        if present is None:
            text += " (run `hub doctor` as root or the service user to read the table)"
        lines.append((level, "  nft table", f"inet village_hub_portal: {text}"))
    else:
        render_table(firewall_config(portal, settings.management))  # the config still renders
        lines.append(("ok", "  nft table", "dry backend on simulated hardware: the host's firewall is not touched"))

    state = interface_state(portal.interface)
    if not state.present:
        lines.append((bad, "  wifi if", f"{portal.interface} does not exist"))
    elif not state.up:
        lines.append((bad, "  wifi if", f"{portal.interface} is down"))
    elif portal.address not in state.addresses:
        lines.append(
            (
                bad,
                "  wifi if",
                f"{portal.interface} is up without {portal.address} ({', '.join(state.addresses) or 'no address'})",
            )
        )
    else:
        lines.append(("ok", "  wifi if", f"{portal.interface} up with {portal.address}"))
    if portal.uplink_interface:
        up = interface_state(portal.uplink_interface)
        lines.append(
            ("ok", "  uplink if", f"{portal.uplink_interface} up")
            if up.up
            else (
                "warn",
                "  uplink if",
                f"{portal.uplink_interface} is {'down' if up.present else 'missing'}: no internet for admitted phones",
            )
        )

    directory = Path(settings.hub.data_dir) / CONFIG_SUBDIR
    wifi = wifi_config(portal)
    for name, text, tool, package in (
        (HOSTAPD_FILE, render_hostapd(wifi), "hostapd", "hostapd"),
        (DNSMASQ_FILE, render_dnsmasq(wifi), "dnsmasq", "dnsmasq-base"),
    ):
        path = directory / name
        if not path.exists():
            lines.append(("warn", f"  {tool}", f"{path} not written yet (`hub run` writes it)"))
        elif path.read_text(encoding="utf-8", errors="replace") != text:
            lines.append(("warn", f"  {tool}", f"{path} differs from hub.toml: the hub rewrites it at its next start"))
        elif real and shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            lines.append(
                ("fail", f"  {tool}", f"{path} in place, but {tool} is not installed (apt-get install {package})")
            )
        else:
            lines.append(("ok", f"  {tool}", f"{path} in place"))
    return lines
