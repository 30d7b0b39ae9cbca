"""The public Wi-Fi's captive portal as a hub service: firewall, admission, the portal listener, statistics.

At start it writes the access point's and DHCP/DNS server's files (hostapd, dnsmasq: their own systemd units
run them), loads the firewall table with the sessions the store holds, and opens the portal listener on the
Wi-Fi address. Then it reads the table back every `poll_s` (bytes, expiries, quotas, a vanished table) and keeps
the splash page's announcements fresh. Stopping leaves the table in place: admitted phones stay online and
everybody else stays behind the portal while the hub restarts.

Bus commands (for the technician page and the cloud):
  portal.clients                      -> {clients: [{id, ip, mac (masked), remaining_s, bytes_up, ...}], ...}
  portal.kick {ip | id, who}          -> {kicked: {...}}
  portal.set_notices {notices, who}   -> {notices: [{text, at}]}   (the splash page's editable notices)
  portal.notices                      -> {notices: [...]}
It calls `broadcast.log` (limit 5) for the latest loudspeaker announcements, when that service answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from drivers.firewall import DryFirewall, Firewall, FirewallConfig, FirewallError, NftFirewall, render_table
from drivers.wifi import (
    ArpTable,
    InterfaceState,
    Neighbours,
    SimulatedNeighbours,
    WifiConfig,
    interface_state,
    write_all,
)
from hub.bus import CommandError, EventBus, NoHandlerError
from hub.clock import SystemClock, WallClock
from hub.config.settings import ManagementSection
from hub.portal.admission import Admission
from hub.portal.app import PortalApp
from hub.portal.settings import PortalSettings
from hub.service import Service
from hub.store import RecordClass, Store

log = logging.getLogger(__name__)

NOTICES_KEY = "portal.notices"
MAX_NOTICES = 10
MAX_NOTICE_CHARS = 500
ANNOUNCEMENTS_EVERY_S = 60.0
ANNOUNCEMENTS_SHOWN = 5
# Outcomes of a broadcast that did not reach the loudspeakers: not announcements anyone heard.
NOT_HEARD = {"failed", "missed", "blocked", "duplicate", "expired", "cancelled", "ignored", "queued"}
CONFIG_SUBDIR = "portal"


def firewall_config(settings: PortalSettings, management: ManagementSection) -> FirewallConfig:
    blocked = [ipaddress.IPv4Network(n) for n in settings.blocked_networks]
    with contextlib.suppress(ValueError):
        mgmt = ipaddress.IPv4Address(management.host)
        if not (mgmt.is_loopback or mgmt.is_unspecified):
            blocked.append(ipaddress.IPv4Network(f"{mgmt}/32"))
    return FirewallConfig(
        wifi_interface=settings.interface,
        wifi_address=settings.wifi_address,
        portal_port=settings.port,
        management_ports=(management.port,),
        blocked_networks=tuple(blocked),
        uplink_interface=settings.uplink_interface,
        download_bytes_per_s=settings.download_kbps * 125 or None,  # kbit/s -> bytes/s
        upload_bytes_per_s=settings.upload_kbps * 125 or None,
    )


def wifi_config(settings: PortalSettings) -> WifiConfig:
    return WifiConfig(
        interface=settings.interface,
        address=settings.wifi_address,
        ssid=settings.ssid,
        country_code=settings.country_code,
        hw_mode=settings.hw_mode,
        channel=settings.channel,
        wpa_passphrase=settings.wpa_passphrase,
        dhcp_lease_minutes=settings.dhcp_lease_minutes,
        dns_servers=tuple(settings.dns_servers),
        captive_api_url=settings.api_url,
        max_clients=settings.max_clients,
    )


def uses_nft(settings: PortalSettings, simulated: bool) -> bool:
    return settings.firewall == "nft" or (settings.firewall == "auto" and not simulated)


class PortalService(Service):
    name = "portal"

    def __init__(
        self,
        settings: PortalSettings,
        *,
        store: Store,
        bus: EventBus,
        data_dir: Path,
        management: ManagementSection,
        simulated: bool,
        village: str = "",
        timezone: str = "Asia/Ho_Chi_Minh",
        clock: WallClock | None = None,
        firewall: Firewall | None = None,
        neighbours: Neighbours | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.bus = bus
        self.management = management
        self.config_dir = Path(data_dir) / CONFIG_SUBDIR
        self.clock: WallClock = clock or SystemClock(timezone)
        self.fw_config = firewall_config(settings, management)
        self.real = uses_nft(settings, simulated)
        if firewall is None:
            firewall = NftFirewall(self.fw_config) if self.real else DryFirewall(self.fw_config, self.clock.monotonic)
        self.firewall = firewall
        self.neighbours = neighbours or (ArpTable(settings.interface) if self.real else SimulatedNeighbours())
        self.admission = Admission(settings, firewall, store, self.clock, wifi_only=self.real)
        self.notices: list[dict[str, Any]] = []
        self.announcements: list[dict[str, Any]] = []
        self.app = PortalApp(
            settings,
            self.admission,
            self.neighbours,
            village=village,
            notices=lambda: (self.notices, self.announcements),
        )
        self._runner: web.AppRunner | None = None
        self.bound = False
        self.changed_files: list[str] = []
        self.interface: InterfaceState | None = None
        self.last_poll_error: str | None = None
        self._announcements_at = 0.0

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self.changed_files = await asyncio.to_thread(
            write_all, self.config_dir, wifi_config(s), render_table(self.fw_config, [])
        )
        if self.changed_files:
            log.info("portal: wrote %s in %s", ", ".join(self.changed_files), self.config_dir)
        stored = self.store.get_state(NOTICES_KEY, [])
        self.notices = [n for n in stored if isinstance(n, dict) and isinstance(n.get("text"), str)]
        await self.admission.restore()
        if self.real:
            self.interface = await asyncio.to_thread(interface_state, s.interface)
        runner = web.AppRunner(
            self.app.build(),
            access_log=None,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, s.host, s.port, backlog=256, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.bound = True
        log.info(
            "portal: listening on %s (%s firewall, %d admitted)",
            s.url,
            self.firewall.kind,
            len(self.admission.active()),
        )

    async def run(self) -> None:
        withdraw = [
            self.bus.serve("portal.clients", self._clients_command),
            self.bus.serve("portal.kick", self._kick_command),
            self.bus.serve("portal.set_notices", self._set_notices_command),
            self.bus.serve("portal.notices", self._notices_command),
        ]
        try:
            while True:
                self.beat()
                await self._refresh_announcements()
                try:
                    done = await self.admission.poll()
                    self.last_poll_error = None
                    if any(done.values()):
                        log.info("portal: poll %s", done)
                except (FirewallError, OSError) as exc:
                    self.last_poll_error = str(exc)
                    log.error("portal: reading the firewall failed: %s", exc)
                if self.real:
                    self.interface = await asyncio.to_thread(interface_state, self.settings.interface)
                await asyncio.sleep(self.settings.poll_s)
        finally:
            for undo in withdraw:
                undo()

    async def stop(self) -> None:
        # Counters since the last poll, so a restart loses no bytes; the table itself stays loaded.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.admission.poll(), timeout=1.0)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            self.bound = False
            await runner.cleanup()

    # ---- notices and announcements ------------------------------------------------------------------------------

    async def _refresh_announcements(self) -> None:
        now = time.monotonic()
        if now - self._announcements_at < ANNOUNCEMENTS_EVERY_S and self._announcements_at:
            return
        self._announcements_at = now
        try:
            answer = await self.bus.call("broadcast.log", timeout=2.0, limit=ANNOUNCEMENTS_SHOWN)
        except NoHandlerError:
            self.announcements = []
            return
        except CommandError as exc:
            log.debug("portal: broadcast.log failed: %s", exc)
            return
        self.announcements = announcements_from(answer, self.clock)

    def set_notices(self, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list):
            raise CommandError("'notices' must be a list of texts")
        if len(raw) > MAX_NOTICES:
            raise CommandError(f"at most {MAX_NOTICES} notices")
        out = []
        for item in raw:
            text = item.get("text") if isinstance(item, dict) else item
            if not isinstance(text, str):
                raise CommandError("each notice must be a text (or {text: ...})")
            text = " ".join(text.split())
            if len(text) > MAX_NOTICE_CHARS:
                raise CommandError(f"a notice is at most {MAX_NOTICE_CHARS} characters")
            if text:
                out.append({"text": text, "at": round(self.clock.now().timestamp(), 3)})
        return out

    # ---- bus commands -------------------------------------------------------------------------------------------

    async def _clients_command(self, data: dict[str, Any]) -> dict[str, Any]:
        clients = sorted(self.admission.active(), key=lambda s: s.admitted_at)
        return {
            "clients": [self.admission.describe(s) for s in clients],
            "admitted": len(clients),
            "max_clients": self.settings.max_clients,
        }

    async def _kick_command(self, data: dict[str, Any]) -> dict[str, Any]:
        key = str(data.get("ip") or data.get("id") or data.get("client") or "").strip()
        if not key:
            raise CommandError("give the client's 'ip' or 'id'")
        try:
            session = await self.admission.kick(key, str(data.get("who") or ""))
        except KeyError:
            raise CommandError(f"no admitted client {key!r}") from None
        except FirewallError as exc:
            raise CommandError(f"the firewall refused: {exc}") from None
        self.bus.publish("portal.kicked", id=session.id, ip=session.ip)
        return {"kicked": self.admission.describe(session)}

    async def _set_notices_command(self, data: dict[str, Any]) -> dict[str, Any]:
        notices = self.set_notices(data.get("notices"))
        who = str(data.get("who") or "")[:80]

        def write(tx: Any) -> None:
            tx.set_state(NOTICES_KEY, notices)
            tx.append(RecordClass.OPERATIONS, "portal.notices_set", {"count": len(notices), "who": who})

        await self.store.write(write)
        self.notices = notices
        self.bus.publish("portal.notices_changed", count=len(notices))
        return {"notices": notices}

    async def _notices_command(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"notices": self.notices, "announcements": self.announcements}

    # ---- health -------------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        a = self.admission
        tally = a.tally
        return {
            "admitted": len(a.active()),
            "max_clients": self.settings.max_clients,
            "sessions_today": tally.sessions,
            "renewals_today": tally.renewals,
            "clients_today": len(tally.clients),
            "refused_today": {"full": tally.refused_full, "quota": tally.refused_quota},
            "bytes_today": {"up": tally.bytes_up, "down": tally.bytes_down},
            "firewall": self.firewall.health().as_dict(),
            "table_present": a.table_present,
            "listen": self.settings.url,
            "listening": self.bound,
            "captive_api": self.settings.api_url,
            "interfaces": {
                "wifi": self.settings.interface,
                "uplink": self.settings.uplink_interface or "any but the Wi-Fi one",
                "wifi_state": self.interface.as_dict() if self.interface else "simulated",
            },
            "limits": {
                "session_s": self.settings.session_s,
                "download_kbps": self.settings.download_kbps,
                "upload_kbps": self.settings.upload_kbps,
                "daily_quota_mb": self.settings.daily_quota_mb,
            },
            "config_dir": str(self.config_dir),
            "requests": self.app.requests,
            "rate_limited": self.app.limiter.refused,
            "last_poll_at": a.last_poll_at,
            "firewall_reloads": a.reloads,
        }

    def problems(self) -> list[str]:
        out = []
        if not self.bound:
            out.append(f"portal listener not bound on {self.settings.url}")
        if self.admission.table_present is False:
            out.append(f"firewall table inet {self.fw_config.table} is not loaded")
        if self.last_poll_error:
            out.append(f"firewall: {self.last_poll_error}")
        if self.interface is not None:
            if not self.interface.present:
                out.append(f"Wi-Fi interface {self.interface.name} does not exist")
            elif not self.interface.up:
                out.append(f"Wi-Fi interface {self.interface.name} is down")
            elif self.settings.address not in self.interface.addresses:
                out.append(f"Wi-Fi interface {self.interface.name} does not have {self.settings.address}")
        return out


def announcements_from(answer: dict[str, Any], clock: WallClock) -> list[dict[str, Any]]:
    """`broadcast.log`'s answer -> [{title, when}] of what the loudspeakers played, newest first."""
    entries = answer.get("entries") or answer.get("announcements") or answer.get("items") or []
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("outcome") in NOT_HEARD:
            continue
        title = str(entry.get("title") or entry.get("text") or entry.get("name") or "").strip()
        if not title:
            continue
        when = entry.get("started_at") or entry.get("ended_at") or entry.get("planned_at") or entry.get("at")
        out.append({"title": title[:200], "when": _short_time(when, clock)})
        if len(out) >= ANNOUNCEMENTS_SHOWN:
            break
    return out


def _short_time(value: Any, clock: WallClock) -> str:
    tz = clock.now().tzinfo
    try:
        if isinstance(value, int | float):
            moment = dt.datetime.fromtimestamp(value, tz)
        elif isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            moment = moment.astimezone(tz) if moment.tzinfo else moment
        else:
            return ""
    except (ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%H:%M %d/%m")
