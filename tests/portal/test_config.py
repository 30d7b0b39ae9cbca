"""[portal] settings, and the files generated from them: the nftables table, hostapd.conf, dnsmasq.conf."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.firewall import TABLE, ClientElement, FirewallConfig, render_table
from drivers.firewall.nft import parse_table
from drivers.firewall.ruleset import admit_commands, revoke_commands
from drivers.wifi import WifiConfig, render_dnsmasq, render_hostapd
from hub.config.settings import Settings
from hub.portal.service import firewall_config, wifi_config
from hub.portal.settings import PortalSettings
from tests.portal.netns import unavailable

CONFIG = FirewallConfig(
    wifi_interface="wlan0",
    wifi_address=ipaddress.IPv4Interface("10.77.0.1/24"),
    portal_port=80,
    management_ports=(8080,),
    blocked_networks=(ipaddress.IPv4Network("192.168.0.0/16"), ipaddress.IPv4Network("192.168.1.0/24")),
    download_bytes_per_s=256_000,
    upload_bytes_per_s=128_000,
)
CLIENTS = [ClientElement("10.77.0.23", "AA:BB:CC:00:00:01", 3600), ClientElement("10.77.0.24", "aa:bb:cc:00:00:02", 5)]


def test_settings_defaults_and_refusals() -> None:
    s = PortalSettings()
    assert s.host == "10.77.0.1"
    assert s.url == "http://10.77.0.1/"
    assert s.session_s == 86_400
    assert s.api_url == "http://10.77.0.1/api/captive"
    assert PortalSettings(port=8081).url == "http://10.77.0.1:8081/"
    for bad in (
        {"listen_host": "0.0.0.0"},
        {"address": "10.77.0.0/24"},
        {"address": "10.77.0.1"},
        {"ssid": "Wi-Fi miễn phí của thôn Quảng Lưu 3"},  # more than 32 bytes
        {"blocked_networks": ["not a net"]},
        {"uplink_interface": "wlan0"},
        {"session_s": 0},
        {"port": "80"},  # strict: TOML gives an integer
    ):
        with pytest.raises(ValidationError):
            PortalSettings.model_validate(bad)
    with pytest.raises(ValidationError, match="management"):
        Settings.model_validate({"hub": {"id": "thon-a"}, "management": {"port": 8080}, "portal": {"port": 8080}})
    settings = Settings.model_validate({"hub": {"id": "thon-a"}, "management": {"host": "192.168.1.10"}, "portal": {}})
    assert settings.portal is not None
    config = firewall_config(settings.portal, settings.management)
    assert ipaddress.IPv4Network("192.168.1.10/32") in config.blocked_networks
    assert config.download_bytes_per_s == 2048 * 125
    assert config.management_ports == (8080,)
    assert Settings.model_validate({"hub": {"id": "thon-a"}}).portal is None


def test_example_config_documents_the_portal() -> None:
    from hub.config import load_settings

    settings = load_settings(Path(__file__).resolve().parents[2] / "hub.example.toml")
    assert settings.portal is not None
    text = (Path(__file__).resolve().parents[2] / "hub.example.toml").read_text()
    portal_block = text.split("[portal]")[1]
    for key in PortalSettings.model_fields:
        assert f"\n{key} =" in portal_block or f"\n# {key} =" in portal_block, f"[portal] {key} is not documented"


def test_ruleset_text() -> None:
    text = render_table(CONFIG, CLIENTS)
    assert text.startswith("# Generated")
    assert f"delete table inet {TABLE}" in text
    assert "10.77.0.23 . aa:bb:cc:00:00:01 timeout 3600s" in text
    assert "tcp dport { 8080 } counter drop" in text  # first rule from the Wi-Fi side, whatever the state
    assert "redirect to :80" in text
    assert "reject with tcp reset" in text
    assert "limit rate over 256000 bytes/second" in text
    assert "limit rate over 128000 bytes/second" in text
    assert "meta nfproto ipv6 drop" in text
    assert 'ip saddr 10.77.0.0/24 oifname != "wlan0" masquerade' in text
    assert "chain fwd" not in text  # 'fwd' is an nft keyword
    with pytest.raises(ValueError, match="management port"):
        FirewallConfig("wlan0", ipaddress.IPv4Interface("10.77.0.1/24"), 8080, (8080,))
    with pytest.raises(ValueError, match="interface"):
        FirewallConfig('wl"0', ipaddress.IPv4Interface("10.77.0.1/24"), 80, (8080,))


def test_parse_nft_json() -> None:
    doc = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {
                "set": {
                    "name": "clients",
                    "elem": [
                        {
                            "elem": {
                                "val": {"concat": ["10.77.0.23", "aa:bb:cc:00:00:01"]},
                                "timeout": 3600,
                                "expires": 3000,
                                "counter": {"packets": 3, "bytes": 700},
                            }
                        }
                    ],
                }
            },
            {
                "set": {
                    "name": "clients_down",
                    "elem": [
                        {"elem": {"val": "10.77.0.23", "expires": 3000, "counter": {"packets": 9, "bytes": 9000}}}
                    ],
                }
            },
        ]
    }
    state = parse_table(doc)
    client = state.clients["10.77.0.23"]
    assert (client.mac, client.expires_s, client.bytes_up, client.bytes_down) == ("aa:bb:cc:00:00:01", 3000, 700, 9000)


@pytest.mark.netns
def test_ruleset_loads_into_nftables(tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        print(f"\nskipped: {reason}")
        pytest.skip(reason)
    ns = f"vh-nft-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:

        def nft(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ip", "netns", "exec", ns, "nft", *args], input=stdin, capture_output=True, text=True, check=False
            )

        text = render_table(CONFIG, CLIENTS)
        for _ in range(2):  # loading twice is loading once
            result = nft(text, "-f", "-")
            assert result.returncode == 0, result.stderr
        nft(admit_commands(TABLE, ClientElement("10.77.0.30", "aa:bb:cc:00:00:30", 600)), "-f", "-")
        nft(admit_commands(TABLE, ClientElement("10.77.0.23", "aa:bb:cc:00:00:01", 7200)), "-f", "-")  # a renewal
        assert nft(revoke_commands(TABLE, "10.77.0.24", "aa:bb:cc:00:00:02"), "-f", "-").returncode == 0
        assert nft(revoke_commands(TABLE, "10.77.0.99", "aa:bb:cc:00:00:99"), "-f", "-").returncode == 0  # absent
        state = parse_table(json.loads(nft("", "-j", "list", "table", "inet", TABLE).stdout))
        assert sorted(state.clients) == ["10.77.0.23", "10.77.0.30"]
        assert 7000 < state.clients["10.77.0.23"].expires_s <= 7200
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_hostapd_and_dnsmasq() -> None:
    settings = PortalSettings(ssid="Wi-Fi Thôn Đông", wpa_passphrase="matkhau123", dns_servers=["1.1.1.1"])
    hostapd = render_hostapd(wifi_config(settings))
    assert "interface=wlan0" in hostapd
    assert "ap_isolate=1" in hostapd
    assert "wpa=2" in hostapd
    assert "ssid2=" + "Wi-Fi Thôn Đông".encode().hex() in hostapd
    assert "country_code=VN" in hostapd
    dnsmasq = render_dnsmasq(wifi_config(settings))
    assert 'dhcp-option=114,"http://10.77.0.1/api/captive"' in dnsmasq
    assert "dhcp-range=10.77.0.11,10.77.0.254,255.255.255.0,240m" in dnsmasq
    assert "dhcp-option=option:router,10.77.0.1" in dnsmasq
    assert "server=1.1.1.1" in dnsmasq
    with pytest.raises(ValueError, match="line breaks"):
        render_hostapd(WifiConfig("wlan0", ipaddress.IPv4Interface("10.77.0.1/24"), "a\nb"))


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed (apt-get install dnsmasq-base)")
def test_dnsmasq_accepts_its_file(tmp_path: Path) -> None:
    path = tmp_path / "dnsmasq.conf"
    path.write_text(render_dnsmasq(wifi_config(PortalSettings())))
    result = subprocess.run(["dnsmasq", "--test", f"--conf-file={path}"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "syntax check OK" in result.stderr, result.stderr
