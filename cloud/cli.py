"""`hub-cloud`: run the reference commune cloud, register hubs."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

from aiohttp import web

from cloud.server import build_app
from cloud.store import CloudStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub-cloud", description="Reference commune cloud for Village Hub")
    parser.add_argument("--db", type=Path, default=Path("cloud.sqlite3"), help="SQLite file of the cloud")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8800)
    serve.add_argument(
        "--admin-token",
        default=os.environ.get("HUB_CLOUD_ADMIN_TOKEN"),
        help="bearer token for the admin API and dashboard (default: $HUB_CLOUD_ADMIN_TOKEN, else random)",
    )
    add = sub.add_parser("add-hub", help="register a hub and print its token")
    add.add_argument("hub_id")
    add.add_argument("--token", help="use this token instead of a random one")
    args = parser.parse_args(argv)

    if args.command == "add-hub":
        store = CloudStore(args.db)
        print(store.add_hub(args.hub_id, args.token))
        store.close()
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    admin = args.admin_token or secrets.token_urlsafe(24)
    if not args.admin_token:
        print(f"hub-cloud: admin token {admin}", file=sys.stderr)
    app = build_app(args.db, admin)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=lambda _: print(f"hub-cloud: serving on http://{args.host}:{args.port}/", flush=True),
        shutdown_timeout=3,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
