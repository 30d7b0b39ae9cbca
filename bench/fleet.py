"""Fleet reconnection: 500 light hubs (real Store + real Uploader each, one process) ride out a 60 s outage of the
reference cloud (a real `hub-cloud serve`, SIGKILLed and restarted on the same port and database).

Prints the cloud's per-second request rate after the restart (peak, p99, p50, from GET /api/v1/metrics), the bound
derived from the backoff settings and the no-jitter worst case, the time to drain every outbox, and how many
records arrived missing or twice (both must be 0).

    .venv/bin/python -m bench.fleet                      # 500 hubs, 60 s outage (about 2 minutes)
    .venv/bin/python -m bench.fleet --quick                 # 50 hubs, 5 s outage
    .venv/bin/python -m bench.fleet --no-jitter             # the same without jitter: what the bound guards against
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tests.cloud.fleet import FleetPlan, run_fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hubs", type=int, default=500)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the cloud stays down")
    parser.add_argument("--during", type=int, default=20, help="records each hub writes during the outage")
    parser.add_argument("--cap", type=float, default=24.0, help="backoff_max_s of every hub")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 hubs, 5 s outage")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-jitter", action="store_true", help="plain exponential backoff: the herd, for contrast")
    args = parser.parse_args(argv)
    plan = replace(FleetPlan(), hubs=args.hubs, outage_s=args.outage, during=args.during, backoff_max_s=args.cap)
    if args.no_jitter:
        plan = replace(plan, jitter=False)
    if args.quick:
        plan = replace(plan, hubs=50, outage_s=5.0)
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        result = asyncio.run(run_fleet(plan, Path(tmp), progress=lambda m: print(f"  {m}", file=sys.stderr)))
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {value}")
        print(f"{'per_second_after_restart':<{width}}  {result.per_second}")
    ok = not result.missing and not result.duplicated and result.peak_per_s <= result.peak_bound
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
