"""Fleet-side provisioning helper for hubs under balenaOS: set device variables through the balena API.

    python -m ota.balena_fleet set-vars --device UUID HUB_ID=xa-quang-luu-thon-3 ... (token in $BALENA_API_KEY)

Needs the optional extra `balena` (balena-sdk), imported only here and only when run: it writes
$HOME/.balena/balena.cfg, so it belongs on a technician's machine, never on the box.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _sdk() -> Any:
    try:
        from balena import Balena  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SystemExit("ota.balena_fleet needs balena-sdk: pip install 'village-hub[balena]'") from None
    return Balena()


def parse_assignments(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum():
            raise ValueError(f"expected NAME=value, got {item!r}")
        out[name] = value
    return out


def set_device_vars(token: str, device_uuid: str, variables: dict[str, str], sdk: Any = None) -> None:
    balena = sdk or _sdk()
    balena.auth.login_with_token(token)
    for name, value in variables.items():
        balena.models.device.env_var.set(device_uuid, name, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ota.balena_fleet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    setv = sub.add_parser("set-vars", help="set device environment variables")
    setv.add_argument("--device", required=True, help="device UUID")
    setv.add_argument("assignments", nargs="+", help="NAME=value")
    args = parser.parse_args(argv)
    token = os.environ.get("BALENA_API_KEY")
    if not token:
        print("ota.balena_fleet: set BALENA_API_KEY to a balena API key", file=sys.stderr)
        return 2
    try:
        variables = parse_assignments(args.assignments)
    except ValueError as exc:
        print(f"ota.balena_fleet: {exc}", file=sys.stderr)
        return 2
    set_device_vars(token, args.device, variables)
    print(f"set {len(variables)} variable(s) on {args.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
