"""The hub and the reference cloud as real processes, with the cloud killed mid-drain, answering 500s,
hanging, and resetting connections: afterwards the cloud holds every record exactly once, the outbox is empty."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.store import Store, Transaction
from tests.support.faultproxy import FaultProxy
from tests.support.processes import CloudProcess, HubProcess, wait_until, write_hub_config

HUB_ID = "thon-loi-1"


def _prefill_record(tx: Transaction, i: int) -> int:
    cls = ("telemetry", "operations", "security", "safety")[i % 4]
    return tx.append(cls, "test.prefill", {"i": i, "text": "bản tin buổi sáng"})


def prefill(data_dir: Path, n: int) -> None:
    """Records written while the box was offline, straight into its store."""
    store = Store.open(data_dir)
    try:
        futures = [store.submit(functools.partial(_prefill_record, i=i)) for i in range(n)]
        for f in futures:
            f.result()
    finally:
        store.close()


def assert_delivered_exactly_once(cloud: CloudProcess, hub: HubProcess, prefilled: int) -> None:
    stats = hub.outbox_stats()
    assert stats["pending"] == 0
    records = cloud.all_records(HUB_ID)
    seqs = [r["seq"] for r in records]
    assert len(seqs) == len(set(seqs))
    assert seqs == list(range(1, stats["last_seq"] + 1)), "the cloud misses records or holds extra ones"
    filled = [r["payload"]["i"] for r in records if r["kind"] == "test.prefill"]
    assert filled == list(range(prefilled))
    assert all(r["payload"]["text"] == "bản tin buổi sáng" for r in records if r["kind"] == "test.prefill")
    assert cloud.hub(HUB_ID)["records"] == len(records)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudProcess]:
    c = CloudProcess(tmp_path / "cloud")
    c.directory.mkdir(parents=True)
    yield c
    c.kill()


def drained(hub: HubProcess) -> bool:
    s = hub.outbox_stats()
    return bool(s["pending"] == 0 and s["acked_seq"] == s["last_seq"])


@pytest.mark.slow
def test_cloud_killed_mid_drain_and_restarted(tmp_path: Path, cloud: CloudProcess) -> None:
    token = cloud.add_hub(HUB_ID)
    total = 30_000
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token)
    prefill(tmp_path / "hub" / "data", total)
    cloud.start()
    hub = HubProcess(config).start()
    try:
        for threshold in (3_000, 12_000, 21_000):
            wait_until(lambda t=threshold: cloud.hub(HUB_ID)["ack_seq"] >= t, 60, what=f"ack past {threshold}")
            cloud.kill()  # mid-drain: a batch is nearly always in flight
            wait_until(lambda: hub.health()["services"]["sync"]["details"]["consecutive_failures"] > 0, 20)
            cloud.start()
        wait_until(lambda: drained(hub), 90, interval=0.3, what="the outbox to drain")
        assert_delivered_exactly_once(cloud, hub, total)
        sync = hub.health()["services"]["sync"]
        assert sync["ok"]
        assert sync["details"]["link"] == "connected"
    finally:
        hub.kill()


@pytest.mark.slow
def test_cloud_errors_timeouts_and_resets(tmp_path: Path, cloud: CloudProcess) -> None:
    token = cloud.add_hub(HUB_ID)
    cloud.start()
    proxy = FaultProxy(cloud.port, mode="error500").start()
    total = 2_000
    config = write_hub_config(
        tmp_path / "hub", HUB_ID, cloud_url=f"http://127.0.0.1:{proxy.port}", token=token, extra=""
    )
    prefill(tmp_path / "hub" / "data", total)
    hub = HubProcess(config).start()
    try:

        def sync_details() -> dict[str, Any]:
            return dict(hub.health()["services"]["sync"]["details"])

        for mode, expect in (("error500", "HTTP 500"), ("hang", "Timeout"), ("reset", "reset")):
            faults_before = proxy.faults
            failures_before = sync_details()["consecutive_failures"]
            proxy.set_mode(mode)  # type: ignore[arg-type]

            def saw_fault(e: str = expect, before: int = failures_before) -> bool:
                details = sync_details()
                return bool(details["consecutive_failures"] >= before + 2 and e in (details["last_error"] or ""))

            wait_until(saw_fault, 30, what=f"the uploader to see {mode}")
            health = hub.health()
            assert health["status"] == "degraded"  # a failing link is a problem, not a dead hub
            assert any("cloud link failing" in p for p in health["problems"])
            assert cloud.hub(HUB_ID)["records"] == 0
            assert proxy.faults > faults_before
        assert hub.outbox_stats()["pending"] >= total  # nothing was dropped while the cloud misbehaved
        proxy.set_mode("pass")
        wait_until(lambda: drained(hub), 60, interval=0.3, what="the outbox to drain")
        assert_delivered_exactly_once(cloud, hub, total)
        # The outbox drains first; the command inbox's own long poll comes back at its next backoff step.
        wait_until(lambda: hub.health()["status"] == "ok", 30, what=f"health ok again: {hub.health()['problems']}")
    finally:
        hub.kill()
        proxy.stop()


def test_hub_keeps_records_while_offline_and_sends_on_first_contact(tmp_path: Path, cloud: CloudProcess) -> None:
    token = cloud.add_hub(HUB_ID)
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token)
    hub = HubProcess(config).start()  # the cloud is not up yet
    try:
        wait_until(lambda: hub.health()["services"]["sync"]["details"]["consecutive_failures"] >= 1, 20)
        assert hub.outbox_stats()["pending"] >= 1  # hub.started at least
        cloud.start()
        wait_until(lambda: drained(hub), 30, interval=0.2, what="the outbox to drain")
        kinds = [r["kind"] for r in cloud.all_records(HUB_ID)]
        assert kinds[0] == "hub.started"
        assert "telemetry.vitals" in kinds
    finally:
        hub.kill()


def test_wrong_token_is_reported_and_nothing_is_lost(tmp_path: Path, cloud: CloudProcess) -> None:
    cloud.add_hub(HUB_ID)
    cloud.start()
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token="not-the-right-token-at-all")
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: "HTTP 401" in (hub.health()["services"]["sync"]["details"]["last_error"] or ""), 20)
        assert hub.outbox_stats()["pending"] >= 1
        assert cloud.hub(HUB_ID)["records"] == 0
    finally:
        hub.kill()


def test_sequence_regression_after_store_reset(tmp_path: Path, cloud: CloudProcess) -> None:
    """A hub whose store was reset (seq back to 1) must not have its new records ignored as duplicates."""
    token = cloud.add_hub(HUB_ID)
    cloud.start()
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=token)
    data = tmp_path / "hub" / "data"
    prefill(data, 500)
    hub = HubProcess(config).start()
    wait_until(lambda: drained(hub), 30, interval=0.2)
    hub.terminate()
    held = cloud.hub(HUB_ID)["ack_seq"]
    assert held >= 500
    # the box loses its database entirely (SD card replaced, file deleted) and starts from scratch
    for f in data.iterdir():
        f.unlink()
    prefill(data, 10)
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: drained(hub), 30, interval=0.2)
        records = cloud.all_records(HUB_ID)
        newer = [r for r in records if r["seq"] > held]
        assert [r["payload"]["i"] for r in newer if r["kind"] == "test.prefill"] == list(range(10))
        raised = [r for r in newer if r["kind"] == "store.sequence_raised"]
        assert len(raised) == 1
        assert raised[0]["payload"]["cloud_ack_seq"] == held
        assert json.dumps(records).count('"test.prefill"') == 510
    finally:
        hub.kill()
