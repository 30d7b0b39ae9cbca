"""Admission latency, from pressing "Kết nối" to traffic flowing, with the real nftables table (as root).

The netns topology of the end-to-end test (tests/portal/netns.py) with one phone namespace per sample: the hub
(`hub run`, nft backend) in its namespace, an internet host beyond it. Each phone loads the portal, checks that
it is captive, presses the button, and then fetches the internet host's page until it gets it; the phones go one
after the other, so each sample is one admission on an otherwise idle hub (plus the table growing by one). Both
times are from the moment the POST is sent: its answer, and the first internet page. Target (issue 7): < 200 ms.
Needs root, iproute2, nftables; says why and exits otherwise.

    sudo .venv/bin/python -m bench.portal_admission            # 20 phones
    sudo .venv/bin/python -m bench.portal_admission --quick    # 5 phones
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from tests.portal.netns import HUB_WIFI, INTERNET, HubInNamespace, Topology, unavailable

PHONE_SCRIPT = Path(__file__).with_name("_portal_phone.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--phones", type=int, default=None)
    args = parser.parse_args()
    phones = args.phones or (5 if args.quick else 20)
    reason = unavailable()
    if reason:
        print(f"portal admission: skipped: {reason}")
        return 0
    answered, flowing = [], []
    with tempfile.TemporaryDirectory(prefix="vh-portal-adm-") as tmp, Topology("bench", extra_phones=phones) as topo:
        hub = HubInNamespace(topo, Path(tmp) / "hub", download_kbps=2048, upload_kbps=1024, poll_s=10.0).start()
        for ns, _address in topo.phones[2:]:
            result = topo.run(ns, [sys.executable, str(PHONE_SCRIPT), HUB_WIFI, INTERNET])
            if result.returncode != 0:
                print(result.stdout, result.stderr)
                return 1
            sample = json.loads(result.stdout.strip().splitlines()[-1])
            answered.append(sample["answered_ms"])
            flowing.append(sample["flowing_ms"])
        hub.stop()
    print(f"portal admission with nftables: {phones} phones, one after the other")
    for name, ms in (("button -> answer", answered), ("button -> traffic flowing", flowing)):
        ms = sorted(ms)
        p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
        print(f"  {name:<26} p50 {statistics.median(ms):6.1f} ms   p99 {p99:6.1f} ms   max {ms[-1]:6.1f} ms")
    worst = max(flowing)
    print(f"  target < 200 ms to traffic flowing: {'met' if worst < 200 else 'NOT met'} (worst {worst:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
