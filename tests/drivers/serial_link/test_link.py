"""The hub's sensor-node driver against the simulated node (the firmware's own logic) over a real pty."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from drivers.micropython.vhnode import pms5003
from drivers.micropython.vhnode import protocol as p
from drivers.serial_link import (
    LinkState,
    NodeEvent,
    NodeEventKind,
    NodeIncompatible,
    NodeRefused,
    NodeSimulator,
    NodeUnavailable,
    SensorNodeSettings,
    SerialNodeLink,
)

from .conftest import FAST, LinkFactory, eventually

SLOW_HEARTBEAT = {"heartbeat_interval_s": 5.0, "failsafe_timeout_s": 30.0}


def valve(sim: NodeSimulator) -> bool:
    """The valve pin now (a call: mypy would otherwise carry an earlier assert on the property over)."""
    return sim.valve_open


async def next_event(stream: object, timeout: float = 2.0) -> NodeEvent:
    anext_ = getattr(stream, "__anext__")  # noqa: B009 - the EventStream protocol, typed loosely on purpose
    event = await asyncio.wait_for(anext_(), timeout)
    assert isinstance(event, NodeEvent)
    return event


async def events_until(stream: object, kind: NodeEventKind, timeout: float = 3.0) -> list[NodeEvent]:
    seen: list[NodeEvent] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1].kind is not kind:
        seen.append(await next_event(stream, max(deadline - time.monotonic(), 0.01)))
    return seen


async def test_handshake_reports_who_the_node_is(sim: NodeSimulator, link: SerialNodeLink) -> None:
    health = link.health()
    assert health.ok
    assert health.state == "connected"
    assert health.last_error is None
    assert health.detail["firmware"] == sim.config.firmware
    assert health.detail["node_id"] == "sim-node-1"
    assert health.detail["protocol"] == "1.0"
    assert health.detail["capabilities"] == ["air", "door", "soil", "valve"]
    info = link.info
    assert info is not None
    assert info.soil_probes == 4
    assert info.failsafe_s == pytest.approx(0.6)  # the node took the hub's setting
    # Heartbeats keep flowing: the node hears the hub several times per fail-safe period.
    rx_before = sim.node.decoder.frames
    await asyncio.sleep(0.3)
    assert sim.node.decoder.frames - rx_before >= 3
    assert link.health().detail["last_heartbeat_age_s"] < 0.2


async def test_read_sensors_returns_what_the_node_measures(sim: NodeSimulator, link: SerialNodeLink) -> None:
    sim.set_soil([0, 1234, 40000, 65535])
    sim.set_air(pm2_5=77, pm10=99)
    await asyncio.sleep(0.12)  # a fresh PMS5003 frame on the node's UART (every 50 ms here)
    readings = await link.read_sensors()
    assert readings.soil_raw == (0, 1234, 40000, 65535)
    assert readings.door_open is False
    assert readings.valve_open is False
    assert readings.air_frame is not None
    assert readings.air_age_s is not None
    assert readings.air_age_s < 0.2
    values = pms5003.parse_frame(readings.air_frame)
    assert values[pms5003.FIELDS.index("pm2_5")] == 77
    assert values[pms5003.FIELDS.index("pm10")] == 99


async def test_valve_opens_closes_and_respects_its_max_duration(sim: NodeSimulator, link: SerialNodeLink) -> None:
    events = link.subscribe()
    state = await link.set_valve(True, 30)
    assert state.open
    assert state.reason == "command"
    assert 29 < state.remaining_s <= 30
    assert valve(sim)
    state = await link.set_valve(False, 0)
    assert not state.open
    assert not valve(sim)
    # An opening the node ends by itself is reported, with the reason.
    await link.set_valve(True, 0.2)
    seen = await events_until(events, NodeEventKind.VALVE_CLOSED)
    assert seen[-1].reason == "max_duration"
    assert not valve(sim)
    assert sim.valve_reason == "max_duration"
    assert [e.kind for e in seen].count(NodeEventKind.VALVE_CLOSED) == 1


async def test_valve_arguments_are_checked_before_anything_is_sent(sim: NodeSimulator, link: SerialNodeLink) -> None:
    for bad in (0.0, -1.0, float("nan"), 3600.5):
        with pytest.raises(ValueError, match="max_seconds"):
            await link.set_valve(True, bad)
    assert sim.valve_commands == 0


async def test_door_changes_are_delivered_once_each(sim: NodeSimulator, link: SerialNodeLink) -> None:
    events = link.subscribe()
    sim.set_door(True)
    opened = await events_until(events, NodeEventKind.DOOR_OPENED)
    sim.set_door(False)
    closed = await events_until(events, NodeEventKind.DOOR_CLOSED)
    await asyncio.sleep(0.3)  # heartbeats carry the door too; they must not repeat the edges
    sim.set_door(True)
    again = await events_until(events, NodeEventKind.DOOR_OPENED)
    kinds = [e.kind for e in opened + closed + again]
    assert kinds.count(NodeEventKind.DOOR_OPENED) == 2
    assert kinds.count(NodeEventKind.DOOR_CLOSED) == 1
    # Each edge also came as an EVENT frame (perhaps after the heartbeat that showed it first), acknowledged.
    await eventually(lambda: sim.node.pending_events() == 0, timeout=1, what="the node's events acknowledged")
    assert link.health().detail["events"] == 3


async def test_door_change_is_caught_by_heartbeats_when_its_event_is_lost(
    sim: NodeSimulator, link: SerialNodeLink
) -> None:
    sim.lose_frames_of_type(p.EVENT)
    events = link.subscribe()
    sim.set_door(True)
    seen = await events_until(events, NodeEventKind.DOOR_OPENED)
    assert seen[-1].kind is NodeEventKind.DOOR_OPENED
    assert link.health().detail["events"] == 0


async def test_resynchronises_after_garbage_truncated_frames_and_bad_crcs(
    sim: NodeSimulator, link: SerialNodeLink
) -> None:
    good = p.encode_message(p.Event(p.EVENT_DOOR, 0, 1), 200)
    sim.inject(b"\x13\x37\xff\x00\x42garbage\x00\x00")
    sim.inject(good[: len(good) // 2])  # cut mid-frame: the next frame's leading delimiter ends it
    sim.inject(bytes(range(256)) * 4)  # long noise with zeros in it
    sim.corrupt_responses(2)
    for _ in range(5):
        readings = await link.read_sensors()
        assert len(readings.soil_raw) == 4
    detail = link.health().detail
    assert detail["crc_errors"] + detail["cobs_errors"] + detail["length_errors"] + detail["overruns"] >= 3
    assert detail["crc_errors"] + detail["cobs_errors"] >= 1
    assert link.health().ok


async def test_a_lost_response_is_retried_and_the_command_runs_once(sim: NodeSimulator, make_link: LinkFactory) -> None:
    link = await make_link(**SLOW_HEARTBEAT)
    sim.drop_responses(1)
    state = await link.set_valve(True, 60)
    assert state.open
    assert sim.valve_commands == 1  # the retransmission was answered from the node's cache
    assert sim.node.duplicates == 1
    assert link.health().detail["retries"] == 1
    # The same for an answer that arrives corrupted.
    sim.corrupt_responses(1)
    state = await link.set_valve(False, 0)
    assert not state.open
    assert sim.valve_commands == 2
    assert link.health().detail["retries"] == 2


@pytest.mark.realtime  # asserts how long three timeouts take: run alone, not beside the parallel suite
async def test_no_answer_after_all_retries_raises_and_the_link_goes_on(
    sim: NodeSimulator, make_link: LinkFactory
) -> None:
    link = await make_link(**SLOW_HEARTBEAT)
    sim.drop_responses(3)  # 1 try + 2 retries
    started = time.monotonic()
    with pytest.raises(NodeUnavailable, match="no answer to READ_SENSORS after 3 tries"):
        await link.read_sensors()
    assert time.monotonic() - started == pytest.approx(0.18, abs=0.1)
    assert link.health().detail["timeouts"] == 1
    assert (await link.read_sensors()).soil_raw


@pytest.mark.parametrize(("node_major", "who"), [(2, "update the hub"), (0, "update the node's firmware")])
async def test_version_mismatch_is_reported_clearly(tmp_path: Path, node_major: int, who: str) -> None:
    path = tmp_path / "ttyNODE"
    with NodeSimulator(path, protocol_major=node_major, firmware="9.9.9") as sim:
        link = SerialNodeLink(SensorNodeSettings(port=str(path), **FAST))
        await link.start()
        try:
            await eventually(lambda: link.state is LinkState.INCOMPATIBLE, what="incompatible state")
            health = link.health()
            assert not health.ok
            assert health.state == "incompatible"
            assert health.last_error is not None
            assert f"speaks protocol {node_major}.0" in health.last_error
            assert "this hub speaks 1.0" in health.last_error
            assert "firmware 9.9.9" in health.last_error
            assert who in health.last_error
            with pytest.raises(NodeIncompatible, match=who):
                await link.read_sensors()
            assert not sim.session
        finally:
            await link.stop()


async def test_unplug_and_replug_recover_without_restart(sim: NodeSimulator, link: SerialNodeLink) -> None:
    events = link.subscribe()
    sim.unplug()
    await eventually(lambda: link.state is LinkState.ABSENT, timeout=2, what="absent after unplug")
    health = link.health()
    assert not health.ok
    assert health.last_error is not None
    seen = await events_until(events, NodeEventKind.DISCONNECTED)
    assert seen[-1].reason
    with pytest.raises(NodeUnavailable, match="absent"):
        await link.read_sensors()
    await asyncio.sleep(0.2)  # several reopen attempts fail while the path is gone
    assert "No such file" in (link.health().last_error or "")
    sim.set_soil([1, 2, 3, 4])
    sim.replug()
    assert await link.wait_connected(3)
    assert (await link.read_sensors()).soil_raw == (1, 2, 3, 4)
    assert link.health().ok
    assert link.health().detail["reconnects"] == 1
    await events_until(events, NodeEventKind.CONNECTED)


async def test_repeated_unplugs(sim: NodeSimulator, link: SerialNodeLink) -> None:
    for _ in range(3):
        sim.unplug()
        await eventually(lambda: link.state is LinkState.ABSENT, timeout=2, what="absent")
        sim.replug()
        assert await link.wait_connected(3)
    assert link.health().detail["reconnects"] == 3
    assert (await link.read_sensors()).soil_raw


async def test_port_missing_at_start_is_absent_not_an_error(sim: NodeSimulator, make_link: LinkFactory) -> None:
    sim.unplug()
    link = await make_link(connect=False)
    await asyncio.sleep(0.15)
    assert link.state is LinkState.ABSENT
    assert not link.health().ok
    sim.replug()
    assert await link.wait_connected(3)


async def test_silent_node_is_handshaking_then_recovers(sim: NodeSimulator, link: SerialNodeLink) -> None:
    sim.go_silent()
    await eventually(lambda: link.state is LinkState.HANDSHAKING, timeout=2, what="handshaking")
    assert not link.health().ok
    assert "no answer" in (link.health().last_error or "")
    await asyncio.sleep(0.3)
    assert link.health().detail["last_heartbeat_age_s"] >= 0.3
    sim.resume()
    assert await link.wait_connected(3)
    assert link.health().detail["last_heartbeat_age_s"] < 0.2


async def test_a_line_of_noise_is_named_as_a_wiring_fault(sim: NodeSimulator, link: SerialNodeLink) -> None:
    sim.go_silent()  # the node no longer answers; the line carries noise instead (a wrong baud rate looks so)
    await eventually(lambda: link.state is LinkState.HANDSHAKING, timeout=2, what="handshaking")

    def noisy() -> bool:
        sim.inject(bytes(range(1, 200)) + b"\x00")
        return "no intact frame" in (link.health().last_error or "")

    await eventually(noisy, timeout=3, what="the wiring hint")
    assert "baud rate" in (link.health().last_error or "")


async def test_failsafe_closes_the_valve_when_the_hub_goes_silent(sim: NodeSimulator, link: SerialNodeLink) -> None:
    await link.set_valve(True, 60)
    # With the hub alive, the valve outlasts the fail-safe timeout several times over.
    await asyncio.sleep(1.5)
    assert valve(sim)
    assert sim.failsafe_trips == 0
    await link.stop()  # the hub falls silent (crash, hang, cable)
    waited = await eventually(lambda: not sim.valve_open, timeout=2, what="valve closed by the fail-safe")
    assert waited == pytest.approx(0.6, abs=0.15)  # measured from the last heartbeat, at most 50 ms before
    assert sim.valve_reason == "failsafe"
    assert sim.failsafe_trips == 1


async def test_failsafe_on_a_cut_wire_is_reported_when_the_link_returns(
    sim: NodeSimulator, link: SerialNodeLink
) -> None:
    events = link.subscribe()
    await link.set_valve(True, 60)
    sim.go_silent()
    await eventually(lambda: not sim.valve_open, timeout=2, what="valve closed by the fail-safe")
    sim.resume()
    seen = await events_until(events, NodeEventKind.VALVE_CLOSED)
    assert seen[-1].reason == "failsafe"
    assert (await link.status()).valve.reason == "failsafe"


async def test_node_reboot_is_noticed_and_the_session_reopened(sim: NodeSimulator, link: SerialNodeLink) -> None:
    events = link.subscribe()
    await link.set_valve(True, 60)
    sim.reboot()
    assert not valve(sim)
    seen = await events_until(events, NodeEventKind.VALVE_CLOSED)
    assert seen[-1].reason == "boot"
    assert NodeEventKind.DISCONNECTED in [e.kind for e in seen]
    assert await link.wait_connected(3)
    assert link.health().detail["handshakes"] >= 2
    assert (await link.status()).uptime_s < 2


async def test_node_without_valve_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "ttyNODE"
    with NodeSimulator(path, capabilities=p.CAP_SOIL | p.CAP_DOOR):
        link = SerialNodeLink(SensorNodeSettings(port=str(path), **FAST))
        await link.start()
        try:
            assert await link.wait_connected(3)
            assert link.info is not None
            assert link.info.capabilities == frozenset({"soil", "door"})
            with pytest.raises(NodeRefused, match="unsupported") as refused:
                await link.set_valve(True, 10)
            assert refused.value.code == "unsupported"
            assert (await link.read_sensors()).air_frame is None
        finally:
            await link.stop()


async def test_status_reports_the_nodes_counters(sim: NodeSimulator, link: SerialNodeLink) -> None:
    status = await link.status()
    assert status.failsafe_s == pytest.approx(0.6)
    assert status.counters["rx_frames"] >= 3
    assert status.counters["air_frames"] >= 0
    assert not status.valve.open
    assert status.valve.reason == "boot"


async def test_stop_ends_event_streams_and_reports_stopped(link: SerialNodeLink) -> None:
    events = link.subscribe()
    await link.stop()
    assert [e.kind async for e in events] == [NodeEventKind.DISCONNECTED]
    assert link.state is LinkState.STOPPED
    assert not link.health().ok
    with pytest.raises(NodeUnavailable):
        await link.read_sensors()
