"""A fleet of light hubs in one process against the real cloud process, through a cloud outage.

Each light hub is the hub's real upload path and nothing else: a real `Store` (its own SQLite file, its own writer
thread) and the real `Uploader` service (hub/sync/uploader.py, with its CloudTransport, full-jitter backoff and
ack handling), without the rest of `hub run` (broadcast, lighting, web...), which would cost a process per hub.

Used by tests/cloud/test_fleet.py (asserts) and bench/fleet.py (prints the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from hub.bus import EventBus
from hub.config.settings import SyncSection
from hub.store import RecordClass, Store, StoreLimits, Transaction
from hub.sync.uploader import Uploader
from tests.support.processes import CloudProcess


@dataclass(frozen=True)
class FleetPlan:
    hubs: int = 500
    before: int = 3  # records each hub delivers before the outage
    during: int = 20  # records each hub writes while the cloud is down
    batch_size: int = 10  # so the backlog after the outage takes more than one batch per hub
    backoff_base_s: float = 0.5
    backoff_max_s: float = 24.0
    outage_s: float = 60.0
    timeout_s: float = 10.0
    seed: int = 8
    jitter: bool = True  # False: plain exponential backoff (bench/fleet.py --no-jitter, to show what jitter buys)
    kill_after_s: float = 0.3  # the cloud is killed this long after half the outage's records were written

    def peak_bound(self, batches: int) -> float:
        """The most requests per second the cloud should see after the outage, from the backoff settings.

        After a 60 s outage every hub waits U[0, backoff_max_s] between tries. When the cloud returns, the time to a
        hub's next try is the residual of that wait, whose density is at most 2/backoff_max_s per second; each hub
        then sends its backlog in back-to-back batches (`batches`: the fleet's total at the restart). Expected
        peak: batches * 2 / backoff_max_s per second. The bound allows 2.5 times that, for chance, for requests
        that time out and are retried, and for a loaded machine stalling this process's timers (which then fire in
        bunches). Without jitter the whole fleet would come back at once: `batches` requests in the same instant
        (in practice as fast as this one process sends them, ≈350/s on 2 cores: bench/fleet.py --no-jitter).
        """
        return 2.5 * batches * 2 / self.backoff_max_s


@dataclass
class FleetResult:
    plan: FleetPlan
    batches_at_restart: int = 0  # the fewest requests the fleet needs to empty its outboxes after the outage
    hubs_with_backlog: int = 0
    setup_s: float = 0.0
    first_drain_s: float = 0.0
    drain_s: float = 0.0  # from the cloud's restart to every outbox empty
    peak_per_s: int = 0
    p99_per_s: int = 0
    p50_per_s: int = 0
    requests_after_outage: int = 0
    per_second: list[int] = field(default_factory=list)
    missing: dict[str, list[int]] = field(default_factory=dict)
    duplicated: dict[str, list[int]] = field(default_factory=dict)
    cloud_duplicates_ignored: int = 0
    reported_backlog: dict[str, int | None] = field(default_factory=dict)  # hubs whose last reported backlog ≠ 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    max_rss_mb: float = 0.0

    @property
    def peak_bound(self) -> float:
        return self.plan.peak_bound(self.batches_at_restart)

    def summary(self) -> dict[str, Any]:
        return {
            "hubs": self.plan.hubs,
            "records_per_hub": self.plan.before + self.plan.during,
            "outage_s": self.plan.outage_s,
            "backoff": f"{'full jitter' if self.plan.jitter else 'NO jitter'}, base {self.plan.backoff_base_s} s, "
            f"cap {self.plan.backoff_max_s} s",
            "peak_req_per_s": self.peak_per_s,
            "p99_req_per_s": self.p99_per_s,
            "p50_req_per_s": self.p50_per_s,
            "peak_bound": round(self.peak_bound, 1),
            "batches_at_restart (the no-jitter instant)": self.batches_at_restart,
            "hubs_with_backlog": self.hubs_with_backlog,
            "requests_after_outage": self.requests_after_outage,
            "drain_s": round(self.drain_s, 1),
            "records_missing": sum(len(v) for v in self.missing.values()),
            "records_duplicated": sum(len(v) for v in self.duplicated.values()),
            "resends_ignored_by_cloud": self.cloud_duplicates_ignored,
            "setup_s": round(self.setup_s, 1),
            "wall_s": round(self.wall_s, 1),
            "cpu_s_fleet_process": round(self.cpu_s, 1),
            "max_rss_mb_fleet_process": round(self.max_rss_mb),
        }


class NoJitter(random.Random):
    """Every "random" delay at its upper end: exponential backoff without jitter, the thundering herd."""

    def uniform(self, a: float, b: float) -> float:
        return b


class LightHub:
    def __init__(self, index: int, directory: Path, token: str, url: str, plan: FleetPlan, bus: EventBus) -> None:
        self.index = index
        self.hub_id = hub_name(index)
        self.store = Store.open(directory, StoreLimits())
        settings = SyncSection(
            cloud_url=url,  # type: ignore[arg-type]  # pydantic parses the string
            batch_size=plan.batch_size,
            timeout_s=plan.timeout_s,
            backoff_base_s=plan.backoff_base_s,
            backoff_max_s=plan.backoff_max_s,
            idle_poll_s=600.0,  # a write wakes the uploader; no idle polling of 500 databases
        )
        rng = random.Random(plan.seed * 100_003 + index) if plan.jitter else NoJitter()
        self.uploader = Uploader(self.store, settings, self.hub_id, token, bus, rng=rng)
        self.written = 0
        self.task: asyncio.Task[None] | None = None

    async def write(self, count: int) -> None:
        first = self.written
        self.written += count

        def op(tx: Transaction) -> None:
            for n in range(first, first + count):
                tx.append(RecordClass.OPERATIONS, "fleet.record", {"hub": self.index, "n": n})

        await self.store.write(op)

    async def start(self) -> None:
        await self.uploader.start()
        self.task = asyncio.create_task(self.uploader.run(), name=f"uploader-{self.hub_id}")

    def pending(self) -> int:
        return self.store.counters()["pending_count"]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.uploader.stop()
        await asyncio.to_thread(self.store.close)


def hub_name(index: int) -> str:
    return f"fleet-{index:04d}"


async def _admin(session: aiohttp.ClientSession, cloud: CloudProcess, method: str, path: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {cloud.admin_token}"}
    async with session.request(method, cloud.url + path, headers=headers, **kw) as response:
        body = await response.json()
        if response.status >= 300:
            raise AssertionError(f"{method} {path}: HTTP {response.status} {body}")
        return body


async def _gather_limited(coros: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))


async def _wait_drained(hubs: list[LightHub], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while any(h.pending() for h in hubs):
        if time.monotonic() > deadline:
            left = {h.hub_id: h.pending() for h in hubs if h.pending()}
            raise AssertionError(
                f"{what}: {len(left)} hubs still have records after {timeout:.0f}s: {dict(list(left.items())[:5])}"
            )
        await asyncio.sleep(0.2)


def _percentile(counts: list[int], q: float) -> int:
    ordered = sorted(counts)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1] if ordered else 0


def _enough_file_descriptors(hubs: int) -> None:
    """About 5 per light hub (two SQLite connections with their WAL files, a socket): above a default soft limit
    of 1024 for 500 hubs, so the soft limit is raised towards the hard one."""
    needed = hubs * 6 + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        if ceiling < needed:
            raise AssertionError(f"{hubs} light hubs need ~{needed} open files; the hard limit is {hard} (ulimit -Hn)")


async def run_fleet(plan: FleetPlan, directory: Path, progress: Any = None) -> FleetResult:
    """Deliver, stop the cloud for plan.outage_s with records queued on every hub, restart it on the same port and
    database, and measure the return. Raises AssertionError if the fleet cannot drain."""
    say = progress or (lambda _msg: None)
    _enough_file_descriptors(plan.hubs)
    result = FleetResult(plan)
    wall0, cpu0 = time.monotonic(), time.process_time()
    sync_log = logging.getLogger("hub.sync")
    level_before = sync_log.level
    sync_log.setLevel(logging.ERROR)  # 500 hubs × "retry in …" would swamp the log; put back after (shared worker)
    cloud = CloudProcess(directory / "cloud")
    await asyncio.to_thread(cloud.start)
    bus = EventBus()
    hubs: list[LightHub] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20)) as session:
            tokens = await _gather_limited(
                [
                    _admin(session, cloud, "POST", "/api/v1/hubs", json={"hub_id": hub_name(i)})
                    for i in range(plan.hubs)
                ],
                20,
            )
            # Opening a store migrates and fsyncs it: in threads, they overlap.
            hubs = await asyncio.gather(
                *(
                    asyncio.to_thread(LightHub, i, directory / hub_name(i), tokens[i]["token"], cloud.url, plan, bus)
                    for i in range(plan.hubs)
                )
            )
            await asyncio.gather(*(h.write(plan.before) for h in hubs))
            result.setup_s = time.monotonic() - wall0
            say(f"setup {result.setup_s:.1f}s: {plan.hubs} hubs registered, stores open")

            started = time.monotonic()
            for h in hubs:
                await h.start()
            await _wait_drained(hubs, 120, "first delivery")
            result.first_drain_s = time.monotonic() - started
            say(f"first delivery drained in {result.first_drain_s:.1f}s; stopping the cloud for {plan.outage_s:.0f}s")

            # Half the records are written and the uploads start; then SIGKILL cuts batches in flight (some stored
            # at the cloud, their answers lost: resent later, ignored as duplicates); the rest queue up offline.
            await asyncio.gather(*(h.write(plan.during // 2) for h in hubs))
            await asyncio.sleep(plan.kill_after_s)
            await asyncio.to_thread(cloud.kill)
            outage_started = time.monotonic()
            await asyncio.gather(*(h.write(plan.during - plan.during // 2) for h in hubs))
            await asyncio.sleep(max(0.0, plan.outage_s - (time.monotonic() - outage_started)))
            backlogs = [h.pending() for h in hubs]
            result.batches_at_restart = sum(math.ceil(n / plan.batch_size) for n in backlogs)
            result.hubs_with_backlog = sum(1 for n in backlogs if n)

            restarted_at = time.time()
            restarted = time.monotonic()
            await asyncio.to_thread(cloud.start)
            say("cloud restarted on the same port and database")
            await _wait_drained(hubs, 20 * plan.backoff_max_s + 60, "drain after the outage")
            result.drain_s = time.monotonic() - restarted
            await asyncio.sleep(1.1)  # let the last second close before reading the per-second counts
            snapshot = await _admin(session, cloud, "GET", f"/api/v1/metrics?scope=hub&since={restarted_at}")
            counts = [s["requests"] for s in snapshot["seconds"]]
            # The window that matters: from the restart to the drain (idle seconds afterwards would lower p99).
            counts = counts[: max(1, math.ceil(result.drain_s) + 1)]
            result.per_second = counts
            result.peak_per_s = max(counts, default=0)
            result.p99_per_s = _percentile(counts, 0.99)
            result.p50_per_s = _percentile(counts, 0.50)
            result.requests_after_outage = sum(counts)
            say(f"drained {result.drain_s:.1f}s after the restart; peak {result.peak_per_s} req/s")

            expected = list(range(plan.before + plan.during))
            rows = await _gather_limited(
                [_admin(session, cloud, "GET", f"/api/v1/hubs/{h.hub_id}/records?after=0&limit=10000") for h in hubs],
                20,
            )
            for h, body in zip(hubs, rows, strict=True):
                numbers = sorted(r["payload"]["n"] for r in body["records"] if r["payload"].get("hub") == h.index)
                if numbers != expected:
                    seen = set(numbers)
                    result.missing[h.hub_id] = [n for n in expected if n not in seen]
                    result.duplicated[h.hub_id] = sorted({n for n in numbers if numbers.count(n) > 1})
            hub_rows = (await _admin(session, cloud, "GET", "/api/v1/hubs"))["hubs"]
            fleet_rows = [r for r in hub_rows if r["hub_id"].startswith("fleet-")]
            result.cloud_duplicates_ignored = sum(r["duplicates"] for r in fleet_rows)
            # What the uploaders reported in X-Hub-Pending with their last batch: the operator's backlog column.
            result.reported_backlog = {r["hub_id"]: r["pending"] for r in fleet_rows if r["pending"] != 0}
    finally:
        await asyncio.gather(*(h.close() for h in hubs), return_exceptions=True)
        await asyncio.to_thread(cloud.stop)
        sync_log.setLevel(level_before)
    result.wall_s = time.monotonic() - wall0
    result.cpu_s = time.process_time() - cpu0
    result.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result
