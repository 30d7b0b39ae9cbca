"""A tiny DHCP client for the netns test: one DHCPDISCOVER on an interface, the OFFER's options printed as JSON.

python dhcp_probe.py eth0 aa:bb:cc:dd:ee:ff     (inside the phone's namespace; needs root for port 68)
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

MAGIC = b"\x63\x82\x53\x63"


def discover(mac: bytes, xid: int) -> bytes:
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,
        1,
        6,
        0,
        xid,
        0,
        0x8000,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        mac.ljust(16, b"\0"),
        b"",
        b"",
    )
    # 53 = DISCOVER; 55 = parameter request list: router, DNS, captive portal (114)
    options = bytes([53, 1, 1, 55, 4, 1, 3, 6, 114, 255])
    return header + MAGIC + options


def parse_options(packet: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 240
    while i < len(packet):
        code = packet[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        length = packet[i + 1]
        out[code] = packet[i + 2 : i + 2 + length]
        i += 2 + length
    return out


def main() -> None:
    interface, mac_text = sys.argv[1], sys.argv[2]
    mac = bytes.fromhex(mac_text.replace(":", ""))
    xid = int.from_bytes(os.urandom(4), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        s.bind(("0.0.0.0", 68))
        s.settimeout(5)
        s.sendto(discover(mac, xid), ("255.255.255.255", 67))
        while True:
            packet, _ = s.recvfrom(4096)
            if len(packet) > 240 and packet[0] == 2 and struct.unpack("!I", packet[4:8])[0] == xid:
                break
    options = parse_options(packet)
    print(
        json.dumps(
            {
                "offered": socket.inet_ntoa(packet[16:20]),
                "type": options.get(53, b"\0")[0],
                "router": socket.inet_ntoa(options[3][:4]) if 3 in options else None,
                "captive_portal": options.get(114, b"").decode() or None,
            }
        )
    )


if __name__ == "__main__":
    main()
