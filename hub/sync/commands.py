"""What the cloud may ask of the hub: an explicit allowlist of command kinds, each with its arguments checked (the
error names the field) before anything happens, then carried out through the services' own bus commands — the
same doors the technician page uses, so the same rules (zones, quiet hours, priorities, limits) apply.

Kinds (docs/protocol.md, "Command inbox"): broadcast.schedule.replace, broadcast.announce, broadcast.emergency,
broadcast.stop_all, lighting.override, lighting.cancel_override, irrigation.run, settings.patch,
diagnostics.request, live.start, live.stop, ota.check_now, ota.install_now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from xml.etree import ElementTree

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.bus import CommandError, EventBus, NoHandlerError
from hub.store import Store, Transaction
from hub.sync.media_fetch import MediaError, MediaFetcher, MediaRef, file_chunks
from hub.sync.transport import CloudTransport, describe_error

log = logging.getLogger(__name__)

WHO = "cloud"
MEDIA_STATE_KEY = "commands.media"  # {sha256: media id in the broadcast library}: a file is fetched once
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
HANDLER_WAIT_S = 15.0


class Rejected(Exception):
    """The command was refused: bad arguments (the message names the field) or the service said no."""


class Failed(Exception):
    """The command could not be carried out (nothing serves it, a download failed, a timeout)."""


@dataclass
class Outcome:
    result: dict[str, Any]
    # Run inside the transaction that records the result (a settings overlay lands with its "applied").
    in_transaction: Callable[[Transaction], None] | None = None
    # Run after the result is recorded and reported (a restart that applies a settings patch).
    after: Callable[[], None] | None = None


@dataclass
class Hooks:
    """What the hub gives the dispatcher beyond the bus: building the diagnostics bundle, restarting."""

    diagnostics_bundle: Callable[[], Awaitable[bytes]] | None = None
    request_restart: Callable[[str], None] | None = None
    validate_site: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    validate_zones: Callable[[dict[str, str]], dict[str, str]] | None = None


# ---- arguments --------------------------------------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Text = Annotated[str, Field(min_length=1, max_length=4000)]
Zones = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=32)]


class MediaArg(_Args):
    url: str = Field(min_length=1, max_length=2000)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    size: int = Field(ge=1)
    name: str = Field(default="", max_length=200)


class AnnounceArgs(_Args):
    text: Text | None = None
    media: MediaArg | None = None
    zones: Zones | None = None
    level: Literal["normal", "priority", "emergency"] | None = None
    volume: int | None = Field(default=None, ge=0, le=100)
    title: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_source(self) -> AnnounceArgs:
        if (self.text is None) == (self.media is None):
            raise ValueError("give either 'text' (read aloud) or 'media' (an audio file), not both or neither")
        return self


class EmergencyArgs(_Args):
    cap_xml: str | None = Field(default=None, min_length=1, max_length=1_000_000)
    event: str | None = Field(default=None, min_length=1, max_length=200)
    severity: Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"] | None = None
    urgency: Literal["Immediate", "Expected", "Future", "Past", "Unknown"] = "Immediate"
    certainty: Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"] = "Observed"
    category: str = Field(default="Safety", max_length=20)
    area: str | None = Field(default=None, min_length=1, max_length=500)
    expires: dt.datetime | None = None
    headline: str | None = Field(default=None, max_length=200)
    text: Text | None = None
    media: MediaArg | None = None
    zones: Zones | None = None
    language: str = Field(default="vi-VN", max_length=20)
    identifier: str | None = Field(default=None, min_length=1, max_length=200)
    sender: str = Field(default="cloud", min_length=1, max_length=200)

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)  # expires arrives as an ISO string

    @model_validator(mode="after")
    def _cap_or_fields(self) -> EmergencyArgs:
        if self.cap_xml is not None:
            if any(v is not None for v in (self.event, self.severity, self.area, self.text, self.media)):
                raise ValueError("give either 'cap_xml' or the CAP fields (event, severity, area, ...), not both")
            return self
        missing = [n for n in ("event", "severity", "area", "expires") if getattr(self, n) is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (or give 'cap_xml')")
        if self.expires is not None and self.expires.tzinfo is None:
            raise ValueError("expires: needs a UTC offset, e.g. 2026-11-24T18:00:00+07:00")
        if (self.text is None) == (self.media is None):
            raise ValueError("give either 'text' (read aloud) or 'media' (an audio file)")
        return self


class ScheduleReplaceArgs(_Args):
    programmes: list[dict[str, Any]] = Field(max_length=200)
    schedules: list[dict[str, Any]] = Field(max_length=500)


class StopAllArgs(_Args):
    reason: str = Field(default="", max_length=200)


class OverrideArgs(_Args):
    circuit: str = Field(min_length=1, max_length=64)
    state: Literal["on", "off"] | bool
    until: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=200)


class CancelOverrideArgs(_Args):
    circuit: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=200)


class IrrigationArgs(_Args):
    seconds: int = Field(ge=1, le=86_400)


class SettingsPatchArgs(_Args):
    site: dict[str, Any] | None = None
    zones: dict[str, str] | None = None

    @model_validator(mode="after")
    def _something(self) -> SettingsPatchArgs:
        if self.site is None and self.zones is None:
            raise ValueError("give 'site' and/or 'zones'")
        return self


class DiagnosticsArgs(_Args):
    pass


class OtaArgs(_Args):
    """ota.check_now / ota.install_now: "now" skips the maintenance window, never a broadcast (the update service
    still waits for one that plays or is due)."""


class PassThroughArgs(BaseModel):
    """live.start / live.stop: checked by the live service itself (helper D's), which answers with the result."""

    model_config = ConfigDict(extra="allow", frozen=True)


ARGS: dict[str, type[BaseModel]] = {
    "broadcast.schedule.replace": ScheduleReplaceArgs,
    "broadcast.announce": AnnounceArgs,
    "broadcast.emergency": EmergencyArgs,
    "broadcast.stop_all": StopAllArgs,
    "lighting.override": OverrideArgs,
    "lighting.cancel_override": CancelOverrideArgs,
    "irrigation.run": IrrigationArgs,
    "settings.patch": SettingsPatchArgs,
    "diagnostics.request": DiagnosticsArgs,
    "live.start": PassThroughArgs,
    "live.stop": PassThroughArgs,
    "ota.check_now": OtaArgs,
    "ota.install_now": OtaArgs,
}
KINDS = tuple(ARGS)


def _where(loc: tuple[Any, ...]) -> str:
    out = "args"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate(kind: Any, args: Any) -> BaseModel:
    """The parsed arguments, or Rejected naming the field."""
    if not isinstance(kind, str) or kind not in ARGS:
        raise Rejected(f"kind: {kind!r} is not a command this hub takes ({', '.join(KINDS)})")
    if not isinstance(args, dict):
        raise Rejected("args: expected an object")
    try:
        return ARGS[kind].model_validate(args)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{_where(tuple(error['loc']))}: {message}")
        raise Rejected("; ".join(problems)) from None


# ---- carrying out -----------------------------------------------------------------------------------------------


def build_cap(command_id: int, hub_id: str, args: EmergencyArgs, now: dt.datetime) -> str:
    """A CAP 1.2 <alert> from the command's fields, so the cloud's alert goes through the same CAP path (emergency
    level for Extreme/Severe or Immediate, expiry, Update/Cancel bookkeeping) as one sent as XML."""
    el = ElementTree.Element("alert", xmlns=CAP_NS)

    def sub(parent: ElementTree.Element, name: str, text: str) -> ElementTree.Element:
        child = ElementTree.SubElement(parent, name)
        child.text = text
        return child

    sub(el, "identifier", args.identifier or f"{hub_id}-command-{command_id}")
    sub(el, "sender", args.sender)
    sub(el, "sent", now.replace(microsecond=0).isoformat())
    sub(el, "status", "Actual")
    sub(el, "msgType", "Alert")
    sub(el, "scope", "Public")
    info = ElementTree.SubElement(el, "info")
    sub(info, "language", args.language)
    sub(info, "category", args.category)
    sub(info, "event", args.event or "")
    sub(info, "urgency", args.urgency)
    sub(info, "severity", args.severity or "Unknown")
    sub(info, "certainty", args.certainty)
    assert args.expires is not None
    sub(info, "expires", args.expires.replace(microsecond=0).isoformat())
    if args.headline:
        sub(info, "headline", args.headline)
    if args.text:
        sub(info, "description", args.text)
    area = ElementTree.SubElement(info, "area")
    sub(area, "areaDesc", args.area or "")
    return ElementTree.tostring(el, encoding="unicode")


class Dispatcher:
    def __init__(
        self,
        bus: EventBus,
        store: Store,
        hub_id: str,
        transport: CloudTransport,
        fetcher: MediaFetcher,
        hooks: Hooks,
        timeout_s: float = 60.0,
    ) -> None:
        self.bus = bus
        self.store = store
        self.hub_id = hub_id
        self.transport = transport
        self.fetcher = fetcher
        self.hooks = hooks
        self.timeout_s = timeout_s
        self.handler_wait_s = HANDLER_WAIT_S

    async def call(self, command: str, **data: Any) -> dict[str, Any]:
        # Right after a start (or a service's restart) its commands are not served yet: give it a moment.
        for _ in range(round(self.handler_wait_s / 0.1)):
            if self.bus.serves(command):
                break
            await asyncio.sleep(0.1)
        try:
            return await self.bus.call(command, timeout=self.timeout_s, **data)
        except NoHandlerError as exc:
            raise Failed(str(exc)) from None
        except CommandError as exc:
            raise Rejected(str(exc)) from None
        except TypeError as exc:  # an argument the service does not take
            raise Rejected(f"args: {exc}") from None

    async def apply(self, command_id: int, kind: str, args: BaseModel) -> Outcome:
        if isinstance(args, AnnounceArgs):
            return Outcome(await self._announce(args))
        if isinstance(args, EmergencyArgs):
            return Outcome(await self._emergency(command_id, args))
        if isinstance(args, ScheduleReplaceArgs):
            return Outcome(await self._replace_schedules(args))
        if isinstance(args, StopAllArgs):
            return Outcome(await self.call("broadcast.stop_all", who=WHO, reason=args.reason or "cloud command"))
        if isinstance(args, OverrideArgs):
            on = args.state if isinstance(args.state, bool) else args.state == "on"
            return Outcome(
                await self.call(
                    "lighting.override", circuit=args.circuit, on=on, until=args.until, who=WHO, reason=args.reason
                )
            )
        if isinstance(args, CancelOverrideArgs):
            return Outcome(
                await self.call("lighting.cancel_override", circuit=args.circuit, who=WHO, reason=args.reason)
            )
        if isinstance(args, IrrigationArgs):
            return Outcome(await self.call("irrigation.run", seconds=args.seconds, who=WHO))
        if isinstance(args, SettingsPatchArgs):
            return self._settings_patch(args)
        if isinstance(args, DiagnosticsArgs):
            return Outcome(await self._diagnostics(command_id))
        if isinstance(args, OtaArgs):
            return Outcome(await self.call(kind, who=WHO))
        if kind in ("live.start", "live.stop"):
            # "timeout" is bus.call's own keyword; the live service's arguments never need it.
            data = {k: v for k, v in args.model_dump().items() if k != "timeout"}
            return Outcome(await self.call(kind, **{"who": WHO, **data}))
        raise Rejected(f"kind: {kind!r} has no handler")  # unreachable while ARGS and this list agree

    # -- loudspeakers ---------------------------------------------------------------------------------------------

    async def _media_item(self, media: MediaArg) -> dict[str, Any]:
        """Fetch (or find) the file, hand it to the media library (which checks and normalises it like an upload),
        and answer the programme item that plays it."""
        try:
            ref = MediaRef.parse(media.model_dump(), "args.media")
        except ValueError as exc:
            raise Rejected(str(exc)) from None
        known: dict[str, str] = dict(self.store.get_state(MEDIA_STATE_KEY, {}) or {})
        media_id = known.get(ref.sha256)
        if media_id is not None:
            listing = await self.call("broadcast.media_list")
            if not any(m.get("id") == media_id for m in listing.get("media", [])):
                media_id = None  # removed from the library since: fetch it again
        if media_id is None:
            try:
                path, _stats = await self.fetcher.fetch(ref)
            except MediaError as exc:
                raise Failed(str(exc)) from None
            info = await self.call(
                "broadcast.media_add", filename=ref.name, chunks=file_chunks(path), declared_size=ref.size
            )
            media_id = str(info["id"])
            known[ref.sha256] = media_id

            def remember(tx: Transaction) -> None:
                tx.set_state(MEDIA_STATE_KEY, known)

            await self.store.write(remember)
            self.fetcher.forget(ref)  # the library holds its own normalised copy
        return {"kind": "audio", "media_id": media_id, "title": ref.name}

    async def _announce(self, args: AnnounceArgs) -> dict[str, Any]:
        if args.media is not None:
            items = [await self._media_item(args.media)]
        else:
            items = [{"kind": "text", "text": args.text}]
        data: dict[str, Any] = {"items": items, "who": WHO}
        for name in ("zones", "level", "volume", "title"):
            value = getattr(args, name)
            if value is not None:
                data[name] = value
        if args.media is not None and args.title is None:
            data["title"] = items[0]["title"]  # the file's name, as the commune named it
        return await self.call("broadcast.play_now", **data)

    async def _emergency(self, command_id: int, args: EmergencyArgs) -> dict[str, Any]:
        if args.cap_xml is not None:
            return await self.call("broadcast.cap", xml=args.cap_xml)
        if args.media is not None:
            assert args.expires is not None
            if args.expires <= dt.datetime.now(dt.UTC):
                raise Rejected(f"args.expires: the alert expired at {args.expires.isoformat()}; not played")
            item = await self._media_item(args.media)
            data: dict[str, Any] = {"items": [item], "level": "emergency", "who": WHO, "title": args.event}
            if args.zones:
                data["zones"] = args.zones
            return await self.call("broadcast.play_now", **data)
        xml = build_cap(command_id, self.hub_id, args, dt.datetime.now(dt.UTC))
        return await self.call("broadcast.cap", xml=xml)

    async def _replace_schedules(self, args: ScheduleReplaceArgs) -> dict[str, Any]:
        """Make the cloud-managed timetable exactly the given set: everything is checked first (a bad entry rejects
        the whole command before anything changes), then upserted, then what is not in the set is deleted.
        Programmes and schedules from hub.toml are the box's own and are left alone."""
        from hub.broadcast.model import ModelError, parse_programme, parse_schedule

        programmes, schedules = [], []
        for i, raw in enumerate(args.programmes):
            try:
                programmes.append(parse_programme(raw))
            except (ModelError, ValueError, TypeError) as exc:
                raise Rejected(f"args.programmes[{i}]: {exc}") from None
        for i, raw in enumerate(args.schedules):
            try:
                schedules.append(parse_schedule(raw))
            except (ModelError, ValueError, TypeError) as exc:
                raise Rejected(f"args.schedules[{i}]: {exc}") from None
        for what, ids in (("programmes", [p.id for p in programmes]), ("schedules", [s.id for s in schedules])):
            if len(set(ids)) != len(ids):
                raise Rejected(f"args.{what}: ids must be unique")
        current = await self.call("broadcast.list")
        config_programmes = {p["id"] for p in current.get("programmes", []) if p.get("origin") == "config"}
        config_schedules = {s["id"] for s in current.get("schedules", []) if s.get("origin") == "config"}
        wanted_p = {p.id for p in programmes}
        for i, s in enumerate(schedules):
            if s.programme_id not in wanted_p | config_programmes:
                raise Rejected(f"args.schedules[{i}].programme_id: no programme {s.programme_id!r} in the set")
            if s.id in config_schedules:
                raise Rejected(f"args.schedules[{i}].id: {s.id!r} comes from hub.toml; it cannot be replaced")
        for i, p in enumerate(programmes):
            if p.id in config_programmes:
                raise Rejected(f"args.programmes[{i}].id: {p.id!r} comes from hub.toml; it cannot be replaced")
        warnings: list[str] = []
        for raw in args.programmes:
            answer = await self.call("broadcast.upsert_programme", programme=raw, who=WHO)
            warnings += answer.get("warnings", [])
        for raw in args.schedules:
            answer = await self.call("broadcast.upsert_schedule", schedule=raw, who=WHO)
            warnings += answer.get("warnings", [])
        wanted_s = {s.id for s in schedules}
        deleted_s = [s["id"] for s in current.get("schedules", []) if s.get("origin") != "config"]
        deleted_s = [sid for sid in deleted_s if sid not in wanted_s]
        for sid in deleted_s:
            await self.call("broadcast.delete_schedule", id=sid, who=WHO)
        deleted_p = [p["id"] for p in current.get("programmes", []) if p.get("origin") != "config"]
        deleted_p = [pid for pid in deleted_p if pid not in wanted_p]
        for pid in deleted_p:
            await self.call("broadcast.delete_programme", id=pid, who=WHO)
        return {
            "programmes": sorted(wanted_p),
            "schedules": sorted(wanted_s),
            "deleted_programmes": deleted_p,
            "deleted_schedules": deleted_s,
            "warnings": warnings,
        }

    # -- settings and diagnostics ---------------------------------------------------------------------------------

    def _settings_patch(self, args: SettingsPatchArgs) -> Outcome:
        """The install wizard's overlay (hub/site.py), patched; applied by the restart it then requests."""
        from hub.site import SITE_KEY, ZONES_KEY

        site: dict[str, Any] | None = None
        zones: dict[str, str] | None = None
        if args.site is not None:
            merged = {**(self.store.get_state(SITE_KEY) or {}), **args.site}
            if self.hooks.validate_site is None:
                raise Failed("settings.patch: this hub cannot check site settings")
            try:
                site = self.hooks.validate_site(merged)
            except ValidationError as exc:
                problems = "; ".join(f"args.site.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise Rejected(problems) from None
        if args.zones is not None:
            if self.hooks.validate_zones is None:
                raise Failed("settings.patch: this hub cannot check zone wiring")
            try:
                zones = self.hooks.validate_zones(dict(args.zones))
            except ValueError as exc:
                raise Rejected(f"args.zones: {exc}") from None

        def write(tx: Transaction) -> None:
            if site is not None:
                tx.set_state(SITE_KEY, site)
            if zones is not None:
                tx.set_state(ZONES_KEY, zones)

        restart = self.hooks.request_restart
        return Outcome(
            {"site": site, "zones": zones, "restart": restart is not None},
            in_transaction=write,
            after=(lambda: restart("settings patched by the cloud")) if restart else None,
        )

    async def _diagnostics(self, command_id: int) -> dict[str, Any]:
        if self.hooks.diagnostics_bundle is None:
            raise Failed("this hub cannot build a diagnostics bundle here")
        data = await self.hooks.diagnostics_bundle()
        digest = hashlib.sha256(data).hexdigest()
        try:
            async with self.transport.request(
                "PUT", f"/api/v1/diagnostics/{command_id}", data=data, headers={"Content-Type": "application/gzip"}
            ) as response:
                text = await response.text()
                if response.status != 200:
                    raise Failed(f"the cloud refused the diagnostics upload: HTTP {response.status} {text[:200]}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Failed(f"diagnostics upload failed: {describe_error(exc)}") from None
        return {"bytes": len(data), "sha256": digest}
