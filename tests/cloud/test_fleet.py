"""Issue #8, fleet: 500 hubs ride out a 60 s outage of the cloud, and come back spread out by their backoff.

The hubs are light clients in this process: each a real Store (its own SQLite file) and the real Uploader (see
tests/cloud/fleet.py); the cloud is the real `hub-cloud serve` process, SIGKILLed with records queued on every hub
and restarted 60 s later on the same port and database. About 100 s on a 2-core machine (≈18 s CPU in this
process); bench/fleet.py prints the same figures.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cloud.fleet import FleetPlan, run_fleet

pytestmark = [pytest.mark.slow, pytest.mark.fleet]


def test_500_hubs_reconnect_after_a_60s_outage_spread_by_backoff_and_deliver_exactly_once(tmp_path: Path) -> None:
    plan = FleetPlan(hubs=500, outage_s=60.0)
    result = asyncio.run(run_fleet(plan, tmp_path))
    summary = result.summary()
    print("\nfleet:", summary)  # the figures, with -s

    # Every record each hub queued is at the cloud exactly once (content, not just sequence numbers), and every
    # outbox is empty (run_fleet waits for it).
    assert result.missing == {}, summary
    assert result.duplicated == {}, summary
    # Each uploader's last batch told the cloud its backlog was down to 0 (X-Hub-Pending, the hubs list's column).
    assert result.reported_backlog == {}, summary
    # The kill left a backlog on (nearly) every hub, and the fleet sent at least its batches after the restart.
    assert result.hubs_with_backlog == plan.hubs, summary
    assert result.requests_after_outage >= result.batches_at_restart, summary
    # Spread out by the jittered backoff: far below the no-jitter instant (every batch in the same second).
    assert result.peak_per_s <= result.peak_bound < result.batches_at_restart, summary
    # And over in about one backoff cap (plus the backlog's batches), not one outage long.
    assert result.drain_s < 4 * plan.backoff_max_s + 20, summary
