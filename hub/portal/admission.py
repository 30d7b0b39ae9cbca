"""Who is let through the Wi-Fi: admission, renewal, expiry, limits, quotas — kept in the store and the firewall.

The firewall's per-element timeouts end a session by themselves (the kernel counts them on its monotonic
clock); the store keeps every live session so that a restart loads the same clients back into the table, in
the same transaction that loads the table, and nobody else. A client is an (IPv4, MAC) pair taken from the
connection and the kernel's neighbour table, never from anything the client sends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from drivers.firewall import ClientElement, Firewall, FirewallError, FirewallState, normalise_ip, normalise_mac
from hub.clock import WallClock
from hub.portal.settings import PortalSettings
from hub.portal.stats import (
    DAILY_KIND,
    DAY_KEY,
    KICK_KIND,
    SALT_KEY,
    SESSION_KIND,
    DayTally,
    client_hash,
    mask_mac,
    new_salt,
)
from hub.store import RecordClass, Store, Transaction

log = logging.getLogger(__name__)

EndReason = Literal["expired", "kicked", "quota", "replaced", "restart-expired"]
RefusalCode = Literal["full", "quota", "unknown-device", "not-wifi", "firewall"]
# A session the firewall lost earlier than this before its end is put back (someone flushed the table);
# closer to its end it is taken as expired (the kernel's timer and ours differ by milliseconds).
EXPIRY_SLACK_S = 2.0

_COLUMNS = "id, ip, mac, admitted_at, expires_at, renewals, bytes_up, bytes_down, lang"


class Refused(Exception):
    """Admission refused; `code` picks the message the portal shows."""

    def __init__(self, code: RefusalCode, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code: RefusalCode = code


@dataclass
class Session:
    id: str
    ip: str
    mac: str
    admitted_at: float  # wall
    expires_at: float  # wall, for people and for a restart
    deadline: float  # monotonic: what decides in this process
    renewals: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    lang: str = "vi"
    seen_up: int = field(default=0, repr=False)  # the firewall's counters at the last read
    seen_down: int = field(default=0, repr=False)
    dirty: bool = field(default=False, repr=False)

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.ip,
            self.mac,
            self.admitted_at,
            self.expires_at,
            self.renewals,
            self.bytes_up,
            self.bytes_down,
            self.lang,
        )


class Admission:
    def __init__(
        self,
        settings: PortalSettings,
        firewall: Firewall,
        store: Store,
        clock: WallClock,
        *,
        wifi_only: bool = True,
    ) -> None:
        """`wifi_only`: refuse addresses outside the Wi-Fi subnet (off for the simulated portal on loopback)."""
        self.settings = settings
        self.firewall = firewall
        self.store = store
        self.clock = clock
        self.wifi_only = wifi_only
        self.subnet = settings.wifi_address.network
        self.sessions: dict[str, Session] = {}  # by IP
        self.salt = ""
        self.tally = DayTally(self._today())
        self.quota_bytes = settings.daily_quota_mb * 1_000_000 if settings.daily_quota_mb else None
        self.lock = asyncio.Lock()
        self.reloads = 0
        self.last_poll_at: float | None = None
        self.last_error: str | None = None
        self.table_present: bool | None = None
        self._closed_days: list[DayTally] = []  # ended days whose record is written with the next persist
        self._persisted_tally: dict[str, Any] | None = None

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _today(self) -> str:
        return self.clock.now().date().isoformat()

    def hash(self, mac: str) -> str:
        return client_hash(self.salt, mac)

    def remaining_s(self, session: Session) -> float:
        return max(0.0, session.deadline - self.clock.monotonic())

    def active(self) -> list[Session]:
        now = self.clock.monotonic()
        return [s for s in self.sessions.values() if s.deadline > now]

    def session_for(self, ip: str, mac: str | None = None) -> Session | None:
        """The live session of this address (and MAC, if given)."""
        session = self.sessions.get(ip)
        if session is None or session.deadline <= self.clock.monotonic():
            return None
        if mac is not None and session.mac != mac:
            return None
        return session

    def find(self, key: str) -> Session | None:
        """By client id or by IP address."""
        key = key.strip()
        return self.sessions.get(key) or next((s for s in self.sessions.values() if s.id == key), None)

    def used_today(self, mac: str) -> int:
        return self.tally.clients.get(self.hash(mac), 0)

    def quota_left(self, mac: str) -> int | None:
        if self.quota_bytes is None:
            return None
        return max(0, self.quota_bytes - self.used_today(mac))

    def describe(self, session: Session) -> dict[str, Any]:
        """A client as the technician page and the cloud list it: MAC masked."""
        tz = self.clock.now().tzinfo
        return {
            "id": session.id,
            "ip": session.ip,
            "mac": mask_mac(session.mac),
            "admitted_at": dt.datetime.fromtimestamp(session.admitted_at, tz).isoformat(timespec="seconds"),
            "expires_at": dt.datetime.fromtimestamp(session.expires_at, tz).isoformat(timespec="seconds"),
            "remaining_s": round(self.remaining_s(session)),
            "renewals": session.renewals,
            "bytes_up": session.bytes_up,
            "bytes_down": session.bytes_down,
            "quota_left_bytes": self.quota_left(session.mac),
        }

    def _element(self, session: Session) -> ClientElement:
        return ClientElement(session.ip, session.mac, max(1, round(self.remaining_s(session))))

    # ---- restore ------------------------------------------------------------------------------------------------

    async def restore(self) -> list[Session]:
        """Load the table with the sessions the store holds that have time left; end the others. Returns the
        sessions loaded."""
        rows = self.store.query(f"SELECT {_COLUMNS} FROM portal_sessions")  # noqa: S608 - our own columns
        salt = self.store.get_state(SALT_KEY)
        if not isinstance(salt, str) or len(salt) != 64:
            salt = new_salt()
            await self.store.write(lambda tx: tx.set_state(SALT_KEY, salt))
        self.salt = salt
        self.tally = DayTally.from_state(self.store.get_state(DAY_KEY), self._today())
        try:
            kernel = await self.firewall.read()
        except FirewallError as exc:
            log.warning("portal: could not read the firewall table before loading it: %s", exc)
            kernel = FirewallState(present=False)
        wall, mono = self.clock.now().timestamp(), self.clock.monotonic()
        keep: list[Session] = []
        ended: list[Session] = []
        for sid, ip, mac, admitted_at, expires_at, renewals, up, down, lang in rows:
            held = kernel.client(ip)
            if held is not None and held.mac == mac:
                # The table outlived the hub (a restart, not a reboot): the kernel's monotonic timeout is exact.
                remaining = held.expires_s
            else:
                # After a reboot only the wall clock is left; never more than a whole session (a clock set late).
                remaining = min(float(expires_at) - wall, float(self.settings.session_s))
            session = Session(sid, ip, mac, admitted_at, wall + remaining, mono + remaining, renewals, up, down, lang)
            (keep if remaining >= 1 else ended).append(session)
        await self._load(keep)
        self.sessions = {s.ip: s for s in keep}
        for s in keep:
            s.dirty = True
        await self._persist(ended=[(s, "restart-expired") for s in ended])
        log.info(
            "portal: %d session(s) restored into the firewall, %d expired while the hub was down", len(keep), len(ended)
        )
        return keep

    async def _load(self, sessions: list[Session]) -> None:
        await self.firewall.load([self._element(s) for s in sessions if self.remaining_s(s) >= 1])
        for s in sessions:
            s.seen_up = s.seen_down = 0
        self.table_present = True

    # ---- admission ----------------------------------------------------------------------------------------------

    async def admit(self, ip: str, mac: str | None, lang: str = "vi") -> Session:
        """Admit the device at `ip` (the connection's own address) with `mac` (from the neighbour table), or renew
        its session. Raises Refused."""
        try:
            ip = normalise_ip(ip)
        except ValueError:
            raise Refused("not-wifi", f"{ip!r} is not an IPv4 address") from None
        if self.wifi_only and ipaddress.IPv4Address(ip) not in self.subnet:
            raise Refused("not-wifi", f"{ip} is not on the Wi-Fi subnet {self.subnet}")
        if mac is None:
            raise Refused("unknown-device", f"no MAC known for {ip}")
        mac = normalise_mac(mac)
        async with self.lock:
            self._roll_day()
            client = self.hash(mac)
            left = self.quota_left(mac)
            if left is not None and left <= 0:
                self.tally.refused_quota += 1
                await self._persist()
                raise Refused("quota")
            existing = self.sessions.get(ip)
            renewal = existing is not None and existing.mac == mac and self.remaining_s(existing) > 0
            replaced = [
                s for s in self.sessions.values() if (s.ip == ip or s.mac == mac) and not (renewal and s is existing)
            ]
            if not renewal and len([s for s in self.active() if s not in replaced]) >= self.settings.max_clients:
                self.tally.refused_full += 1
                await self._persist()
                raise Refused("full")
            if renewal:
                assert existing is not None
                await self._fold_counters([existing])
            for old in replaced:
                await self._revoke(old)
            wall, mono = self.clock.now().timestamp(), self.clock.monotonic()
            length = self.settings.session_s
            if renewal:
                assert existing is not None
                session = existing
                session.expires_at, session.deadline = wall + length, mono + length
                session.renewals += 1
                session.lang = lang
                self.tally.renewals += 1
            else:
                session = Session(secrets.token_hex(6), ip, mac, wall, wall + length, mono + length, lang=lang)
                self.tally.sessions += 1
            try:
                await self.firewall.admit(ClientElement(ip, mac, length))
            except FirewallError as exc:
                self.last_error = str(exc)
                log.error("portal: could not admit %s: %s", ip, exc)
                raise Refused("firewall", str(exc)) from None
            session.seen_up = session.seen_down = 0
            session.dirty = True
            for old in replaced:
                self.sessions.pop(old.ip, None)
            self.sessions[ip] = session
            self.tally.clients.setdefault(client, 0)
            self.tally.peak_admitted = max(self.tally.peak_admitted, len(self.active()))
            await self._persist(ended=[(s, "replaced" if self.remaining_s(s) > 0 else "expired") for s in replaced])
            return session

    async def kick(self, key: str, who: str = "") -> Session:
        async with self.lock:
            session = self.find(key)
            if session is None:
                raise KeyError(key)
            await self._fold_counters([session])
            await self._revoke(session)
            self.sessions.pop(session.ip, None)
            self.tally.kicked += 1
            extra = [(KICK_KIND, {"client": self.hash(session.mac), "who": who[:80]})]
            await self._persist(ended=[(session, "kicked")], records=extra)
            return session

    async def _revoke(self, session: Session) -> None:
        try:
            await self.firewall.revoke(session.ip, session.mac)
        except FirewallError as exc:
            self.last_error = str(exc)
            log.error("portal: could not remove %s from the firewall: %s", session.ip, exc)
            raise

    async def _fold_counters(self, sessions: list[Session]) -> None:
        try:
            state = await self.firewall.read()
        except FirewallError as exc:
            log.warning("portal: counters not read: %s", exc)
            return
        for s in sessions:
            held = state.client(s.ip)
            if held is not None and held.mac == s.mac:
                self._count(s, held.bytes_up, held.bytes_down)

    def _count(self, s: Session, up_total: int, down_total: int) -> None:
        up = up_total - s.seen_up if up_total >= s.seen_up else up_total
        down = down_total - s.seen_down if down_total >= s.seen_down else down_total
        s.seen_up, s.seen_down = up_total, down_total
        if up or down:
            s.bytes_up += up
            s.bytes_down += down
            s.dirty = True
            self.tally.add_bytes(self.hash(s.mac), up, down)

    # ---- the poll -----------------------------------------------------------------------------------------------

    async def poll(self) -> dict[str, int]:
        """Read the table back: count bytes, end expired sessions, enforce quotas, reload a table that vanished,
        close the day. Returns what it did."""
        done = {"expired": 0, "quota": 0, "reloaded": 0, "restored": 0}
        async with self.lock:
            self._roll_day()
            try:
                state = await self.firewall.read()
            except FirewallError as exc:
                self.last_error = str(exc)
                raise
            self.last_poll_at = time.time()
            self.table_present = state.present
            if not state.present:
                log.error("portal: the firewall table is gone; loading it again with %d client(s)", len(self.sessions))
                await self._load(self.active())
                self.reloads += 1
                done["reloaded"] = 1
                state = await self.firewall.read()
            ended: list[tuple[Session, EndReason]] = []
            for s in list(self.sessions.values()):
                held = state.client(s.ip)
                if held is None or held.mac != s.mac:
                    if self.remaining_s(s) > max(EXPIRY_SLACK_S, self.settings.poll_s):
                        log.warning("portal: %s was missing from the firewall with time left: put back", s.ip)
                        await self.firewall.admit(self._element(s))
                        s.seen_up = s.seen_down = 0
                        done["restored"] += 1
                        continue
                    ended.append((s, "expired"))
                    done["expired"] += 1
                    continue
                self._count(s, held.bytes_up, held.bytes_down)
                if self.quota_bytes is not None and self.used_today(s.mac) >= self.quota_bytes:
                    await self._revoke(s)
                    ended.append((s, "quota"))
                    done["quota"] += 1
            for s, _ in ended:
                self.sessions.pop(s.ip, None)
            await self._persist(ended=ended)
        return done

    def _roll_day(self) -> None:
        today = self._today()
        if self.tally.day == today:
            return
        finished = self.tally
        self.tally = DayTally(today)
        for s in self.active():
            self.tally.clients.setdefault(self.hash(s.mac), 0)
        self.tally.peak_admitted = len(self.active())
        self._closed_days.append(finished)

    # ---- the store ----------------------------------------------------------------------------------------------

    async def _persist(
        self,
        ended: list[tuple[Session, EndReason]] | None = None,
        records: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        """Sessions changed or ended, the day's tally, and the outbox records, in one transaction."""
        ended = ended or []
        dirty = [s for s in self.sessions.values() if s.dirty]
        tally = self.tally.as_state()
        if not (ended or dirty or records or self._closed_days) and tally == self._persisted_tally:
            return  # a quiet poll costs no write (an SD card counts its fsyncs)
        closed, self._closed_days = self._closed_days, []
        quota = self.quota_bytes
        now = self.clock.now().timestamp()
        end_records = [
            {
                "client": self.hash(s.mac),
                "started_at": s.admitted_at,
                "ended_at": now,
                "duration_s": round(now - s.admitted_at, 1),
                "renewals": s.renewals,
                "bytes_up": s.bytes_up,
                "bytes_down": s.bytes_down,
                "end": reason,
            }
            for s, reason in ended
        ]

        def write(tx: Transaction) -> None:
            for s in dirty:
                tx.conn.execute(
                    f"INSERT OR REPLACE INTO portal_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                    s.row(),
                )
            for s, _ in ended:
                tx.conn.execute("DELETE FROM portal_sessions WHERE id = ?", (s.id,))
            for payload in end_records:
                tx.append(RecordClass.TELEMETRY, SESSION_KIND, payload)
            for day in closed:
                tx.append(RecordClass.TELEMETRY, DAILY_KIND, day.record(quota))
            for kind, payload in records or []:
                tx.append(RecordClass.OPERATIONS, kind, payload)
            tx.set_state(DAY_KEY, tally)

        await self.store.write(write)
        self._persisted_tally = tally
        for s in dirty:
            s.dirty = False
