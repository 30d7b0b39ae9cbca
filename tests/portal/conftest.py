from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.firewall import DryFirewall
from hub.config.settings import ManagementSection
from hub.portal.admission import Admission
from hub.portal.service import firewall_config
from hub.portal.settings import PortalSettings
from hub.store import Store

TZ = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")


class StepClock:
    """Wall and monotonic time moved by hand (the portal only reads the time; it never sleeps on this clock)."""

    def __init__(self, start: dt.datetime) -> None:
        self.mono = 1000.0
        self.offset = start.timestamp() - self.mono

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.mono + self.offset, TZ)

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.mono += seconds

    def jump(self, seconds: float) -> None:
        """The wall clock alone moves (NTP)."""
        self.offset += seconds


@pytest.fixture
def clock() -> StepClock:
    return StepClock(dt.datetime(2026, 11, 24, 20, 0, tzinfo=TZ))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "data")
    yield s
    s.close()


def make_settings(**overrides: Any) -> PortalSettings:
    return PortalSettings.model_validate({"listen_host": "127.0.0.1", "port": 18081, **overrides})


def make_admission(store: Store, clock: StepClock, **overrides: Any) -> tuple[Admission, DryFirewall]:
    settings = make_settings(**overrides)
    firewall = DryFirewall(firewall_config(settings, ManagementSection()), clock.monotonic)
    return Admission(settings, firewall, store, clock, wifi_only=True), firewall


def outbox(store: Store, kind: str) -> list[dict[str, Any]]:
    import json

    rows = store.query("SELECT payload FROM outbox WHERE kind = ? ORDER BY seq", (kind,))
    return [json.loads(r[0]) for r in rows]
