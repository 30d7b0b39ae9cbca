"""The install wizard's site details and zone wiring laid over hub.toml at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load_settings
from hub.site import apply_site, apply_zones

EXAMPLE = Path(__file__).resolve().parents[2] / "hub.example.toml"


def test_site_details_override_hub_toml() -> None:
    settings = load_settings(EXAMPLE)
    stored = {
        "village_name": "Thôn Đông",
        "village_code": "TD-03",
        "latitude": 19.66,
        "longitude": 105.78,
        "cloud_url": "https://xa.example.vn",
    }
    applied, site = apply_site(settings, stored)
    assert site is not None
    assert applied.village.name == "Thôn Đông"
    assert (applied.village.latitude, applied.village.longitude) == (19.66, 105.78)
    assert str(applied.sync.cloud_url) == "https://xa.example.vn/"
    assert applied.relays == settings.relays  # nothing else changes


def test_a_stored_site_that_no_longer_validates_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(EXAMPLE)
    applied, site = apply_site(settings, {"village_name": "", "latitude": 200, "longitude": 0})
    assert site is None
    assert applied is settings
    assert "ignoring the install wizard's site details" in caplog.text


def test_zone_wiring_applies_and_a_wiring_that_breaks_a_programme_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(EXAMPLE)
    wired = apply_zones(settings, {"khu 1": "loa khu 1", "khu 2": "đèn hội trường"})
    assert wired.broadcast.zones == {"khu 1": "loa khu 1", "khu 2": "đèn hội trường"}
    assert wired.broadcast.programmes == settings.broadcast.programmes
    broken = apply_zones(settings, {"khu 9": "loa khu 1"})  # the example's programme plays to "khu 1"
    assert broken.broadcast.zones == settings.broadcast.zones
    assert "unknown zone 'khu 1'" in caplog.text
