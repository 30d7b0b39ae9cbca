"""The `[portal]` section of hub.toml: the public Wi-Fi, its captive portal, and the limits of each client.

```toml
[portal]
interface = "wlan0"              # the access point's interface (hostapd)
address = "10.77.0.1/24"         # the hub's address on it; phones get the rest of the subnet by DHCP
ssid = "Wi-Fi Thôn 3 (miễn phí)"
session_s = 86400                # 24 h, renewable from the portal page
max_clients = 100
download_kbps = 2048             # per client; 0 = no limit
upload_kbps = 1024
daily_quota_mb = 0               # per client per day; 0 = none
```

Leave the table out and the hub runs no portal at all. The portal listener binds the hub's Wi-Fi address only
(never a wildcard), and its port must differ from the management listener's, which the firewall drops from
the Wi-Fi side whatever the admission state.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from hub.section import Section

# RFC 1918, carrier-grade NAT and link-local: where a management network lives. The Wi-Fi side reaches the
# internet, not the LAN the box (or the commune's equipment) sits on.
DEFAULT_BLOCKED = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")

InterfaceName = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.-]+$")]


class PortalSettings(Section):
    enabled: bool = Field(
        default=True,
        title="Portal enabled",
        description="false keeps the settings but runs no portal (the Wi-Fi firewall table is then not loaded).",
    )
    interface: InterfaceName = Field(
        default="wlan0",
        title="Wi-Fi interface",
        description="The access point's interface (hostapd runs on it, dnsmasq serves DHCP on it).",
    )
    address: str = Field(
        default="10.77.0.1/24",
        title="Hub address on the Wi-Fi side",
        description="IPv4 address with prefix length; phones get addresses from the rest of the subnet.",
    )
    listen_host: str | None = Field(
        default=None,
        title="Portal listener address",
        description="Defaults to the address above. Never a wildcard: the portal listens on the Wi-Fi side only.",
    )
    port: int = Field(
        default=80,
        ge=1,
        le=65535,
        title="Portal listener port",
        description="Phones' HTTP is redirected here; 80 gives the cleanest URL (the unit grants the capability).",
    )
    firewall: Literal["auto", "nft", "dry"] = Field(
        default="auto",
        title="Firewall backend",
        description="'auto': nftables on real hardware, a dry in-memory stand-in on simulated hardware.",
    )
    uplink_interface: InterfaceName | None = Field(
        default=None,
        title="Uplink interface",
        description="Where admitted clients' traffic leaves (masqueraded). Empty: any interface but the Wi-Fi one.",
    )
    ssid: str = Field(
        default="Wi-Fi miễn phí",
        min_length=1,
        title="Network name (SSID)",
        description="At most 32 bytes in UTF-8 (Vietnamese letters take 2 or 3 bytes each).",
    )
    wpa_passphrase: str | None = Field(
        default=None,
        min_length=8,
        max_length=63,
        title="Wi-Fi password",
        description="Leave out for an open network (the usual for a public portal).",
    )
    country_code: str = Field(default="VN", pattern=r"^[A-Z]{2}$", title="Regulatory country code")
    hw_mode: Literal["g", "a"] = Field(default="g", title="Band", description="'g' 2.4 GHz, 'a' 5 GHz.")
    channel: int = Field(default=6, ge=1, le=196, title="Wi-Fi channel")
    dhcp_lease_minutes: int = Field(default=240, ge=5, le=10_080, title="DHCP lease time (minutes)")
    dns_servers: list[str] = Field(
        default_factory=list,
        title="Upstream DNS servers",
        description="For dnsmasq; empty: the ones the box itself uses (/etc/resolv.conf).",
    )
    session_s: int = Field(
        default=86_400,
        ge=5,
        le=7 * 86_400,
        title="Session length (s)",
        description="How long one press of 'Kết nối' lasts (renewable from the portal). Phones do not probe "
        "again while connected, so a short session strands them behind a page they never see: keep hours.",
    )
    max_clients: int = Field(default=100, ge=1, le=2000, title="Maximum admitted clients")
    download_kbps: int = Field(default=2048, ge=0, le=1_000_000, title="Download limit per client (kbit/s); 0 = none")
    upload_kbps: int = Field(default=1024, ge=0, le=1_000_000, title="Upload limit per client (kbit/s); 0 = none")
    daily_quota_mb: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        title="Daily data quota per client (MB)",
        description="Up plus down, per device per local day; 0 = no quota. Checked every poll_s.",
    )
    blocked_networks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCKED),
        title="Networks the Wi-Fi side never reaches",
        description="The management network and the like (CIDR), dropped whether a client is admitted or not. "
        "The management listener's own address is added to it.",
    )
    requests_per_minute: int = Field(
        default=120,
        ge=10,
        le=10_000,
        title="Portal requests per client per minute",
        description="Beyond it (after a burst of a quarter of it) the portal answers 429.",
    )
    poll_s: float = Field(
        default=10.0,
        ge=0.2,
        le=300.0,
        title="Poll interval (s)",
        description="How often counters, expiries and quotas are read back from the firewall.",
    )
    terms_vi: str = Field(
        default="", max_length=4000, title="Terms of use (Vietnamese)", description="Empty: built in."
    )
    terms_en: str = Field(default="", max_length=4000, title="Terms of use (English)", description="Empty: built in.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            iface = ipaddress.IPv4Interface(value)
        except ValueError:
            raise ValueError(f"expected an IPv4 address with its prefix, e.g. '10.77.0.1/24', not {value!r}") from None
        if not 16 <= iface.network.prefixlen <= 29:
            raise ValueError("the Wi-Fi subnet must be between /16 and /29")
        if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            raise ValueError(f"{iface.ip} is not a host address of {iface.network}")
        return iface.with_prefixlen

    @field_validator("listen_host")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ip = ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"expected an IPv4 address, not {value!r}") from None
        if ip.is_unspecified:
            raise ValueError("the portal must not listen on every address: give the hub's Wi-Fi address")
        return str(ip)

    @field_validator("ssid")
    @classmethod
    def _ssid(cls, value: str) -> str:
        if len(value.encode("utf-8")) > 32:
            raise ValueError(f"an SSID is at most 32 bytes in UTF-8; {value!r} is {len(value.encode())}")
        if any(ord(c) < 32 for c in value):
            raise ValueError("control characters are not allowed in an SSID")
        return value

    @field_validator("dns_servers")
    @classmethod
    def _dns(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise ValueError(f"not an IP address: {item!r}") from None
        return value

    @field_validator("blocked_networks")
    @classmethod
    def _blocked(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.IPv4Network(item, strict=False)))
            except ValueError:
                raise ValueError(f"not an IPv4 network: {item!r} (e.g. '192.168.1.0/24')") from None
        return out

    @model_validator(mode="after")
    def _interfaces_differ(self) -> PortalSettings:
        if self.uplink_interface is not None and self.uplink_interface == self.interface:
            raise ValueError("uplink_interface must not be the Wi-Fi interface")
        return self

    # ---- derived ------------------------------------------------------------------------------------------

    @property
    def wifi_address(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(self.address)

    @property
    def host(self) -> str:
        """The address the portal listener binds."""
        return self.listen_host or str(self.wifi_address.ip)

    @property
    def url(self) -> str:
        """The portal's own URL, as phones are sent to it."""
        return f"http://{self.host}/" if self.port == 80 else f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """The RFC 8908 captive-portal API (advertised in DHCP option 114)."""
        return self.url + "api/captive"
