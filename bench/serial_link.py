"""Sensor-node link: round-trip time and throughput of the hub's driver against the simulated node on a pty.

Ptys deliver bytes at once, whatever the baud rate. So each exchange is measured twice:
- unpaced: the pty as it is; what is left is the software (driver, event loop, thread hop, node logic);
- paced: the simulated node takes the wire time of 115200 8N1 (10 bits per byte) for every byte it receives
  and sends, as a real line would impose;
and the wire time of the bytes actually exchanged (counted by the driver) is added to the unpaced figure as a
cross-check: "computed" = unpaced + wire time.

Requests are stop-and-wait (one outstanding), so throughput = 1 / round-trip time. Heartbeats are slowed down
so that they do not interleave with the measured requests.

    .venv/bin/python -m bench.serial_link            # 2000 exchanges per kind
    .venv/bin/python -m bench.serial_link --quick    # 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from drivers.serial_link import NodeEventKind, NodeSimulator, SensorNodeSettings, SerialNodeLink

BAUD = 115200
BITS_PER_BYTE = 10  # 8N1: start + 8 data + stop


def wire_s(nbytes: float, baud: int = BAUD) -> float:
    return nbytes * BITS_PER_BYTE / baud


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(link: SerialNodeLink, call: Callable[[], Awaitable[Any]], n: int) -> tuple[list[float], float]:
    """Round-trip times (s) of n sequential calls, and the bytes on the wire per call (both directions)."""
    for _ in range(min(20, n)):  # warm-up
        await call()
    before = link.health().detail
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t0)
    after = link.health().detail
    nbytes = (after["bytes_in"] - before["bytes_in"] + after["bytes_out"] - before["bytes_out"]) / n
    return times, nbytes


async def run(n: int, paced: bool, workdir: Path) -> dict[str, tuple[list[float], float]]:
    sim = NodeSimulator(workdir / ("paced" if paced else "unpaced"), pace_baud=BAUD if paced else None)
    sim.start()
    settings = SensorNodeSettings(
        port=str(sim.path), heartbeat_interval_s=60.0, failsafe_timeout_s=600.0, response_timeout_s=0.5
    )
    link = SerialNodeLink(settings)
    results: dict[str, tuple[list[float], float]] = {}
    try:
        t0 = time.perf_counter()
        await link.start()
        if not await link.wait_connected(5):
            raise RuntimeError(f"no session with the simulated node: {link.health()}")
        results["handshake (HELLO + GET_STATUS)"] = ([time.perf_counter() - t0], 0.0)
        results["status()          GET_STATUS"] = await measure(link, link.status, n)
        results["read_sensors()    READ_SENSORS"] = await measure(link, link.read_sensors, n)
        results["set_valve(False)  SET_VALVE"] = await measure(link, lambda: link.set_valve(False, 0), n)
        # Door event: the node debounces 50 ms, then sends EVENT; the hub acknowledges and delivers it.
        events = link.subscribe()
        latencies = []
        for k in range(min(n // 20, 20)):
            t0 = time.perf_counter()
            sim.set_door(k % 2 == 0)
            async for event in events:
                if event.kind in (NodeEventKind.DOOR_OPENED, NodeEventKind.DOOR_CLOSED):
                    break
            latencies.append(time.perf_counter() - t0)
        results["door event (incl. 50 ms debounce)"] = (latencies, 0.0)
        if link.health().detail["retries"]:
            print(f"  note: {link.health().detail['retries']} retries during the run", file=sys.stderr)
    finally:
        await link.stop()
        sim.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 exchanges per kind instead of 2000")
    parser.add_argument("-n", type=int, default=None, help="exchanges per kind")
    args = parser.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    with tempfile.TemporaryDirectory(prefix="bench-serial-link-") as tmp:
        print(f"  {n} exchanges per kind, unpaced ...", file=sys.stderr, flush=True)
        unpaced = asyncio.run(run(n, paced=False, workdir=Path(tmp)))
        print(f"  {n} exchanges per kind, paced at {BAUD} baud ...", file=sys.stderr, flush=True)
        paced = asyncio.run(run(n, paced=True, workdir=Path(tmp)))

    print()
    print(f"Sensor-node link, hub driver <-> simulated node (firmware logic) over a pty; {n} sequential exchanges")
    head = (
        f"{'exchange':<36}{'bytes':>6}{'wire ms':>9}{'unpaced med':>13}{'p99':>8}"
        f"{'computed med':>14}{'paced med':>11}{'p99':>8}{'paced /s':>10}"
    )
    print(head)
    print("-" * len(head))
    for name, (times, nbytes) in unpaced.items():
        ptimes, _ = paced[name]
        med, p99 = statistics.median(times), pct(times, 0.99)
        pmed, pp99 = statistics.median(ptimes), pct(ptimes, 0.99)
        wire = wire_s(nbytes)
        if nbytes:
            print(
                f"{name:<36}{nbytes:>6.0f}{wire * 1e3:>9.2f}{med * 1e3:>13.2f}{p99 * 1e3:>8.2f}"
                f"{(med + wire) * 1e3:>14.2f}{pmed * 1e3:>11.2f}{pp99 * 1e3:>8.2f}{1 / pmed:>10.0f}"
            )
        else:
            print(
                f"{name:<36}{'':>6}{'':>9}{med * 1e3:>13.2f}{p99 * 1e3:>8.2f}"
                f"{'':>14}{pmed * 1e3:>11.2f}{pp99 * 1e3:>8.2f}"
            )
    print()
    _, sensors_bytes = unpaced["read_sensors()    READ_SENSORS"]
    sensors_paced = statistics.median(paced["read_sensors()    READ_SENSORS"][0])
    print("All times in ms. bytes: on the wire per exchange, both directions, delimiters included.")
    print(
        f"Line capacity at {BAUD} 8N1: {BAUD // BITS_PER_BYTE} bytes/s. read_sensors paced: "
        f"{1 / sensors_paced:.0f} exchanges/s, {sensors_bytes / sensors_paced:.0f} bytes/s on the wire "
        f"({sensors_bytes / sensors_paced / (BAUD / BITS_PER_BYTE):.0%} of the line; the rest is turnaround)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
