"""`hub run` on simulated hardware with [portal]: the portal listens beside the technician page, with the dry
firewall (the host's firewall is not touched), shows in /api/health and `hub doctor`, and keeps its clients
across a restart."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from drivers.firewall import nft_path
from tests.support.processes import HUB, HubProcess, free_port, http_get, wait_until, write_hub_config

pytestmark = pytest.mark.slow


def post(url: str, data: str) -> int:
    request = urllib.request.Request(url, data=data.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def answers(url: str) -> bool:
    """The portal starts after the management listener HubProcess waits for: refused until then."""
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False


def test_hub_runs_the_simulated_portal(tmp_path: Path) -> None:
    port = free_port()
    config = write_hub_config(
        tmp_path,
        "thon-portal",
        cloud_url=None,
        token=None,
        extra=f'\n[portal]\nlisten_host = "127.0.0.1"\nport = {port}\npoll_s = 0.5\n',
    )
    portal = f"http://127.0.0.1:{port}/"
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: answers(portal), 15, what="the portal to answer")
        page = http_get(portal)[1].decode()
        assert "Kết nối" in page
        # Nothing of the technician page on the portal listener: its paths lead to the portal (urllib follows).
        for path in ("api/health", "login", "healthz"):
            assert "Kết nối" in http_get(portal + path)[1].decode(), path
        token = page.split('name="token" value="')[1].split('"')[0]
        assert post(portal + "connect", f"token={token}&accept=1") == 200  # after the 303 to the portal page

        def admitted() -> int:
            details = hub.health()["services"]["portal"]["details"]
            return int(details["admitted"])

        wait_until(lambda: admitted() == 1, 10, what="the admission to show in health")
        details = hub.health()["services"]["portal"]["details"]
        assert details["firewall"]["backend"] == "dry"
        assert details["listen"] == portal
        files = sorted(p.name for p in (hub.data_dir / "portal").iterdir())
        assert files == ["dnsmasq.conf", "hostapd.conf", "nftables.nft", "wifi.env"]
        assert hub.terminate() == 0
        hub.start()
        wait_until(lambda: answers(portal), 15, what="the portal to answer again")
        assert admitted() == 1
        _status, body = http_get(portal + "api/captive")
        assert json.loads(body)["captive"] is False
        doctor = subprocess.run(
            [HUB, "--config", str(config), "doctor"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        assert "portal" in doctor
        assert "dry backend" in doctor
        assert "hostapd.conf in place" in doctor
        if nft_path():
            # The host's own ruleset never got our table.
            ruleset = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
            assert "village_hub_portal" not in ruleset
        assert "Traceback" not in hub.read_log()
    finally:
        hub.kill()
