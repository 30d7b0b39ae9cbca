"""End to end, in network namespaces: real phones' HTTP clients, the hub (`hub run` with the real nftables table
and the portal app) between them and an "internet" host. See tests/portal/netns.py for the topology.

Skipped, with the reason printed, where namespaces cannot be made (not root, no nft, no ip): never passed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.wifi import render_dnsmasq
from hub.portal.service import wifi_config
from hub.portal.settings import PortalSettings
from tests.portal.netns import (
    HUB_MGMT,
    HUB_UPLINK,
    HUB_WIFI,
    INTERNET,
    MGMT_HOST,
    MGMT_PORT,
    PORTAL,
    HubInNamespace,
    Topology,
    unavailable,
)

pytestmark = [pytest.mark.netns, pytest.mark.slow]

GOOGLE = {"Host": "connectivitycheck.gstatic.com"}


@pytest.fixture(scope="module")
def netns_ok() -> None:
    reason = unavailable()
    if reason:
        print(f"\nportal netns tests skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)


@pytest.fixture
def topo(netns_ok: None, request: pytest.FixtureRequest) -> Iterator[Topology]:
    with Topology(request.node.name[-6:].replace("_", "")) as t:
        yield t


def press_connect(topo: Topology, ns: str) -> dict[str, Any]:
    """What a person does: open the portal, tick the box, press "Kết nối" (a real form post, with curl)."""
    page = topo.curl(ns, PORTAL)
    assert page["status"] == 200, page
    assert "Kết nối" in page["body"], page
    token = page["body"].split('name="token" value="')[1].split('"')[0]
    return topo.curl(ns, PORTAL + "connect", "--data", f"token={token}&accept=1")


def blocked_to_internet(topo: Topology, ns: str) -> bool:
    """HTTP to the internet host answers with the portal (a redirect to it), not the internet's page."""
    r = topo.curl(ns, f"http://{INTERNET}/")
    return r["status"] == 302 and r["location"] == PORTAL and "internet is here" not in r["body"]


def assert_management_unreachable(topo: Topology, ns: str) -> None:
    for url in (
        f"http://{HUB_WIFI}:{MGMT_PORT}/healthz",
        f"http://{HUB_WIFI}:{MGMT_PORT}/api/health",
        f"http://{HUB_UPLINK}:{MGMT_PORT}/login",
        f"http://{HUB_MGMT}:{MGMT_PORT}/healthz",
        f"http://{MGMT_HOST}/",
    ):
        r = topo.curl(ns, url, timeout=1.5)
        assert r["status"] == 0, (url, r)
    # The portal's listener serves nothing of the technician page either.
    for path in ("api/health", "login", "static/app.js", "healthz"):
        r = topo.curl(ns, PORTAL + path)
        assert r["status"] == 302, (path, r)
        assert r["location"] == PORTAL, (path, r)


def test_admission_probes_and_expiry(topo: Topology, tmp_path: Path) -> None:
    hub = HubInNamespace(topo, tmp_path / "hub", session_s=8).start()
    # The management listener is really there on every address of the hub: only the firewall keeps phones out.
    assert topo.curl(topo.hub, f"http://{HUB_WIFI}:{MGMT_PORT}/healthz")["status"] == 200
    assert topo.curl(topo.net, f"http://{HUB_UPLINK}:{MGMT_PORT}/healthz")["status"] == 200

    # ---- before admission
    assert blocked_to_internet(topo, topo.phone)
    probe = topo.curl(topo.phone, f"http://{INTERNET}/generate_204", "-H", "Host: connectivitycheck.gstatic.com")
    assert probe["status"] != 204, probe
    assert probe["location"] == PORTAL, probe
    apple = topo.curl(topo.phone, f"http://{INTERNET}/hotspot-detect.html", "-H", "Host: captive.apple.com")
    assert apple["status"] == 302, apple
    assert "Success" not in apple["body"], apple
    api = topo.curl(topo.phone, PORTAL + "api/captive", "-H", "Accept: application/captive+json")
    assert api["status"] == 200, api
    assert json.loads(api["body"])["captive"] is True, api
    https = topo.curl(topo.phone, f"https://{INTERNET}/", "-k", timeout=5)
    assert https["status"] == 0, https
    assert https["time"] < 1.0, https  # reset at once, not a 5 s timeout
    assert "couldn't connect" in https["error"].lower(), https  # curl's words for a TCP reset
    assert_management_unreachable(topo, topo.phone)

    # ---- "Kết nối"
    done = press_connect(topo, topo.phone)
    assert done["status"] == 303, done
    page = topo.curl(topo.phone, f"http://{INTERNET}/")
    assert page["status"] == 200, page
    assert "internet is here" in page["body"], page
    assert (
        topo.curl(topo.phone, f"http://{INTERNET}/generate_204", "-H", "Host: connectivitycheck.gstatic.com")["status"]
        == 204
    )
    assert topo.curl(topo.phone, PORTAL + "generate_204")["status"] == 204  # a probe that still reaches the portal
    apple = topo.curl(topo.phone, PORTAL + "hotspot-detect.html")
    assert apple["status"] == 200
    assert "Success" in apple["body"]
    api = json.loads(topo.curl(topo.phone, PORTAL + "api/captive")["body"])
    assert api["captive"] is False, api
    assert 0 < api["seconds-remaining"] <= 8, api
    tls = topo.curl(topo.phone, f"https://{INTERNET}/", "-k", timeout=3)
    assert "couldn't connect" not in tls["error"].lower(), tls  # TCP now connects (the host then hangs up)
    assert_management_unreachable(topo, topo.phone)
    # The second phone never pressed anything: still behind the portal.
    assert blocked_to_internet(topo, topo.phone2)

    # ---- the session runs out: the kernel's element timeout ends it, the portal comes back
    deadline = time.monotonic() + 20
    while not blocked_to_internet(topo, topo.phone):
        assert time.monotonic() < deadline, "the session did not expire"
        time.sleep(0.5)
    probe = topo.curl(topo.phone, f"http://{INTERNET}/generate_204", "-H", "Host: connectivitycheck.gstatic.com")
    assert probe["status"] != 204
    hub.stop()
    log = hub.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def test_restart_keeps_the_admitted_and_only_them(topo: Topology, tmp_path: Path) -> None:
    hub = HubInNamespace(topo, tmp_path / "hub").start()
    assert press_connect(topo, topo.phone)["status"] == 303
    assert not blocked_to_internet(topo, topo.phone)
    assert blocked_to_internet(topo, topo.phone2)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        hub.stop(sig)
        # While the hub is down the table stays: the phone keeps its internet, the other phone stays out.
        assert topo.curl(topo.phone, f"http://{INTERNET}/")["status"] == 200
        assert topo.curl(topo.phone2, f"http://{INTERNET}/", timeout=2)["status"] != 200
        hub.start()
        assert "internet is here" in topo.curl(topo.phone, f"http://{INTERNET}/")["body"]
        assert blocked_to_internet(topo, topo.phone2)
        assert_management_unreachable(topo, topo.phone)
    listing = topo.nft("-j", "list", "set", "inet", "village_hub_portal", "clients")
    assert listing.count('"concat"') == 1, listing


def transfer(topo: Topology, direction: str, size: int) -> float:
    """Bytes per second of one transfer from the phone (curl's own timing)."""
    if direction == "down":
        r = topo.curl(topo.phone, f"http://{INTERNET}/big?bytes={size}", "-o", "/dev/null", timeout=60)
        assert r["status"] == 200, r
        assert r["size"] == size, r
        return float(size / (r["time"] - r["start"]))
    blob = Path(f"/tmp/vh-upload-{os.getpid()}")
    blob.write_bytes(b"u" * size)
    try:
        r = topo.curl(
            topo.phone,
            f"http://{INTERNET}/upload",
            "--data-binary",
            f"@{blob}",
            "-H",
            "Content-Type: application/octet-stream",
            timeout=60,
        )
    finally:
        blob.unlink()
    assert r["status"] == 200, r
    assert r["body"] == str(size), r
    return float(size / r["time"])


def sustained(topo: Topology, direction: str, rate: int) -> float:
    """The rate a long transfer settles at. The kernel's byte policer (nft_limit) starts with a bucket of one
    second at the rate plus the burst, which a short page load enjoys at full speed: a first transfer of about
    1.5 s empties it, and the one measured right after runs at the policed rate."""
    transfer(topo, direction, int(rate * 1.5))
    return transfer(topo, direction, rate * 4)


def test_rate_limit(topo: Topology, tmp_path: Path) -> None:
    down_kbps, up_kbps = 4000, 2000
    HubInNamespace(topo, tmp_path / "hub", download_kbps=down_kbps, upload_kbps=up_kbps).start()
    assert press_connect(topo, topo.phone)["status"] == 303
    down_limit, up_limit = down_kbps * 125, up_kbps * 125
    down = sustained(topo, "down", down_limit)
    up = sustained(topo, "up", up_limit)
    print(
        f"download {down / 1000:.0f} kB/s (limit {down_limit / 1000:.0f}); upload {up / 1000:.0f} kB/s "
        f"(limit {up_limit / 1000:.0f})"
    )
    assert abs(down - down_limit) / down_limit < 0.20, (down, down_limit)
    assert abs(up - up_limit) / up_limit < 0.20, (up, up_limit)


def test_dhcp_offers_the_captive_portal_api(topo: Topology, tmp_path: Path) -> None:
    """RFC 8910: dnsmasq, running the file the hub generates, offers option 114 with the RFC 8908 API's URL."""
    if shutil.which("dnsmasq") is None and not Path("/usr/sbin/dnsmasq").exists():
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    settings = PortalSettings(interface="wl0", address=f"{HUB_WIFI}/24")
    wifi = dataclasses.replace(wifi_config(settings), lease_file=str(tmp_path / "leases"), extra_dnsmasq=("port=0",))
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(render_dnsmasq(wifi))
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    proc = topo.popen(
        topo.hub,
        [dnsmasq, "--keep-in-foreground", "--pid-file=", f"--conf-file={conf}", "--user=root", "--log-dhcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    mac = topo.run(topo.phone, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    result = topo.run(topo.phone, [sys.executable, str(Path(__file__).with_name("dhcp_probe.py")), "eth0", mac])
    assert result.returncode == 0, result.stderr
    offer = json.loads(result.stdout)
    assert offer["type"] == 2  # DHCPOFFER
    assert offer["router"] == HUB_WIFI
    assert offer["captive_portal"] == "http://10.77.0.1/api/captive"
