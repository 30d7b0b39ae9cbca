"""Request counting for the reference cloud: how many requests arrived in each wall-clock second since start.

The fleet test and bench/fleet.py read it (`GET /api/v1/metrics`) to show that hubs coming back after an
outage are spread out by their jittered backoff rather than arriving all in the same second. Counts live in
memory: a restarted cloud starts counting afresh, which is what "the rate after the outage" needs.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

KEEP_SECONDS = 3600
# What a hub sends (the outbox, its inbox, media and diagnostics, enrollment); the rest is operators and pages.
HUB_PATHS = ("/api/v1/ingest", "/api/v1/commands", "/api/v1/media/", "/api/v1/enroll", "/api/v1/diagnostics/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def scope_of(path: str) -> str:
    return "hub" if path.startswith(HUB_PATHS) else "other"


class RequestCounter:
    """Requests per second, per scope ("hub" / "other"), for the last KEEP_SECONDS seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started_at = clock()
        self.totals: collections.Counter[str] = collections.Counter()
        self._seconds: collections.OrderedDict[int, collections.Counter[str]] = collections.OrderedDict()

    def count(self, scope: str) -> None:
        second = int(self.clock())
        bucket = self._seconds.get(second)
        if bucket is None:
            bucket = self._seconds[second] = collections.Counter()
            while len(self._seconds) > KEEP_SECONDS:
                self._seconds.popitem(last=False)
        bucket[scope] += 1
        self.totals[scope] += 1

    def series(self, scope: str, since: float = 0.0) -> list[tuple[int, int]]:
        """(second, count) for every second from the first counted one (or `since`) to now, zeros included."""
        if not self._seconds:
            return []
        first = max(next(iter(self._seconds)), int(since))
        now = int(self.clock())
        return [(s, self._seconds.get(s, collections.Counter())[scope]) for s in range(first, now + 1)]

    def snapshot(self, scope: str, since: float = 0.0) -> dict[str, Any]:
        series = self.series(scope, since)
        counts = sorted(c for _, c in series)
        peak = max(series, key=lambda item: item[1], default=(None, 0))
        return {
            "scope": scope,
            "started_at": self.started_at,
            "now": self.clock(),
            "totals": dict(self.totals),
            "peak_per_s": peak[1],
            "peak_at": peak[0],
            "p99_per_s": percentile(counts, 0.99),
            "p50_per_s": percentile(counts, 0.50),
            "seconds": [{"t": s, "requests": c} for s, c in series],
        }


def percentile(sorted_counts: list[int], q: float) -> int:
    """Nearest-rank percentile of per-second counts (0 for no data)."""
    if not sorted_counts:
        return 0
    rank = max(1, math.ceil(q * len(sorted_counts)))
    return sorted_counts[rank - 1]


COUNTER_KEY = web.AppKey("request_counter", RequestCounter)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Counted on arrival, whatever the answer: a refused or failing request loads the server all the same.
    request.app[COUNTER_KEY].count(scope_of(request.path))
    return await handler(request)


def install(app: web.Application) -> None:
    app[COUNTER_KEY] = RequestCounter()
    app.middlewares.append(count_requests)
