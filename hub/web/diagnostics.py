"""The diagnostics bundle: one tar.gz with what a remote engineer needs to understand a box, and nothing a
villager's privacy forbids.

In: the health report, recent log lines, the configuration with secrets redacted, store statistics, versions,
system facts (disk, memory, clock, network interfaces), the technician audit log. Out, always: the secrets file,
the technician credential, the local API token, the store itself (it holds the village's records), camera
snapshots, media, and Wi-Fi clients' addresses. Everything passes through one redaction function.
"""

from __future__ import annotations

import io
import json
import platform
import re
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hub import __version__, sysinfo
from hub.logbuffer import LogBuffer

REDACTED = "**REDACTED**"
SECRET_KEY = re.compile(r"(token|password|passphrase|secret|hash|key|enrollment|credential|psk|cookie)", re.I)
MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b", re.I)
BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
PACKAGES = (
    "village-hub",
    "aiohttp",
    "pydantic",
    "gpiozero",
    "lgpio",
    "pyserial",
    "pymodbus",
    "av",
    "numpy",
    "astral",
    "Jinja2",
    "babel",
)


def _redact_url(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return value
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Secret-looking keys blanked, credentials in URLs removed, known secret values and MAC addresses (Wi-Fi
    clients, phones) masked wherever they appear in text."""
    known = [s for s in secrets if s and len(s) >= 6]

    def text(s: str) -> str:
        for secret in known:
            s = s.replace(secret, REDACTED)
        s = BEARER.sub(r"\1" + REDACTED, s)
        s = MAC.sub("xx:xx:xx:xx:xx:xx", s)
        return _redact_url(s) if "://" in s else s

    def walk(v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            return {
                k: (REDACTED if SECRET_KEY.search(str(k)) and sub is not None else walk(sub, k)) for k, sub in v.items()
            }
        if isinstance(v, list | tuple):
            return [walk(item, key) for item in v]
        if isinstance(v, str):
            return text(v)
        return v

    return walk(value)


def versions() -> dict[str, Any]:
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    os_release: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, val = line.partition("=")
            if key in ("PRETTY_NAME", "VERSION_ID", "ID"):
                os_release[key] = val.strip('"')
    except OSError:
        pass
    return {
        "hub": __version__,
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "os_release": os_release,
        "packages": packages,
    }


def _config(config_path: Path) -> Any:
    try:
        return tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {"error": f"{config_path}: {exc}"}


def build_bundle(
    *,
    health: dict[str, Any],
    logs: LogBuffer,
    config_path: Path,
    store_stats: dict[str, Any],
    audit: list[dict[str, Any]],
    data_dir: Path,
    secrets: Iterable[str],
) -> bytes:
    secret_values = list(secrets)
    created = time.time()
    members: dict[str, Any] = {
        "health.json": health,
        "config.json": {"path": str(config_path), "settings": _config(config_path)},
        "store.json": store_stats,
        "versions.json": versions(),
        "system.json": {
            "vitals": sysinfo.vitals(data_dir),
            "time": sysinfo.time_sync(),
            "network": sysinfo.network_interfaces(),
        },
        "audit.json": audit,
    }
    log_text = "\n".join(
        f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(line.at))}Z {line.level} {line.logger}: {line.message}"
        for line in logs.recent(limit=5000)
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        prefix = f"village-hub-diagnostics-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(created))}"
        files = {
            name: json.dumps(redact(value, secret_values), ensure_ascii=False, indent=1)
            for name, value in members.items()
        }
        files["logs.txt"] = str(redact(log_text, secret_values))
        files["README.txt"] = (
            "Village Hub diagnostics bundle.\n"
            "Secrets (tokens, passwords, keys), camera images, media, Wi-Fi clients' addresses and the store itself "
            "are not included.\n"
        )
        for name, content in files.items():
            data = content.encode("utf-8")
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            info.mtime = int(created)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
