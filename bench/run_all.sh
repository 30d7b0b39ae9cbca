#!/usr/bin/env bash
# Runs the benchmarks one after the other and prints their tables.
#   bench/run_all.sh            full runs (about 3 minutes in all on 2 cores)
#   bench/run_all.sh --quick    smoke runs (about 30 seconds)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
status=0
for name in outbox_ingest drain idle relay_latency serial_link lighting_cpu sensors_cpu portal_latency portal_admission broadcast_jitter broadcast_preemption camera_cpu live_view command_latency fleet; do
    echo "=== bench/${name}.py $*"
    start=$(date +%s)
    "$PYTHON" -m "bench.${name}" "$@" || { echo "bench/${name}.py FAILED (exit $?)"; status=1; }
    echo "=== bench/${name}.py took $(( $(date +%s) - start )) s"
    echo
done
exit "$status"
