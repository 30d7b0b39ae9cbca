"""Sensors: CPU time per hour of telemetry processing, at one reading a second from every sensor.

Feeds synthetic readings, one a second for an hour (3600 per sensor: the node's answer with its four soil probes,
and the PMS5003), through the sensors service's own processing methods: process_soil (calibration, fault
tracking, the irrigation controller), process_air (interval samples, hourly means, VN_AQI and its alarm) and
telemetry_records at the recording interval, with every record JSON-encoded as the store does before writing. The
service runs on a manual clock, so an hour of readings takes as long as the CPU needs and no longer. Not counted:
the serial link and the SQLite commits (bench/serial_link.py and bench/outbox_ingest.py measure those).

Target: under 1 % of one core, i.e. under 36 s of CPU per hour of readings.

    .venv/bin/python -m bench.sensors_cpu            # 3 simulated hours (the NowCast needs two), best of 3
    .venv/bin/python -m bench.sensors_cpu --quick    # 1 simulated hour, once
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

from drivers.airquality import AirQualityReading
from drivers.serial_link import SensorNodeSettings, SensorReadings, SerialNodeLink
from hub.bus import EventBus
from hub.sensors.irrigation import ManualClock
from hub.sensors.service import Record, SensorsService
from hub.sensors.settings import IrrigationSettings, SensorsSettings, SoilProbeSettings, SoilSettings
from hub.store import Store
from hub.store.store import encode_payload

TARGET_PCT = 1.0
INTERVAL_S = 60.0


def settings() -> SensorsSettings:
    probes = [SoilProbeSettings(name=f"probe-{i}", channel=i, dry_raw=42000, wet_raw=18000) for i in range(4)]
    return SensorsSettings(
        interval_s=INTERVAL_S,
        soil=SoilSettings(probes=probes),
        irrigation=IrrigationSettings(
            enabled=True,
            probes=["probe-0", "probe-1"],
            confirm_s=120.0,
            max_run_s=300.0,
            min_rest_s=600.0,
            allowed_hours=["00:00-24:00"],
        ),
    )


def synthetic(seconds: int, seed: int = 1) -> tuple[list[SensorReadings], list[AirQualityReading]]:
    """Soil drying and re-wetting in slow waves with noise (so irrigation cycles happen), a probe that faults now
    and then, and PM2.5 rising from clean to poor and back (so the AQI alarm moves)."""
    rng = random.Random(seed)
    soil, air = [], []
    for t in range(seconds):
        wave = math.sin(t / 900.0)
        raws = tuple(int(30000 + 9000 * wave + rng.gauss(0, 300)) + 500 * i for i in range(4))
        if t % 1800 < 5:
            raws = (65535, *raws[1:])  # a wire playing up
        soil.append(SensorReadings(raws, False, False, None, None, float(t)))
        pm = max(0, int(40 + 35 * math.sin(t / 2400.0) + rng.gauss(0, 4)))
        air.append(AirQualityReading(pm, pm, pm + 15, pm, pm, pm + 15, 900, 300, 60, 8, 2, 1, float(t), "node"))
    return soil, air


def encode(records: list[Record]) -> int:
    return sum(len(encode_payload(payload)) for _, _, payload in records)


def run_once(hours: int, data_dir: Path) -> dict[str, float]:
    seconds = hours * 3600
    soil, air = synthetic(seconds)
    clock = ManualClock(start=0.0)
    store = Store.open(data_dir)
    # A link object only (never started): the service then builds its irrigation controller as on a real box.
    link = SerialNodeLink(SensorNodeSettings())
    service = SensorsService(link, None, store, EventBus(), INTERVAL_S, settings=settings(), clock=clock)
    records = encoded = decisions = 0
    try:
        started = time.process_time()
        for t in range(seconds):
            out, decision = service.process_soil(soil[t])
            out += service.process_air(air[t])
            if decision is not None:
                decisions += 1
            if t % int(INTERVAL_S) == 0:
                out += service.telemetry_records(soil[t])
            records += len(out)
            encoded += encode(out)
            clock.advance(1.0)
        cpu = time.process_time() - started
    finally:
        store.close()
    return {
        "cpu_s": cpu,
        "cpu_s_per_hour": cpu / hours,
        "pct_core": cpu / seconds * 100.0,
        "us_per_second_of_readings": cpu / seconds * 1e6,
        "records_per_hour": records / hours,
        "bytes_per_hour": encoded / hours,
        "valve_decisions_per_hour": decisions / hours,
        "aqi_hours": float(sum(1 for _ in service.tracker.hours["pm2_5"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one simulated hour, one run")
    parser.add_argument("--hours", type=int, default=3, help="simulated hours per run (default 3)")
    args = parser.parse_args(argv)
    hours = 1 if args.quick else args.hours
    repeats = 1 if args.quick else 3
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-sensors-") as tmp:
            results.append(run_once(hours, Path(tmp)))
    best = min(results, key=lambda r: r["cpu_s_per_hour"])
    print(f"sensors CPU: {hours} simulated hour(s) x {repeats} run(s), 1 reading/s from the node (4 probes) + PMS5003")
    print(f"  CPU per hour of readings   {best['cpu_s_per_hour'] * 1000:8.1f} ms  (best of {repeats})")
    print(f"  share of one core          {best['pct_core']:8.4f} %  (target < {TARGET_PCT} %)")
    print(f"  per second of readings     {best['us_per_second_of_readings']:8.1f} us")
    kib = best["bytes_per_hour"] / 1024
    print(f"  records per hour           {best['records_per_hour']:8.0f}    ({kib:.1f} KiB JSON)")
    print(f"  valve decisions per hour   {best['valve_decisions_per_hour']:8.1f}")
    print(f"  hourly means held (NowCast/daily)  {best['aqi_hours']:.0f}")
    ok = best["pct_core"] < TARGET_PCT
    print(f"  {'OK' if ok else 'OVER TARGET'}")
    return 0  # figures, not a test (bench/README.md): a slow result is printed, not failed


if __name__ == "__main__":
    sys.exit(main())
