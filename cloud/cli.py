"""`hub-cloud`: run the reference commune cloud, register hubs."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

from aiohttp import web

from cloud import live_cli
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
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve HTTPS (with --tls-key)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    serve.add_argument("--ota-repo", type=Path, help="serve this TUF repository of hub releases under /ota/")
    serve.add_argument(
        "--ota-keys", type=Path, help="key dir whose online/timestamp.pem re-signs the OTA timestamp before it expires"
    )
    add = sub.add_parser("add-hub", help="register a hub and print its token")
    add.add_argument("hub_id")
    add.add_argument("--token", help="use this token instead of a random one")
    enrol = sub.add_parser("add-enrollment", help="issue a one-time enrollment code for a hub and print it")
    enrol.add_argument("hub_id")
    enrol.add_argument("--ttl-days", type=float, default=7.0, help="the code expires after this (default 7 days)")
    live_cli.add_commands(sub)
    args = parser.parse_args(argv)

    if args.command in live_cli.LIVE_COMMANDS:
        return live_cli.run_command(args)

    if args.command == "add-hub":
        store = CloudStore(args.db)
        print(store.add_hub(args.hub_id, args.token))
        store.close()
        return 0
    if args.command == "add-enrollment":
        from cloud.command_store import CommandStore

        commands = CommandStore(args.db)
        print(commands.add_enrollment(args.hub_id, args.ttl_days * 86_400).code)
        commands.close()
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    admin = args.admin_token or secrets.token_urlsafe(24)
    if not args.admin_token:
        print(f"hub-cloud: admin token {admin}", file=sys.stderr)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    ssl_context = None
    if args.tls_cert is not None:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    scheme = "https" if ssl_context else "http"
    app = build_app(args.db, admin, ota_repo=args.ota_repo, ota_keys=args.ota_keys)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        ssl_context=ssl_context,
        print=lambda _: print(f"hub-cloud: serving on {scheme}://{args.host}:{args.port}/", flush=True),
        shutdown_timeout=3,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
