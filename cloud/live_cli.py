"""`hub-cloud live-view` / `live-announce`: the reference operator's live sessions from the command line.

Kept apart from cloud/live_client.py so that `hub-cloud serve` does not load aiortc and its codecs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

LIVE_COMMANDS = ("live-view", "live-announce")


def add_commands(sub: Any) -> None:
    """The live-* sub-commands of hub-cloud (cloud/cli.py)."""
    for name, help_text in (("live-view", "watch a hub's camera live"), ("live-announce", "speak a file live")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("hub_id")
        cmd.add_argument("camera" if name == "live-view" else "file")
        cmd.add_argument("--url", default="http://127.0.0.1:8800", help="the cloud's base URL")
        cmd.add_argument("--admin-token", required=False, help="admin bearer token (default $HUB_CLOUD_ADMIN_TOKEN)")
        cmd.add_argument("--ice", action="append", default=[], help="a STUN/TURN URL (repeatable)")
        cmd.add_argument("--seconds", type=float, default=10.0 if name == "live-view" else None)
        if name == "live-view":
            cmd.add_argument("--width", type=int)
            cmd.add_argument("--height", type=int)
            cmd.add_argument("--fps", type=float)
        else:
            cmd.add_argument("--zones", nargs="*", help="zones to speak in (default: all)")


def run_command(args: Any) -> int:
    token = args.admin_token or os.environ.get("HUB_CLOUD_ADMIN_TOKEN")
    if not token:
        print("hub-cloud: give --admin-token or set HUB_CLOUD_ADMIN_TOKEN", file=sys.stderr)
        return 2
    from cloud.live_client import CloudSignal, LiveError, live_announce, live_view

    signal = CloudSignal(args.url, token, args.hub_id)
    ice = [{"urls": [u]} for u in args.ice] or None
    try:
        if args.command == "live-view":
            video = {k: getattr(args, k) for k in ("width", "height", "fps") if getattr(args, k) is not None}
            stats = asyncio.run(live_view(signal, args.camera, args.seconds, ice, **video))
            first = stats.first_after_s
            print(
                f"frames {len(stats.arrivals)}, {stats.fps(skip_s=1.0):.1f} frames/s, size {stats.size}, "
                f"first after {first:.2f} s"
                if first is not None
                else "no frame arrived"
            )
            return 0 if stats.arrivals else 1
        result = asyncio.run(live_announce(signal, args.file, args.zones, args.seconds))
        print(f"live announcement {result.get('session')} done")
        return 0
    except LiveError as exc:
        print(f"hub-cloud: {exc}", file=sys.stderr)
        return 1
