"""Admission on the dry firewall: timeouts, renewal, limits, quotas, kicks, restarts, and the statistics."""

from __future__ import annotations

import pytest

from hub.portal.admission import Refused
from hub.portal.stats import DAILY_KIND, SESSION_KIND
from hub.store import Store
from tests.portal.conftest import StepClock, make_admission, outbox

A, B, C = "10.77.0.23", "10.77.0.24", "10.77.0.25"
MA, MB, MC = "aa:00:00:00:00:01", "aa:00:00:00:00:02", "aa:00:00:00:00:03"


async def test_admit_expire_and_renew(store: Store, clock: StepClock) -> None:
    admission, fw = make_admission(store, clock, session_s=100)
    await admission.restore()
    assert not fw.allows(A, MA)
    session = await admission.admit(A, MA.upper())
    assert fw.allows(A, MA)
    assert session.mac == MA
    assert not fw.allows(A, MB)  # the same address from another device is not let through
    clock.advance(60)
    renewed = await admission.admit(A, MA)
    assert renewed.id == session.id
    assert renewed.renewals == 1
    clock.advance(60)
    assert fw.allows(A, MA)
    assert admission.session_for(A, MA) is not None
    clock.advance(41)
    assert not fw.allows(A, MA)
    assert admission.session_for(A) is None
    done = await admission.poll()
    assert done["expired"] == 1
    assert admission.sessions == {}
    [ended] = outbox(store, SESSION_KIND)
    assert ended["end"] == "expired"
    assert ended["renewals"] == 1
    assert MA not in str(ended)
    assert len(ended["client"]) == 16
    assert store.query("SELECT count(*) FROM portal_sessions")[0][0] == 0


async def test_only_the_subnet_and_a_known_mac(store: Store, clock: StepClock) -> None:
    admission, _ = make_admission(store, clock)
    await admission.restore()
    with pytest.raises(Refused) as exc:
        await admission.admit("192.168.1.5", MA)
    assert exc.value.code == "not-wifi"
    with pytest.raises(Refused) as exc:
        await admission.admit(A, None)
    assert exc.value.code == "unknown-device"


async def test_max_clients_and_replacement(store: Store, clock: StepClock) -> None:
    admission, fw = make_admission(store, clock, max_clients=2)
    await admission.restore()
    await admission.admit(A, MA)
    await admission.admit(B, MB)
    with pytest.raises(Refused) as exc:
        await admission.admit(C, MC)
    assert exc.value.code == "full"
    await admission.admit(A, MA)  # a renewal is never refused for being full
    # The phone got a new address from DHCP: the old pair goes, the new one comes, still two clients.
    await admission.admit(C, MB)
    assert fw.allows(C, MB)
    assert not fw.allows(B, MB)
    assert sorted(s.ip for s in admission.active()) == [A, C]
    assert admission.tally.refused_full == 1
    assert [r["end"] for r in outbox(store, SESSION_KIND)] == ["replaced"]


async def test_daily_quota_counts_bytes_and_cuts_off(store: Store, clock: StepClock) -> None:
    admission, fw = make_admission(store, clock, daily_quota_mb=1)
    await admission.restore()
    await admission.admit(A, MA)
    fw.add_traffic(A, up=100_000, down=500_000)
    await admission.poll()
    assert admission.sessions[A].bytes_down == 500_000
    assert admission.quota_left(MA) == 400_000
    fw.add_traffic(A, up=0, down=450_000)
    done = await admission.poll()
    assert done["quota"] == 1
    assert not fw.allows(A, MA)
    with pytest.raises(Refused) as exc:
        await admission.admit(A, MA)
    assert exc.value.code == "quota"
    [ended] = outbox(store, SESSION_KIND)
    assert ended["end"] == "quota"
    assert ended["bytes_up"] + ended["bytes_down"] == 1_050_000
    # A new day: the quota starts again, and yesterday goes to the commune as one record of counts.
    clock.advance(4 * 3600 + 1)  # 20:00 + 4 h: past midnight in Asia/Ho_Chi_Minh
    await admission.admit(A, MA)
    [day] = outbox(store, DAILY_KIND)
    assert day["day"] == "2026-11-24"
    assert day["clients"] == 1
    assert day["sessions"] == 1
    assert day["bytes_down"] == 950_000
    assert day["refused_quota"] == 1
    assert day["clients_at_quota"] == 1


async def test_kick(store: Store, clock: StepClock) -> None:
    admission, fw = make_admission(store, clock)
    await admission.restore()
    session = await admission.admit(A, MA)
    await admission.kick(session.id, who="kỹ thuật viên")
    assert not fw.allows(A, MA)
    with pytest.raises(KeyError):
        await admission.kick(A)
    assert [r["end"] for r in outbox(store, SESSION_KIND)] == ["kicked"]
    assert outbox(store, "portal.kicked")[0]["who"] == "kỹ thuật viên"


async def test_restart_restores_exactly_the_admitted(store: Store, clock: StepClock) -> None:
    admission, _ = make_admission(store, clock, session_s=1000)
    await admission.restore()
    await admission.admit(A, MA)
    clock.advance(400)
    await admission.admit(B, MB)
    clock.advance(100)
    # A new process (same store), as after a reboot: the table is empty, the store decides, by the wall clock.
    again, fw = make_admission(store, clock, session_s=1000)
    restored = await again.restore()
    assert sorted(s.ip for s in restored) == [A, B]
    assert fw.allows(A, MA)
    assert fw.allows(B, MB)
    assert not fw.allows(C, MC)
    assert again.remaining_s(again.sessions[A]) == pytest.approx(500, abs=1)
    # The hub is down longer than A's session: A is not let back in, B is.
    clock.advance(600)
    third, fw = make_admission(store, clock, session_s=1000)
    await third.restore()
    assert not fw.allows(A, MA)
    assert fw.allows(B, MB)
    assert [r["end"] for r in outbox(store, SESSION_KIND)] == ["restart-expired"]
    # A box that booted with its clock years ahead does not end sessions early... nor keep them past a session.
    clock.jump(-10 * 365 * 86400)
    fourth, fw = make_admission(store, clock, session_s=1000)
    await fourth.restore()
    assert fourth.remaining_s(fourth.sessions[B]) <= 1000


async def test_salt_is_made_once_and_hashes_differ_per_hub(store: Store, clock: StepClock) -> None:
    admission, _ = make_admission(store, clock)
    await admission.restore()
    first = admission.hash(MA)
    again, _ = make_admission(store, clock)
    await again.restore()
    assert again.hash(MA) == first
    assert first != admission.hash(MB)


async def test_table_that_vanished_is_loaded_again(store: Store, clock: StepClock) -> None:
    admission, fw = make_admission(store, clock)
    await admission.restore()
    await admission.admit(A, MA)
    await fw.remove()
    done = await admission.poll()
    assert done["reloaded"] == 1
    assert fw.allows(A, MA)


async def test_a_quiet_poll_writes_nothing(store: Store, clock: StepClock) -> None:
    admission, fw = make_admission(store, clock)
    await admission.restore()
    await admission.admit(A, MA)
    await admission.poll()
    commits = store.commits
    for _ in range(5):
        await admission.poll()
    assert store.commits == commits
    fw.add_traffic(A, up=10, down=20)
    await admission.poll()
    assert store.commits == commits + 1
    assert store.query("SELECT bytes_up, bytes_down FROM portal_sessions")[0] == (10, 20)
