"""The portal's nftables table, as text for `nft -f`: generated from the config, never edited by hand.

Shape (family inet, one table of our own, so nothing else on the box is touched):

- set `clients` (IPv4 . MAC, per-element timeouts, per-element counters): admitted clients; the counter
  counts what they send (upload). set `clients_down` (IPv4, same timeouts): the same clients by address, for
  the replies they receive (a reply carries no client MAC); its counter counts downloads.
- set `blocked` (intervals): the management network and anything else the Wi-Fi side must never reach.
- nat prerouting: from the Wi-Fi interface, a client that is not admitted has its HTTP (tcp 80) redirected to
  the portal listener and its DNS (53) to the hub's own resolver, whatever address it aimed at.
- filter input: from the Wi-Fi interface, the management listener's ports are dropped first, always; then
  DHCP, DNS and the portal port on the hub's Wi-Fi address are accepted, and nothing else of the hub's.
- filter forward: from the Wi-Fi side, the blocked networks are dropped always; a client not in `clients`
  gets a TCP reset (phones notice the portal at once instead of waiting for HTTPS to time out) or an ICMP
  port-unreachable; an admitted one passes its upload rate limit and is forwarded. Towards the Wi-Fi side,
  only addresses in `clients_down` receive anything, within their download rate limit. Every packet is
  checked, not only new connections: when a session ends its open connections stop too.
- nat postrouting: what admitted clients send out of the uplink is masqueraded.

IPv6 from or to the Wi-Fi side is dropped (the portal advertises no IPv6 on the Wi-Fi side).

Rate limits are nft policers: per-client dynamic sets with `limit rate over … drop`, one for each direction.
Not tc: shaping the upload direction with tc needs an ifb device and redirect filters per interface, and
per-client classes would have to be created and removed at every admission; a policer keyed by address lives
in the same table, is created with it in the same transaction, needs no per-client setup, and survives a
restart of the hub untouched. A policer drops instead of queueing, so TCP sees losses: the burst below is
sized to let TCP settle close to the limit (the netns test measures it within 20 %). The kernel's byte policer
(nft_limit) starts each client with a bucket of one second at the rate plus the burst: a page load gets that
at full speed, a long download settles at the rate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.firewall.interface import ClientElement

TABLE = "village_hub_portal"
MIN_BURST_BYTES = 16 * 1024


@dataclass(frozen=True)
class FirewallConfig:
    wifi_interface: str
    wifi_address: ipaddress.IPv4Interface  # the hub's address on the Wi-Fi side, with the prefix
    portal_port: int
    management_ports: tuple[int, ...]
    blocked_networks: tuple[ipaddress.IPv4Network, ...] = ()
    uplink_interface: str | None = None  # None: masquerade out of any interface but the Wi-Fi one
    download_bytes_per_s: int | None = None  # None: no limit
    upload_bytes_per_s: int | None = None
    table: str = TABLE

    def __post_init__(self) -> None:
        if self.portal_port in self.management_ports:
            raise ValueError(f"the portal port {self.portal_port} is a management port: it would be dropped")
        for name in (self.wifi_interface, self.uplink_interface or "x"):
            if not name or len(name) > 15 or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"not an interface name: {name!r}")


def burst_bytes(rate_bytes_per_s: int) -> int:
    """A policer's burst: a tenth of a second at the rate, at least 16 KiB (a few full-size TCP segments)."""
    return max(rate_bytes_per_s // 10, MIN_BURST_BYTES)


def _quote(name: str) -> str:
    return f'"{name}"'


def client_elements(clients: Iterable[ClientElement]) -> tuple[list[str], list[str]]:
    up = [f"{c.ip} . {c.mac} timeout {c.timeout_s}s" for c in clients]
    down = [s.split(" . ")[0] + " timeout " + s.rsplit(" timeout ", 1)[1] for s in up]
    return up, down


def _elements(items: list[str]) -> str:
    return f"\n\t\telements = {{ {', '.join(items)} }}" if items else ""


def render_table(config: FirewallConfig, clients: Iterable[ClientElement] = ()) -> str:
    """The whole table, preceded by its own deletion, for one atomic `nft -f`: loading it twice is the same as once,
    and a running box goes from the old table to the new one with no instant where either is missing."""
    t = config.table
    wifi = _quote(config.wifi_interface)
    hub = config.wifi_address.ip
    subnet = config.wifi_address.network
    up, down = client_elements(clients)
    blocked = ", ".join(str(n) for n in config.blocked_networks)
    mgmt = ", ".join(str(p) for p in sorted(set(config.management_ports)))
    out = "uplink" if config.uplink_interface else "non-Wi-Fi"
    masq_if = f"oifname {_quote(config.uplink_interface)}" if config.uplink_interface else f"oifname != {wifi}"

    sets = [
        "\t# Admitted clients: the address and MAC they send from, each with its own timeout; counter = upload.",
        "\tset clients {\n\t\ttype ipv4_addr . ether_addr\n\t\tflags timeout\n\t\tcounter" + _elements(up) + "\n\t}",
        "\t# The same clients by address: replies to them carry no client MAC; counter = download.",
        "\tset clients_down {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\tcounter" + _elements(down) + "\n\t}",
        "\t# Never reachable from the Wi-Fi side, admitted or not: the management network and the like.",
        "\tset blocked {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge"
        + (f"\n\t\telements = {{ {blocked} }}" if blocked else "")
        + "\n\t}",
    ]
    limit_up = limit_down = ""
    if config.upload_bytes_per_s:
        rate = config.upload_bytes_per_s
        sets.append(
            "\tset rate_up {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t\tsize 65535\n\t}"
        )
        limit_up = (
            f"\t\tupdate @rate_up {{ ip saddr limit rate over {rate} bytes/second burst {burst_bytes(rate)} bytes }}"
            " drop\n"
        )
    if config.download_bytes_per_s:
        rate = config.download_bytes_per_s
        sets.append(
            "\tset rate_down {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t\tsize 65535\n\t}"
        )
        limit_down = (
            f"\t\tupdate @rate_down {{ ip daddr limit rate over {rate} bytes/second burst {burst_bytes(rate)} bytes }}"
            " drop\n"
        )

    chains = f"""
	chain prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		iifname {wifi} ip saddr . ether saddr @clients return
		# Blocked networks are not even answered by the portal: forward drops them.
		iifname {wifi} ip daddr @blocked return
		# Not admitted: every HTTP request is answered by the portal, every DNS query by the hub.
		iifname {wifi} tcp dport 80 redirect to :{config.portal_port}
		iifname {wifi} meta l4proto {{ tcp, udp }} th dport 53 redirect to :53
	}}

	chain input {{
		type filter hook input priority filter; policy accept;
		iifname {wifi} jump wifi_in
	}}

	chain wifi_in {{
		# The technician page and the local API: never from the Wi-Fi side, whatever address was aimed at.
		tcp dport {{ {mgmt} }} counter drop
		meta nfproto ipv6 drop
		udp dport 67 accept
		ip daddr != {hub} drop
		meta l4proto {{ tcp, udp }} th dport 53 accept
		tcp dport {config.portal_port} accept
		icmp type echo-request limit rate 5/second accept
		counter drop
	}}

	chain forward {{
		type filter hook forward priority filter; policy accept;
		iifname {wifi} jump from_wifi
		oifname {wifi} jump to_wifi
	}}

	chain from_wifi {{
		meta nfproto ipv6 drop
		ip daddr @blocked counter drop
		ip saddr . ether saddr != @clients jump refuse
{limit_up}		ip saddr . ether saddr @clients accept
		drop
	}}

	chain refuse {{
		meta l4proto tcp reject with tcp reset
		meta l4proto udp reject
		drop
	}}

	chain to_wifi {{
		meta nfproto ipv6 drop
		ip daddr != @clients_down drop
{limit_down}		ip daddr @clients_down accept
		drop
	}}

	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		# Admitted clients' traffic leaves by the {out} interface with the hub's address.
		ip saddr {subnet} {masq_if} masquerade
	}}
"""
    body = "\n".join(sets) + "\n" + chains
    return (
        "# Generated by village-hub from [portal] in hub.toml: do not edit, the hub loads it again at every start.\n"
        f"table inet {t}\ndelete table inet {t}\n"
        f"table inet {t} {{\n{body}}}\n"
    )


def admit_commands(table: str, client: ClientElement) -> str:
    """Add the client, or restart its timeout if it is in: add (so that it exists), delete, add with the timeout —
    one transaction, so the client is never out in between and no command fails on an absent element."""
    key_up, key_down = f"{client.ip} . {client.mac}", client.ip
    t = f"inet {table}"
    return (
        f"add element {t} clients {{ {key_up} }}\n"
        f"add element {t} clients_down {{ {key_down} }}\n"
        f"delete element {t} clients {{ {key_up} }}\n"
        f"delete element {t} clients_down {{ {key_down} }}\n"
        f"add element {t} clients {{ {key_up} timeout {client.timeout_s}s }}\n"
        f"add element {t} clients_down {{ {key_down} timeout {client.timeout_s}s }}\n"
    )


def revoke_commands(table: str, ip: str, mac: str) -> str:
    """Remove the client: add-then-delete, so a client whose element already timed out is no error."""
    t = f"inet {table}"
    return (
        f"add element {t} clients {{ {ip} . {mac} timeout 1s }}\n"
        f"add element {t} clients_down {{ {ip} timeout 1s }}\n"
        f"delete element {t} clients {{ {ip} . {mac} }}\n"
        f"delete element {t} clients_down {{ {ip} }}\n"
    )
