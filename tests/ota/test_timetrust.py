"""The clock policy (ota.timetrust) as a table: which source is trusted, and when the check waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ota.errors import ClockUntrustedError
from ota.timetrust import ClockInputs, parse_http_date, reference_time

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FLOOR = NOW - timedelta(days=20)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("inputs", "expected", "source"),
    [
        (ClockInputs(NOW, ntp_synced=True, floor=FLOOR), NOW, "ntp"),
        (ClockInputs(NOW, rtc_plausible=True, floor=FLOOR), NOW, "rtc"),
        (ClockInputs(EPOCH, cloud_date=NOW, floor=FLOOR), NOW, "cloud"),
        (ClockInputs(NOW - timedelta(hours=3), ntp_synced=True, cloud_date=NOW), NOW, "cloud"),
        (ClockInputs(NOW, ntp_synced=True), NOW, "ntp"),
    ],
)
def test_trusted_sources(inputs: ClockInputs, expected: datetime, source: str) -> None:
    trusted = reference_time(inputs)
    assert (trusted.now, trusted.source) == (expected, source)


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        (ClockInputs(NOW), "not synchronised"),
        (ClockInputs(EPOCH, rtc_plausible=True, floor=FLOOR), "before the installed release"),
        (ClockInputs(EPOCH, ntp_synced=True, floor=FLOOR), "before the installed release"),
        (ClockInputs(NOW, cloud_date=FLOOR - timedelta(days=1), floor=FLOOR), "cloud's Date"),
    ],
)
def test_untrusted_clock_waits_with_a_reason(inputs: ClockInputs, reason: str) -> None:
    with pytest.raises(ClockUntrustedError, match=reason):
        reference_time(inputs)


def test_http_date_is_advanced_by_elapsed_monotonic_time() -> None:
    parsed = parse_http_date("Tue, 24 Nov 2026 12:00:00 GMT", received_monotonic=100.0, now_monotonic=130.0)
    assert parsed == NOW + timedelta(seconds=30)
