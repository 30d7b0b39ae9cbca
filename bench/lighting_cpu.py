"""CPU time of the lighting rule computation: one full recompute (every circuit) per second for an hour.

The service recomputes far less often (at each change, on a clock jump, at least every `recheck_s`), so one
per second is a generous upper bound. Measured with `time.process_time()` on the pure `decide()`, at
Quảng Lưu (Thanh Hóa), starting at 17:30 local so the hour crosses sunset. "Cold" is the first hour after
start (astral and the interval cache empty); "warm" is the hour after.

    .venv/bin/python -m bench.lighting_cpu            # 4 and 40 circuits
    .venv/bin/python -m bench.lighting_cpu --quick    # 4 circuits, 10 minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import tomllib

from hub.lighting import schedule
from hub.lighting.schedule import Circuit, Place, circuits_from_settings, decide
from hub.lighting.settings import LightingSection
from tests.lighting.village import LIGHTING_TOML

PLACE = Place.create(19.66, 105.78, "Asia/Ho_Chi_Minh")
START = dt.datetime(2025, 6, 21, 17, 30, tzinfo=PLACE.tz)


def village(copies: int) -> tuple[Circuit, ...]:
    base = LightingSection.model_validate(tomllib.loads(LIGHTING_TOML)["lighting"])
    circuits = []
    for n in range(copies):
        for c in base.circuit:
            circuits.append(c.model_copy(update={"name": f"{c.name} {n}", "relays": [f"{r} {n}" for r in c.relays]}))
    return circuits_from_settings(base.model_copy(update={"circuit": circuits}))


def run(circuits: tuple[Circuit, ...], seconds: int, start: dt.datetime) -> float:
    began = time.process_time()
    for s in range(seconds):
        decide(circuits, PLACE, start + dt.timedelta(seconds=s))
    return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 600 if args.quick else 3600
    sizes = (1,) if args.quick else (1, 10)
    print(f"{'circuits':>8} {'span':>6} {'cold CPU s':>10} {'warm CPU s':>10} {'per call µs':>11} {'CPU %':>7}")
    for copies in sizes:
        circuits = village(copies)
        schedule._sun.cache_clear()
        schedule._interval_from.cache_clear()
        cold = run(circuits, seconds, START)
        warm = run(circuits, seconds, START + dt.timedelta(seconds=seconds))
        per_call = warm / seconds * 1e6
        print(
            f"{len(circuits):>8} {seconds // 60:>4}min {cold:>10.3f} {warm:>10.3f} {per_call:>11.1f} "
            f"{100 * warm / seconds:>6.3f}%"
        )


if __name__ == "__main__":
    main()
