"""Modbus RTU relay boards, simulated on a pty: the production driver's bytes, read-back, retries, faults."""

from __future__ import annotations

import itertools
import time

import pytest
from pymodbus.framer.rtu import FramerRTU

from drivers.relays import RelaysSettings, build, rtu
from tests.drivers.relays.conftest import PORT, BuildRelays, bus, module, sim


def test_crc_matches_the_specification_example() -> None:
    # "MODBUS over Serial Line" and countless manuals: read 10 holding registers from device 1.
    assert rtu.adu(1, bytes.fromhex("030000000A")) == bytes.fromhex("01030000000AC5CD")
    frame = bytes.fromhex("010600010100")
    # pymodbus agrees on another frame (it keeps the CRC in wire order, low byte first).
    assert rtu.adu(frame[0], frame[1:])[-2:] == FramerRTU.compute_CRC(frame).to_bytes(2, "big")


async def test_write_is_confirmed_by_reading_back_over_the_pty(build_relays: BuildRelays) -> None:
    relays = await build_relays({"modbus": {"bus": [bus(module(1, "coils-8", loa_khu_1=1, đèn_đường=(4, "on")))]}})
    board = sim(relays).board(PORT, 1)
    assert relays.bank.health().state == "unknown"  # nothing on the wire before the boot safe state

    result = await relays.bank.safe_state()
    assert result.ok, result
    assert board.relays()[:4] == [False, False, False, True]

    board.clear_log()
    result = await relays.bank.apply({"loa khu 1": True}, "broadcast")
    assert result.switched == ["loa khu 1"]
    assert board.relay(1) is True
    seen = board.requests()
    # Function 05 at coil 0, 0xFF00 = on, byte for byte as a coil board's manual writes it; then 01 at coil 0.
    assert seen[0].frame == bytes.fromhex("01050000FF008C3A")
    assert [(r.function, r.address) for r in seen] == [(5, 0), (1, 0)]
    health = relays.bank.health()
    assert health.ok
    assert health.state == "simulated"
    assert relays.bank.states()["loa khu 1"].where == f"{PORT} device 1 channel 1"


async def test_function_06_register_profile(build_relays: BuildRelays) -> None:
    relays = await build_relays(
        {"modbus": {"bus": [bus(module(1, "registers-4", amply=1, loa_khu_2=2), module(2, "coils-4", đèn=1))]}}
    )
    await relays.bank.safe_state()
    board = sim(relays).board(PORT, 1)
    board.clear_log()
    result = await relays.bank.apply({"amply": True}, "broadcast")
    assert result.ok
    assert board.relays() == [True, False, False, False]
    seen = board.requests()
    assert seen[0].frame == bytes.fromhex("010600010100D99A")  # write register 1 = 0x0100: channel 1 on
    assert [(r.function, r.address) for r in seen] == [(6, 1), (3, 1)]
    await relays.bank.apply({"amply": False, "loa khu 2": True}, "swap")
    assert board.relays() == [False, True, False, False]
    assert board.requests(6)[-2].value == 0x0200  # off is its own command, written before the on
    assert sim(relays).board(PORT, 2).relays() == [False] * 4  # the other board on the bus was not disturbed


async def test_custom_profile_from_config(build_relays: BuildRelays) -> None:
    profile = {
        "channels": 2,
        "write_function": 6,
        "read_function": 4,
        "first_address": 16,
        "read_first_address": 32,
        "register_on": 1,
        "register_off": 2,
        "status_on": 7,
        "status_off": 0,
    }
    relays = await build_relays({"modbus": {"profiles": {"tủ bơm": profile}, "bus": [bus(module(9, "tủ bơm", bơm=2))]}})
    await relays.bank.safe_state()
    board = sim(relays).board(PORT, 9)
    board.clear_log()
    assert (await relays.bank.apply({"bơm": True}, "test")).ok
    assert board.relays() == [False, True]
    assert [(r.function, r.address, r.value) for r in board.requests()] == [(6, 17, 1), (4, 33, 1)]


async def test_unanswered_write_is_retried(build_relays: BuildRelays) -> None:
    relays = await build_relays({"modbus": {"bus": [bus(module(1, "coils-4", loa=1))]}})
    await relays.bank.safe_state()
    board = sim(relays).board(PORT, 1)
    board.clear_log()
    board.drop(1)  # noise on the line eats the first write
    result = await relays.bank.apply({"loa": True}, "broadcast")
    assert result.ok
    assert board.relay(1) is True
    writes = board.requests(rtu.WRITE_SINGLE_COIL)
    assert [w.answered for w in writes] == [False, True]
    assert relays.bank.health().detail["devices"][f"{PORT} device 1"]["retried"] == 1


async def test_write_that_fails_every_retry_is_reported(build_relays: BuildRelays) -> None:
    relays = await build_relays({"modbus": {"bus": [bus(module(1, "coils-4", loa=1), retries=3)]}})
    await relays.bank.safe_state()
    board = sim(relays).board(PORT, 1)
    board.clear_log()
    board.drop(100)
    t0 = time.monotonic()
    result = await relays.bank.apply({"loa": True}, "broadcast")
    elapsed = time.monotonic() - t0
    assert not result.ok
    assert len(board.requests(rtu.WRITE_SINGLE_COIL)) == 4  # the first try and 3 retries
    assert 4 * 0.08 <= elapsed < 2.0  # each attempt waited its timeout
    assert "no answer to 4 attempt(s)" in result.failed["loa"]
    state = relays.bank.state("loa")
    assert state.on is None
    assert state.declared is True
    assert not state.ok


async def test_unplugged_board_is_absent_and_recovers_when_replugged(build_relays: BuildRelays) -> None:
    relays = await build_relays(
        {"modbus": {"bus": [bus(module(1, "coils-8", loa_1=1, loa_2=2, loa_3=3), module(2, "coils-4", đèn=1))]}}
    )
    bank = relays.bank
    await bank.safe_state()
    board, other = sim(relays).board(PORT, 1), sim(relays).board(PORT, 2)
    board.unplug()
    board.clear_log()

    result = await bank.apply({"loa 1": True, "loa 2": True, "loa 3": True, "đèn": True}, "broadcast")
    # No exception reached us; the board that answers was switched; the silent one was tried once, not 3 times.
    assert other.relay(1) is True
    assert result.failed.keys() == {"loa 1", "loa 2", "loa 3"}
    assert len(board.requests(rtu.WRITE_SINGLE_COIL)) == 3  # one write and its 2 retries, for the first relay
    assert [o.action for o in result.outcomes[:3]].count("skipped") == 2
    health = bank.health()
    assert not health.ok
    assert health.state == "absent"
    assert health.detail["devices"][f"{PORT} device 1"]["state"] == "absent"
    assert health.detail["devices"][f"{PORT} device 2"]["state"] == "connected"
    assert "device 1: no answer" in (health.last_error or "")

    board.replug()
    result = await bank.apply({"loa 2": False}, "later, same process")
    assert result.ok, result
    assert board.relays()[:3] == [True, False, True]  # what was declared while it was away, now applied
    assert bank.health().ok


async def test_stuck_relay_is_unhealthy_with_the_disagreement_named(build_relays: BuildRelays) -> None:
    relays = await build_relays({"modbus": {"bus": [bus(module(3, "coils-8", loa_1=1, loa_khu_2=2))]}})
    await relays.bank.safe_state()
    board = sim(relays).board(PORT, 3)
    board.stick(2)
    result = await relays.bank.apply({"loa khu 2": True, "loa 1": True}, "broadcast")
    assert board.relay(1) is True
    assert board.relay(2) is False
    message = result.failed["loa khu 2"]
    assert "device 3 channel 2 ('loa khu 2'): wrote on, read back off" in message
    health = relays.bank.health()
    assert not health.ok
    assert health.state == "mismatch"
    assert health.last_error == message
    assert relays.bank.state("loa khu 2").error == message

    board.unstick(2)
    assert (await relays.bank.apply({}, "retry")).ok  # a failed relay is retried on the next pass
    assert relays.bank.health().ok


async def test_profile_that_does_not_fit_the_board_is_named(build_relays: BuildRelays) -> None:
    relays = await build_relays({"modbus": {"bus": [bus(module(1, "coils-4", loa=1))]}})
    # The board on the wire speaks the register protocol although hub.toml says coils.
    board = sim(relays).board(PORT, 1)
    board.profile = RelaysSettings().modbus.profile("registers-4")
    result = await relays.bank.safe_state()
    assert "exception 1 (illegal function)" in result.failed["loa"]
    assert "'coils-4'" in result.failed["loa"]
    assert relays.bank.health().state == "error"


async def test_verify_puts_right_a_board_that_lost_power(build_relays: BuildRelays) -> None:
    relays = await build_relays({"modbus": {"bus": [bus(module(1, "coils-4", loa=1, đèn=(2, "on")))]}})
    await relays.bank.safe_state()
    await relays.bank.apply({"loa": True}, "broadcast")
    board = sim(relays).board(PORT, 1)
    board.power_cycle()
    assert board.relays()[:2] == [False, False]
    result = await relays.bank.verify()
    assert result.ok
    assert sorted(result.switched) == ["loa", "đèn"]
    assert board.relays()[:2] == [True, True]


async def test_missing_serial_adapter_is_absent() -> None:
    settings = RelaysSettings.model_validate(
        {
            "modbus": {
                "bus": [
                    {
                        "port": "/dev/ttyUSB-nonexistent",
                        "timeout_s": 0.05,
                        "retries": 1,
                        "module": [{"device_id": 1, "profile": "coils-4", "relay": [{"channel": 1, "name": "loa"}]}],
                    }
                ]
            }
        }
    )
    relays = build(settings, simulated=False)
    try:
        result = await relays.bank.safe_state()
        assert "cannot open /dev/ttyUSB-nonexistent" in result.failed["loa"]
        assert relays.bank.health().state == "absent"
    finally:
        await relays.close()


@pytest.mark.parametrize("stagger_ms", [40])
async def test_stagger_spans_gpio_and_modbus(build_relays: BuildRelays, stagger_ms: int) -> None:
    relays = await build_relays(
        {
            "stagger_ms": stagger_ms,
            "gpio": [{"name": "amply", "pin": 17, "active_high": True}],
            "modbus": {"bus": [bus(module(1, "coils-4", loa_1=1, loa_2=2))]},
        }
    )
    await relays.bank.safe_state()
    pins, board = sim(relays).pins, sim(relays).board(PORT, 1)
    pins.clear_history()
    board.clear_log()
    await relays.bank.apply({"amply": True, "loa 1": True, "loa 2": True}, "broadcast")
    times = sorted([t for t, _ in pins.history(17)[1:]] + [t for t, _, _ in board.changes()])
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= stagger_ms / 1000 - 0.001 for gap in gaps), gaps
