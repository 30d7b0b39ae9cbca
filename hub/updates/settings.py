"""The `[ota]` section of hub.toml: where the slots live, where releases come from, and when to install."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, HttpUrl, Strict

from hub.section import Section
from hub.timeofday import parse_time_of_day

PathStr = Annotated[Path, Strict(False)]
TimeOfDay = Annotated[dt.time, BeforeValidator(lambda v: parse_time_of_day(v, example="01:00"))]


class OtaSettings(Section):
    enabled: bool = Field(
        default=True,
        title="Updates on",
        description="Check for, download and install signed releases. Only acts when the hub runs from a slot "
        "under `root` (an installed box); elsewhere it reports that updates are not installed.",
    )
    root: PathStr = Field(
        default=Path("/opt/village-hub"),
        title="Update root",
        description="Holds slots/a, slots/b, the `current` link systemd starts, the update state and the boot guard.",
    )
    repo_url: HttpUrl | None = Field(
        default=None,
        title="Release repository",
        description="Base URL serving /ota/metadata and /ota/targets (TUF). Empty: the commune cloud (sync.cloud_url).",
    )
    trusted_root: PathStr = Field(
        default=Path("/etc/village-hub/ota-root.json"),
        title="Root of trust",
        description="The TUF root metadata the box was provisioned with; releases must chain to it.",
    )
    trust_system_clock: bool = Field(
        default=False,
        title="Trust the system clock",
        description="Check even without NTP, a real-time clock or the cloud's time over TLS (a container whose "
        "host keeps time). Expiry of signed metadata is judged by this clock.",
    )
    check_interval_s: float = Field(
        default=6 * 3600.0,
        ge=1.0,
        le=7 * 86_400.0,
        title="Check interval (s)",
        description="How often to ask the repository for a newer release (downloads happen at any hour).",
    )
    window_start: TimeOfDay = Field(
        default=dt.time(1, 0),
        title="Maintenance window start",
        description="Local time from which a downloaded release may be installed (the hub restarts).",
    )
    window_end: TimeOfDay = Field(
        default=dt.time(4, 0),
        title="Maintenance window end",
        description="Local time at which the window closes; may be earlier than the start (crosses midnight).",
    )
    health_window_s: float = Field(
        default=120.0,
        ge=5.0,
        le=3600.0,
        title="Health window (s)",
        description="A new release must have every critical service running within this time, or it is rolled back.",
    )
    max_boots: int = Field(
        default=3,
        ge=1,
        le=20,
        title="Starts allowed",
        description="A new release that starts this many times without being committed is rolled back by the guard.",
    )
    broadcast_margin_s: float = Field(
        default=600.0,
        ge=0.0,
        le=7200.0,
        title="Broadcast margin (s)",
        description="No install while a broadcast plays or is due within this time.",
    )
    download_rate_kbps: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        title="Download rate cap (KiB/s)",
        description="Cap on update downloads so that a metered 4G link keeps room for live audio. 0: no cap.",
    )
    max_blob_mb: int = Field(
        default=512,
        ge=1,
        le=8192,
        title="Largest file (MB)",
        description="A release file larger than this is refused before downloading.",
    )
