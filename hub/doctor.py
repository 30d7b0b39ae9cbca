"""`hub doctor`: every check a technician needs, one line each, ok / warn / fail.

Read-only: it never creates, migrates or repairs anything, so it is safe to run beside a running hub.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import stat
import time
import urllib.error
import urllib.request
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers.platform import detect_board, use_simulated
from hub import sysinfo
from hub.config import ConfigError, Settings, load_secrets, load_settings
from hub.store.database import DB_NAME, connect, quick_check
from hub.store.migrations import SCHEMA_VERSION, schema_version
from hub.store.store import StoreLimits, outbox_stats
from hub.web.credentials import CredentialFile, local_token

Level = Literal["ok", "warn", "fail"]

MIN_FREE_FAIL = 100 * 2**20
MIN_FREE_WARN = 1024 * 2**20


@dataclass(frozen=True)
class Check:
    level: Level
    name: str
    message: str

    def line(self) -> str:
        return f"{self.level:<5} {self.name:<16} {self.message}"


def run_checks(config_path: Path) -> list[Check]:
    checks: list[Check] = []
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        checks.append(Check("fail", "config", str(exc).replace("\n", "\n" + " " * 23)))
        checks.extend(_hardware(None))
        return checks
    checks.append(Check("ok", "config", f"{config_path} is valid (hub id {settings.hub.id})"))
    checks.append(_secrets(settings))
    checks.append(_technician(settings))
    checks.append(_data_dir(settings.hub.data_dir))
    checks.append(_store(settings))
    checks.append(_disk(settings.hub.data_dir))
    checks.extend(_hardware(settings))
    checks.append(_clock(settings))
    checks.append(_cloud(settings))
    checks.extend(_portal(settings))
    checks.extend(_camera_model(settings))
    checks.append(_updates(settings))
    checks.extend(_running_hub(settings))
    return checks


def _updates(settings: Settings) -> Check:
    """The update slots as the boot guard sees them (state file and `current` link), whether or not the hub runs:
    a trial that has not committed, or a release rolled back, is what a technician must know before anything."""
    from hub.updates.status import status

    ota = settings.ota
    if not ota.enabled:
        return Check("warn", "updates", "turned off (ota.enabled = false): this box gets no fixes")
    report = status(ota.root)
    if report["balena"]:
        return Check("ok", "updates", f"balenaOS: the supervisor installs releases (running {report['version']})")
    if not report["installed"]:
        return Check("warn", "updates", f"not installed under {ota.root} (a developer's tree): no updates")
    trial = report["trial"]
    if trial:
        return Check(
            "warn",
            "updates",
            f"slot {report['slot']} runs {report['version']} on trial ({trial.get('boots', 0)} start(s)); "
            f"slot {report['previous_slot']} ({report['previous_version']}) is the fallback",
        )
    if not ota.trusted_root.is_file():
        return Check("fail", "updates", f"no TUF root of trust at {ota.trusted_root}: updates cannot be verified")
    last = report["last_result"] or {}
    text = f"slot {report['slot']} runs {report['version']}"
    if last.get("result") == "rolled-back":
        return Check("warn", "updates", f"{text}; {last.get('failed_version')} was rolled back: {last.get('reason')}")
    if last.get("result") in ("rollback-impossible", "state-unreadable"):
        return Check("fail", "updates", f"{text}; last update: {last['result']} {last.get('reason') or ''}".strip())
    return Check("ok", "updates", text + (f"; last update: {last['result']} {last.get('version')}" if last else ""))


def _camera_model(settings: Settings) -> list[Check]:
    """The detector's model file on disk, with its pinned hash: without it the cameras run on motion alone."""
    if not settings.camera.cameras:
        return []
    from ml.model_files import MODELS_DIR, verified
    from ml.model_spec import BUILTIN

    detector = settings.camera.detector
    if detector.model == "custom" and detector.custom is not None:
        path = Path(detector.custom.file)
        path = path if path.is_absolute() else MODELS_DIR / path
        ok = path.is_file()
    else:
        path = MODELS_DIR / BUILTIN[detector.model].file
        ok = verified(path)
    if ok:
        return [Check("ok", "camera model", f"{path} present" + ("" if detector.model == "custom" else ", hash ok"))]
    return [Check("fail", "camera model", f"{path} missing or not the pinned file: run scripts/fetch-models")]


def _portal(settings: Settings) -> list[Check]:
    from hub.portal.doctor import portal_checks

    try:
        return [Check(level, name, message) for level, name, message in portal_checks(settings)]
    except Exception as exc:  # a doctor reports, it does not crash
        return [Check("fail", "portal", f"could not check: {exc}")]


def _technician(settings: Settings) -> Check:
    try:
        credential = CredentialFile(Path(settings.hub.data_dir)).load()
    except (RuntimeError, PermissionError) as exc:
        return Check("warn", "technician", str(exc))
    if credential is None:
        return Check(
            "warn", "technician", "no technician password: the first visitor of the page sets it (or `hub provision`)"
        )
    return Check("ok", "technician", f"password set for {credential.user!r}")


def _secrets(settings: Settings) -> Check:
    from hub.enroll import read_token, token_path

    path = settings.hub.secrets_file
    enrolled = token_path(Path(settings.hub.data_dir))
    if enrolled.exists():
        # `hub enroll` writes the token here (/etc is read-only to the service); it wins over the secrets file.
        mode = stat.S_IMODE(enrolled.stat().st_mode)
        if mode & 0o077:
            return Check("fail", "secrets", f"{enrolled} is readable by others ({mode:04o}); expected 0600")
        if read_token(Path(settings.hub.data_dir)) is None:
            return Check("warn", "secrets", f"{enrolled} is empty or unreadable by this user: enroll again")
        return Check("ok", "secrets", f"enrolled: the cloud token is in {enrolled} (0600)")
    if not path.exists():
        return Check("warn", "secrets", f"{path} not found: no cloud token yet (box not enrolled: `hub enroll CODE`)")
    try:
        secrets = load_secrets(path)
    except ConfigError as exc:
        return Check("fail", "secrets", str(exc))
    except PermissionError:
        return Check("warn", "secrets", f"{path} not readable by this user (run as the service user or root)")
    if not secrets.cloud_token:
        return Check("warn", "secrets", f"{path}: no cloud_token and no enrollment (run `hub enroll CODE`)")
    return Check("ok", "secrets", f"{path} is private (0600) and holds a cloud token")


def _data_dir(path: Path) -> Check:
    if not path.exists():
        return Check("warn", "data dir", f"{path} does not exist yet; `hub run` creates it")
    if not path.is_dir():
        return Check("fail", "data dir", f"{path} is not a directory")
    mode = path.stat().st_mode
    probe = path / f".doctor-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Check("fail", "data dir", f"{path} is not writable by uid {os.getuid()}: {exc.strerror}")
    if mode & stat.S_IWOTH:
        return Check("fail", "data dir", f"{path} is world-writable ({stat.filemode(mode)}); expected 0750")
    if mode & stat.S_IROTH:
        return Check("warn", "data dir", f"{path} is world-readable ({stat.filemode(mode)}); expected 0750")
    return Check("ok", "data dir", f"{path} writable, {stat.filemode(mode)}")


def _store(settings: Settings) -> Check:
    path = settings.hub.data_dir / DB_NAME
    if not path.exists():
        return Check("warn", "store", f"{path} not created yet")
    try:
        with contextlib.closing(connect(path, readonly=True)) as conn:
            problems = quick_check(conn)
            if problems:
                return Check("fail", "store", f"integrity check failed: {'; '.join(problems[:3])}")
            version = schema_version(conn)
            if version != SCHEMA_VERSION:
                return Check(
                    "warn",
                    "store",
                    f"schema version {version}, this release has {SCHEMA_VERSION} (migrates at start)",
                )
            stats = outbox_stats(conn, StoreLimits.from_settings(settings.store))
    except Exception as exc:
        return Check("fail", "store", f"cannot read {path}: {exc}")
    dropped = sum(stats.dropped.values())
    level: Level = "warn" if dropped else "ok"
    by_class = ", ".join(f"{k} {v}" for k, v in stats.pending_by_class.items() if v) or "empty"
    return Check(
        level,
        "store",
        f"integrity ok, schema {version}; outbox {stats.pending} pending ({by_class}), last seq {stats.last_seq}"
        + (f", {dropped} evicted when full" if dropped else ""),
    )


def _disk(path: Path) -> Check:
    d = sysinfo.disk(path)
    free_mb = d["free_bytes"] // 2**20
    share = d["free_bytes"] / d["total_bytes"] if d["total_bytes"] else 0
    text = f"{free_mb} MiB free of {d['total_bytes'] // 2**20} MiB ({share:.0%})"
    if d["free_bytes"] < MIN_FREE_FAIL:
        return Check("fail", "disk", text)
    if d["free_bytes"] < MIN_FREE_WARN or share < 0.10:
        return Check("warn", "disk", text)
    return Check("ok", "disk", text)


def _hardware(settings: Settings | None) -> list[Check]:
    board = detect_board()
    setting = settings.hub.hardware if settings else "auto"
    simulated = use_simulated(setting, board)
    if setting == "real" and not board.real_hardware:
        return [Check("fail", "hardware", f"hardware = 'real' but no Raspberry Pi or Jetson found ({board.model})")]
    if simulated:
        why = "hardware = 'simulated' in config" if setting == "simulated" else "no Raspberry Pi/Jetson detected"
        return [Check("warn", "hardware", f"simulated hardware ({why}); machine {board.machine}, {board.model}")]
    return [Check("ok", "hardware", f"{board.model} ({board.family}, {board.machine})")]


def _clock(settings: Settings) -> Check:
    try:
        zoneinfo.ZoneInfo(settings.hub.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return Check("fail", "clock", f"time zone {settings.hub.timezone!r} unknown (install tzdata)")
    year = time.gmtime().tm_year
    if year < 2025:
        return Check("warn", "clock", f"wall clock says {year}: not set yet (no RTC, no NTP sync)")
    return Check("ok", "clock", f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, schedules in {settings.hub.timezone}")


def _http_get(
    url: str,
    timeout: float,
    cafile: Path | None = None,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    context = context or ssl.create_default_context(cafile=str(cafile) if cafile else None)
    headers = {"User-Agent": "village-hub-doctor"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _cloud(settings: Settings) -> Check:
    url = settings.sync.cloud_url
    if url is None:
        return Check("warn", "cloud", "no sync.cloud_url configured: the box stays offline")
    from hub.enroll import TokenSource
    from hub.sync.transport import InsecureURLError, build_ssl_context, check_url, describe_error

    target = str(url).rstrip("/") + "/healthz"
    started = time.monotonic()
    try:
        check_url(settings.sync)  # the same TLS rules (CA bundle, pins, no clear text) as the running hub
        context = build_ssl_context(settings.sync)
        status, _ = _http_get(target, timeout=5.0, context=context)
    except InsecureURLError as exc:
        return Check("fail", "cloud", str(exc))
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):
            return Check("fail", "cloud", f"{target}: {describe_error(reason, settings.sync)}")
        return Check("fail", "cloud", f"{target} unreachable: {reason}")
    took = (time.monotonic() - started) * 1000
    if status != 200:
        return Check("fail", "cloud", f"{target} answered HTTP {status}")
    tls = ", TLS verified" + (" and pinned" if settings.sync.pin_sha256 else "") if target.startswith("https") else ""
    fallback = None
    with contextlib.suppress(ConfigError, OSError):
        fallback = load_secrets(settings.hub.secrets_file).cloud_token
    tokens = TokenSource(Path(settings.hub.data_dir), fallback)
    token = tokens()
    if token is None:
        return Check("warn", "cloud", f"{target} reachable ({took:.0f} ms{tls}); not enrolled: run `hub enroll CODE`")
    try:
        state, _ = _http_get(str(url).rstrip("/") + "/api/v1/ingest/state", timeout=5.0, token=token, context=context)
    except (OSError, urllib.error.URLError) as exc:
        return Check("fail", "cloud", f"{target} reachable, then not: {getattr(exc, 'reason', exc)}")
    origin = "enrolled token" if tokens.origin == "enrolled" else "token of the secrets file"
    if state == 401:
        return Check("fail", "cloud", f"reachable{tls}, but the cloud refuses this box's {origin}: `hub enroll CODE`")
    return Check("ok", "cloud", f"{target} reachable ({took:.0f} ms{tls}); {origin} accepted")


def _running_hub(settings: Settings) -> list[Check]:
    host = settings.management.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - mapping a wildcard bind to loopback
    url = f"http://{host}:{settings.management.port}/api/health"
    # /api/health needs a login, or the local token only the service user and root can read.
    token = local_token(Path(settings.hub.data_dir))
    try:
        status, body = _http_get(url, timeout=3.0, token=token)
        report: dict[str, Any] = json.loads(body)
    except (OSError, ValueError, urllib.error.URLError):
        return [Check("warn", "hub", f"not running (nothing answers at {url})")]
    if status == 401:
        return [
            Check(
                "warn", "hub", f"running, but {url} needs the local token: run `hub doctor` as root or the service user"
            )
        ]
    if status != 200:
        return [Check("fail", "hub", f"{url} answered HTTP {status}")]
    checks = [Check(_level(report["status"]), "hub", f"running {report['version']}, status {report['status']}")]
    previous = report.get("previous_run")
    if previous and not previous.get("clean"):
        what = "the hub crashed or was killed" if previous.get("same_boot") else "the box lost power or rebooted"
        checks.append(
            Check("warn", "last stop", f"not clean: {what} (run started {_when(previous.get('started_at'))})")
        )
    for name, h in report.get("services", {}).items():
        level: Level = "ok" if h["ok"] else ("fail" if h["state"] != "running" else "warn")
        text = h["state"] + (f", {h['restarts']} restarts" if h["restarts"] else "")
        if h["problems"]:
            text += ": " + "; ".join(h["problems"])
        elif h["last_error"] and not h["ok"]:
            text += f": {h['last_error']}"
        checks.append(Check(level, f"  {name}", text))
    return checks


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "at an unknown time"


def _level(status: str) -> Level:
    return {"ok": "ok", "degraded": "warn"}.get(status, "fail")  # type: ignore[return-value]
