"""The `hub` command: run the service, check config, diagnose the box, look at the outbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from hub import __version__

if TYPE_CHECKING:
    from hub.config import Settings

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Village Hub — smart-village box service")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $VILLAGE_HUB_CONFIG or /etc/village-hub/hub.toml)",
    )
    parser.add_argument("--version", action="version", version=f"village-hub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="run the service (what systemd starts)")

    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = config_sub.add_parser("check", help="validate a config file; non-zero exit with what is wrong")
    check.add_argument("path", type=Path, nargs="?", help="file to check (default: --config)")

    doctor = sub.add_parser("doctor", help="check config, store, disk, hardware, cloud and the running hub")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    outbox = sub.add_parser("outbox", help="outbox commands")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True, metavar="SUBCOMMAND")
    stats = outbox_sub.add_parser("stats", help="pending records per class, sequence numbers, evictions")
    stats.add_argument("--json", action="store_true", help="machine-readable output")

    provision = sub.add_parser("provision", help="set the technician page's user and password (asks, or reads stdin)")
    provision.add_argument("--user", default="technician", help="technician user name (default: technician)")
    provision.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    enroll = sub.add_parser("enroll", help="enroll this box at the commune cloud with its one-time code")
    enroll.add_argument("code", help="the one-time code from the commune (e.g. FGCA-46KC-BGX9-T96D)")
    ota = sub.add_parser("ota", help="over-the-air updates")
    ota_sub = ota.add_subparsers(dest="ota_command", required=True, metavar="SUBCOMMAND")
    ota_status = ota_sub.add_parser("status", help="current and previous version, slot, trial, last result")
    ota_status.add_argument("--json", action="store_true", help="machine-readable output")
    health = sub.add_parser("healthcheck", help="exit 0 if the running hub's /healthz answers 200 (Docker)")
    health.add_argument("--timeout", type=float, default=5.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hub.config import default_config_path

    config_path: Path = args.config or default_config_path()
    if args.command == "run":
        return cmd_run(config_path)
    if args.command == "config":
        return cmd_config_check(args.path or config_path)
    if args.command == "doctor":
        return cmd_doctor(config_path, as_json=args.json)
    if args.command == "outbox":
        return cmd_outbox_stats(config_path, as_json=args.json)
    if args.command == "provision":
        return cmd_provision(config_path, args.user, args.password_stdin)
    if args.command == "healthcheck":
        return cmd_healthcheck(config_path, args.timeout)
    if args.command == "enroll":
        return cmd_enroll(config_path, args.code)
    if args.command == "ota":
        return cmd_ota_status(config_path, as_json=args.json)
    raise AssertionError(args.command)


def _setup_logging(level: str) -> None:
    # Under systemd the journal adds its own timestamps.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _settings(config_path: Path) -> Settings:
    """The configuration, or exit with EXIT_CONFIG after printing what is wrong (it names the file and key)."""
    from hub.config import ConfigError, load_settings

    try:
        return load_settings(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_run(config_path: Path) -> int:
    from hub.app import Hub
    from hub.config import ConfigError, load_secrets, load_settings

    try:
        settings = load_settings(config_path)
        secrets = load_secrets(settings.hub.secrets_file)
    except ConfigError as exc:
        print(f"hub: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(settings.hub.log_level)
    # Store, media and logs hold village data: nothing the hub creates is readable by other users.
    os.umask(0o027)
    hub = Hub(settings, secrets, config_path)
    code = asyncio.run(hub.run())
    if hub.restart_requested and not os.environ.get("NOTIFY_SOCKET"):
        # Under systemd, Restart=always starts a new process; elsewhere (a container, the demo) start again here.
        from hub.updates.status import restart_command

        command = restart_command(settings.ota.root, sys.argv[1:])  # from an update slot: guard, then `current`
        os.execv(command[0], command)  # noqa: S606 - our own argv
    return code


def cmd_provision(config_path: Path, user: str, from_stdin: bool) -> int:
    """Set the technician password on the box (before shipping, or when it is forgotten: needs root/the service
    user, which is the point: physical or SSH access to the box)."""
    import getpass

    from hub.web.credentials import CredentialFile, PasswordRejected

    settings = _settings(config_path)
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("New technician password: ")
        if getpass.getpass("Again: ") != password:
            print("hub provision: the two passwords differ", file=sys.stderr)
            return EXIT_FAIL
    data_dir = Path(settings.hub.data_dir)
    created = not data_dir.exists()
    try:
        CredentialFile(data_dir).set(user, password, settings.hub.id)
    except PasswordRejected as exc:
        print(f"hub provision: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:
        print(f"hub provision: cannot write to {data_dir}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    path = data_dir / "technician.json"
    from hub.ownership import hand_over

    hand_over(data_dir, path, created=created)  # run as root on the box: the service must still read it
    print(f"technician password set for {user!r} in {path}; a running hub uses it at the next login")
    return EXIT_OK


def cmd_enroll(config_path: Path, code: str) -> int:
    from hub.enroll import EnrollError, enroll

    settings = _settings(config_path)
    try:
        done = asyncio.run(enroll(settings, code))
    except EnrollError as exc:
        print(f"hub enroll: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:
        print(f"hub enroll: cannot write the token in {settings.hub.data_dir}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if os.geteuid() == 0:
        # Run as root on the box: the token must stay readable by the service, which owns the data directory.
        owner = Path(settings.hub.data_dir).stat()
        os.chown(done.token_file, owner.st_uid, owner.st_gid)
    print(f"enrolled {done.hub_id} at {done.cloud_url}; token in {done.token_file} (a running hub uses it at once)")
    return EXIT_OK


def cmd_config_check(path: Path) -> int:
    from hub.config import ConfigError, load_secrets, load_settings

    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    try:
        load_secrets(settings.hub.secrets_file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except PermissionError:
        pass  # the service user can read it; whoever runs the check may not
    print(f"{path}: ok (hub id {settings.hub.id})")
    return EXIT_OK


def cmd_doctor(config_path: Path, *, as_json: bool) -> int:
    from hub.doctor import run_checks

    checks = run_checks(config_path)
    if as_json:
        print(json.dumps([c.__dict__ for c in checks], ensure_ascii=False, indent=1))
    else:
        for check in checks:
            print(check.line())
    return EXIT_FAIL if any(c.level == "fail" for c in checks) else EXIT_OK


def cmd_outbox_stats(config_path: Path, *, as_json: bool) -> int:
    from hub.store.database import DB_NAME, connect
    from hub.store.store import StoreLimits, outbox_stats

    settings = _settings(config_path)
    path = settings.hub.data_dir / DB_NAME
    if not path.exists():
        print(f"hub: no store at {path} yet", file=sys.stderr)
        return EXIT_FAIL
    with contextlib.closing(connect(path, readonly=True)) as conn:
        stats = outbox_stats(conn, StoreLimits.from_settings(settings.store))
    if as_json:
        print(json.dumps(stats.as_dict(), indent=1))
        return EXIT_OK
    age = ""
    if stats.oldest_pending_at is not None:
        age = f" (oldest {(time.time() - stats.oldest_pending_at) / 3600:.1f} h old)"
    print(f"pending     {stats.pending} records, {stats.pending_bytes / 2**20:.1f} MiB{age}")
    for cls, n in stats.pending_by_class.items():
        print(f"  {cls:<10}{n:>10}   dropped when full: {stats.dropped[cls]}")
    print(f"last seq    {stats.last_seq}")
    print(f"acked seq   {stats.acked_seq} (delivered {stats.delivered})")
    print(f"cap         {stats.max_records} records, {stats.max_bytes // 2**20} MiB")
    return EXIT_OK


def cmd_ota_status(config_path: Path, *, as_json: bool) -> int:
    from hub.updates.status import render, status

    settings = _settings(config_path)
    info = status(settings.ota.root)
    print(json.dumps(info, ensure_ascii=False, indent=1) if as_json else render(info))
    return EXIT_OK


def cmd_healthcheck(config_path: Path, timeout: float) -> int:
    settings = _settings(config_path)
    host = settings.management.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - wildcard bind answers on loopback
    url = f"http://{host}:{settings.management.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            print(response.read().decode().strip())
            return EXIT_OK
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return EXIT_FAIL
