"""Child process for the power-cut test: writes outbox records as fast as it can from many producers and
prints `seq run producer index` for each record once the store has acknowledged it (it is then durable)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hub.store import Store, StoreLimits


async def main(data_dir: Path, run: int, producers: int) -> None:
    store = Store.open(data_dir, StoreLimits(max_records=10_000_000, max_bytes=2**40))
    out = sys.stdout

    async def produce(p: int) -> None:
        i = 0
        while True:
            cls = ("telemetry", "operations", "security", "safety")[i % 4]
            seq = await store.append(cls, "power_cut.sample", {"run": run, "p": p, "i": i, "text": "điện mất"})
            out.write(f"{seq} {run} {p} {i}\n")
            out.flush()
            i += 1

    print("ready", flush=True)
    await asyncio.gather(*(produce(p) for p in range(producers)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
