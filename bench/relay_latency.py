"""Relay command latency: from `RelayBank.apply()` to the relay, on simulated hardware running the real drivers.

GPIO: from the call to the level change on gpiozero's mock pin (the pin's own change timestamp).
Modbus: from the call to the simulated board setting its coil (it has parsed the RTU write from the pty),
and to `apply()` returning, i.e. the write acknowledged and the coil read back over the pty.

A pty has no baud timing: on a real RS-485 line each byte also costs 10 bit times, so a write and its
read-back (8 + 8 + 8 + 6 bytes) take about 31 ms of wire time at 9600 baud, which the client's polling for
the answer (every 4 character times, the cost measured here) partly overlaps. Both are printed.
The stagger is set to 0 here, since it is a deliberate wait, not latency. Figures are printed, not asserted.

    .venv/bin/python -m bench.relay_latency            # 400 commands per kind
    .venv/bin/python -m bench.relay_latency --quick    # 40 commands per kind
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from drivers.relays import RelaysSettings, build

PORT = "/dev/ttyBENCH"
WRITE_AND_READ_BACK_BYTES = 8 + 8 + 8 + 6  # write request, its echo, read request, read answer (1 coil)


def settings(baudrate: int) -> RelaysSettings:
    return RelaysSettings.model_validate(
        {
            "stagger_ms": 0,
            "gpio": [{"name": "loa khu 1", "pin": 17, "active_high": False}],
            "modbus": {
                "bus": [
                    {
                        "port": PORT,
                        "baudrate": baudrate,
                        "timeout_s": 0.5,
                        "module": [{"device_id": 1, "profile": "coils-8", "relay": [{"channel": 1, "name": "đèn"}]}],
                    }
                ]
            },
        }
    )


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    return f"median {statistics.median(ms):7.3f} ms   p99 {p99:7.3f} ms   max {ms[-1]:7.3f} ms   (n={len(ms)})"


async def run(count: int, baudrate: int) -> None:
    relays = build(settings(baudrate), simulated=True)
    simulation = relays.simulation
    assert simulation is not None
    bank = relays.bank
    try:
        await bank.safe_state()
        gpio: list[float] = []
        gpio_apply: list[float] = []
        for i in range(count):
            on = i % 2 == 0
            t0 = time.monotonic()
            result = await bank.apply({"loa khu 1": on}, "bench")
            t1 = time.monotonic()
            if not result.ok:
                raise RuntimeError(f"GPIO apply failed: {result.failed}")
            changed_at, level = simulation.pins.history(17)[-1]
            assert level is (not on)  # active-low
            gpio.append(changed_at - t0)
            gpio_apply.append(t1 - t0)

        board = simulation.board(PORT, 1)
        coil: list[float] = []
        confirmed: list[float] = []
        for i in range(count):
            on = i % 2 == 0
            t0 = time.monotonic()
            result = await bank.apply({"đèn": on}, "bench")
            t1 = time.monotonic()
            if not result.ok:
                raise RuntimeError(f"Modbus apply failed: {result.failed}")
            changed_at, channel, state = board.changes()[-1]
            assert channel == 1
            assert state is on
            coil.append(changed_at - t0)
            confirmed.append(t1 - t0)
    finally:
        await relays.close()

    wire_ms = WRITE_AND_READ_BACK_BYTES * 10 / baudrate * 1000
    print(f"relay command latency, simulated hardware, {count} commands per kind")
    print(f"  GPIO   apply() -> mock pin level changed    {summary(gpio)}")
    print(f"  GPIO   apply() returned                     {summary(gpio_apply)}")
    print(f"  Modbus apply() -> board set its coil        {summary(coil)}")
    print(f"  Modbus apply() -> write acked + read back   {summary(confirmed)}")
    print(f"  (on a real line at {baudrate} baud the write and read-back also take ~{wire_ms:.1f} ms of wire time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="40 commands per kind instead of 400")
    parser.add_argument("--baudrate", type=int, default=9600, help="bus speed configured (pymodbus polls by it)")
    args = parser.parse_args()
    asyncio.run(run(40 if args.quick else 400, args.baudrate))


if __name__ == "__main__":
    main()
