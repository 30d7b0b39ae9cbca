"""When is the clock good enough to check for updates? (TUF's freeze protection trusts it.)

Policy, in order:
1. A clock earlier than the installed release's `created_at` (the floor) is certainly wrong.
2. The cloud's `Date` header, read over TLS whose certificate was verified (corrected for the time elapsed
   since, on the monotonic clock), is trusted first: it is the repository's own clock, is authenticated, and
   lets a box that booted in 1970 or hours off check for updates without waiting for NTP (no lock-out).
   It must itself not be below the floor.
3. Else a system clock synchronised by NTP (systemd-timesyncd's `/run/systemd/timesync/synchronized`).
4. Else a real-time clock that is present and whose time is plausible (not below the floor): the box's
   DS3231 keeps time through power cuts.
5. Else "not trusted": no check now (ClockUntrustedError). Nothing is locked for good: the next check, once
   NTP syncs or the cloud answers over TLS, proceeds.

A clock running behind would accept stale (frozen) metadata; a clock running ahead would refuse fresh
metadata until it is corrected — both only happen with a source we decided to trust, never with the bare
system clock of a box without NTP or RTC.

Hook into python-tuf 7 ngclient: `TrustedMetadataSet.__init__` sets `self.reference_time =
datetime.now(timezone.utc)` once, and every expiry check (root, timestamp, snapshot, targets) compares with
that attribute. `ota.client` builds the `Updater`, then sets `updater._trusted_set.reference_time` to the
reference time decided here before `refresh()`; nothing else in ngclient reads the clock.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ota.errors import ClockUntrustedError

NTP_FLAG = Path("/run/systemd/timesync/synchronized")
RTC_DIR = Path("/sys/class/rtc/rtc0")


@dataclass(frozen=True)
class ClockInputs:
    system_now: datetime
    ntp_synced: bool = False
    rtc_plausible: bool = False
    cloud_date: datetime | None = None  # from a verified-TLS response, already corrected for elapsed time
    floor: datetime | None = None  # created_at of the installed release


@dataclass(frozen=True)
class TrustedTime:
    now: datetime
    source: str  # "cloud" | "ntp" | "rtc"


def reference_time(inputs: ClockInputs) -> TrustedTime:
    """The time TUF should compare expiry dates with, or ClockUntrustedError with the reason."""
    floor = inputs.floor
    if inputs.cloud_date is not None:
        if floor is not None and inputs.cloud_date < floor:
            raise ClockUntrustedError(
                f"the cloud's Date {inputs.cloud_date:%Y-%m-%d %H:%M}Z is before the installed release "
                f"({floor:%Y-%m-%d %H:%M}Z): not trusted"
            )
        return TrustedTime(inputs.cloud_date, "cloud")
    below_floor = floor is not None and inputs.system_now < floor
    if below_floor:
        raise ClockUntrustedError(
            f"the clock says {inputs.system_now:%Y-%m-%d %H:%M}Z, before the installed release was built "
            f"({floor:%Y-%m-%d %H:%M}Z): waiting for NTP or the cloud's time"
        )
    if inputs.ntp_synced:
        return TrustedTime(inputs.system_now, "ntp")
    if inputs.rtc_plausible:
        return TrustedTime(inputs.system_now, "rtc")
    raise ClockUntrustedError("the clock is not synchronised (no NTP, no real-time clock, no cloud time yet)")


def parse_http_date(value: str, received_monotonic: float, now_monotonic: float | None = None) -> datetime:
    """A `Date` header as a UTC datetime, advanced by the time elapsed since it was received."""
    parsed = email.utils.parsedate_to_datetime(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    elapsed = (now_monotonic if now_monotonic is not None else time.monotonic()) - received_monotonic
    return parsed.astimezone(UTC) + timedelta(seconds=max(0.0, elapsed))


def ntp_synced() -> bool:
    return NTP_FLAG.exists()


def rtc_present() -> bool:
    return RTC_DIR.exists()


def system_clock(
    floor: datetime | None = None, cloud_date: Callable[[], datetime | None] | None = None
) -> Callable[[], datetime]:
    """A `now` callable for UpdateClient that applies the policy to this machine's clock sources."""

    def now() -> datetime:
        inputs = ClockInputs(
            system_now=datetime.now(UTC),
            ntp_synced=ntp_synced(),
            rtc_plausible=rtc_present(),
            cloud_date=cloud_date() if cloud_date is not None else None,
            floor=floor,
        )
        return reference_time(inputs).now

    return now
