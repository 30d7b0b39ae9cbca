"""The cloud's request counter (cloud/metrics.py) on a fake clock: per-second buckets, zero seconds, percentiles."""

from __future__ import annotations

from cloud.metrics import KEEP_SECONDS, RequestCounter, percentile, scope_of


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_per_second_with_idle_seconds_as_zero() -> None:
    clock = FakeClock(1000.2)
    counter = RequestCounter(clock)
    for _ in range(3):
        counter.count("hub")
    clock.now = 1000.9
    counter.count("other")
    clock.now = 1003.5
    counter.count("hub")
    assert counter.series("hub") == [(1000, 3), (1001, 0), (1002, 0), (1003, 1)]
    assert counter.series("other") == [(1000, 1), (1001, 0), (1002, 0), (1003, 0)]
    assert counter.series("hub", since=1002) == [(1002, 0), (1003, 1)]
    snap = counter.snapshot("hub")
    assert (snap["peak_per_s"], snap["peak_at"], snap["totals"]) == (3, 1000, {"hub": 4, "other": 1})
    assert snap["p50_per_s"] == 0
    assert snap["p99_per_s"] == 3


def test_keeps_the_last_hour_only() -> None:
    clock = FakeClock(0.0)
    counter = RequestCounter(clock)
    for second in range(KEEP_SECONDS + 10):
        clock.now = float(second)
        counter.count("hub")
    series = counter.series("hub")
    assert len(series) == KEEP_SECONDS
    assert series[0] == (10, 1)
    assert counter.totals["hub"] == KEEP_SECONDS + 10


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.99) == 0
    assert percentile(list(range(1, 101)), 0.99) == 99
    assert percentile(list(range(1, 101)), 0.5) == 50
    assert percentile([7], 0.99) == 7


def test_hub_requests_are_told_apart_from_operators() -> None:
    assert scope_of("/api/v1/ingest") == "hub"
    assert scope_of("/api/v1/ingest/state") == "hub"
    assert scope_of("/api/v1/commands") == "hub"
    assert scope_of("/api/v1/commands/4/result") == "hub"
    assert scope_of("/api/v1/media/" + "0" * 64) == "hub"
    assert scope_of("/api/v1/media") == "other"  # an operator's upload
    assert scope_of("/api/v1/hubs/x/commands") == "other"
    assert scope_of("/operator/hubs") == "other"
