"""A technician-page context over a real store in a temporary directory, for tests of the web layer in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.bus import EventBus
from hub.config.settings import Secrets, Settings
from hub.logbuffer import LogBuffer
from hub.store import Store
from hub.web.context import HealthProvider, WebContext


def make_context(
    tmp_path: Path,
    health: HealthProvider,
    bus: EventBus | None = None,
    store: Store | None = None,
    **settings: Any,
) -> WebContext:
    data_dir = tmp_path / "data"
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\nid = "thon-web"\ndata_dir = "{data_dir}"\n', encoding="utf-8")
    return WebContext(
        settings=Settings.model_validate({"hub": {"id": "thon-web", "data_dir": str(data_dir)}, **settings}),
        secrets=Secrets(),
        store=store or Store.open(data_dir),
        bus=bus or EventBus(),
        health=health,
        config_path=config,
        logs=LogBuffer(),
    )


def service_report(details: dict[str, Any], problems: list[str] | None = None) -> dict[str, Any]:
    """One service's entry in /api/health, as the supervisor reports a running one."""
    return {
        "ok": not problems,
        "state": "running",
        "critical": False,
        "problems": list(problems or []),
        "restarts": 0,
        "last_error": None,
        "last_error_at": None,
        "details": details,
    }


def health_report(services: dict[str, Any] | None = None, version: str = "test") -> dict[str, Any]:
    """A whole /api/health answer around the given services (status "degraded" when one has a problem)."""
    services = services or {}
    problems = [p for s in services.values() for p in s.get("problems", [])]
    return {
        "status": "degraded" if problems else "ok",
        "problems": [],
        "services": services,
        "version": version,
        "uptime_s": 1.0,
        "hardware": {"simulated": True, "board": "generic", "model": None, "machine": "x86_64"},
        "previous_run": None,
        "outbox": None,
    }
