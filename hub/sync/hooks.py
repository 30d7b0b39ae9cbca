"""What the command inbox needs from the hub beyond the bus: the diagnostics bundle (built exactly as the technician
page builds it, through the same redaction), the install wizard's checks for a settings patch, and a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from hub.config.settings import Secrets, Settings
from hub.logbuffer import LogBuffer
from hub.store import Store
from hub.sync.commands import Hooks


def hub_hooks(
    *,
    settings: Settings,
    secrets: Secrets,
    store: Store,
    health: Callable[[], dict[str, Any]],
    logs: LogBuffer,
    config_path: Path,
    request_restart: Callable[[str], None] | None,
    relay_names: Collection[str],
    token: Callable[[], str | None],
) -> Hooks:
    async def bundle() -> bytes:
        from hub.web import audit, diagnostics

        hidden = [secrets.cloud_token or "", secrets.technician_password_hash or "", token() or ""]
        data: bytes = await asyncio.to_thread(
            diagnostics.build_bundle,
            health=health(),
            logs=logs,
            config_path=config_path,
            store_stats={"outbox": store.stats().as_dict(), "counters": store.counters()},
            audit=audit.recent(store, 500),
            data_dir=Path(settings.hub.data_dir),
            secrets=[s for s in hidden if s],
        )
        return data

    def validate_site(merged: dict[str, Any]) -> dict[str, Any]:
        from hub.site import SiteSettings

        site: dict[str, Any] = SiteSettings.model_validate(merged).model_dump(mode="json")
        return site

    def validate_zones(mapping: dict[str, str]) -> dict[str, str]:
        from hub.site import apply_zones

        problems = [
            f"{zone}: relay {relay!r} does not exist" for zone, relay in mapping.items() if relay not in relay_names
        ]
        if len(set(mapping.values())) != len(mapping):
            problems.append("two zones cannot share one relay")
        if not problems and apply_zones(settings, mapping).broadcast.zones != mapping:
            problems.append("this wiring does not fit the programmes in hub.toml")
        if problems:
            raise ValueError("; ".join(problems))
        return mapping

    return Hooks(
        diagnostics_bundle=bundle,
        request_restart=request_restart,
        validate_site=validate_site,
        validate_zones=validate_zones,
    )
