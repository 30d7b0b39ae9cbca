"""Clock sanity without NTP: the hub's clock against the `Date` header of every cloud response.

A box without a real-time clock boots in the past, and one whose NTP is blocked drifts. When the kernel clock is
not NTP-synchronised and differs from the cloud's by more than a minute, this writes one `clock.skew` warning
record per episode (the episode ends when they agree again within half that, or NTP takes over) and shows it in
health. The offset is published as `clock.cloud_offset` {offset_s, trusted_tls} for other parts (OTA treats the
cloud's Date over verified TLS as a trusted time source); `trusted_time_offset` holds it when it came over TLS.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

from hub import sysinfo
from hub.bus import EventBus
from hub.service import Service
from hub.store import RecordClass, Store

log = logging.getLogger(__name__)

THRESHOLD_S = 60.0
PUBLISH_CHANGE_S = 1.0
SYNC_RECHECK_S = 60.0


def parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


class ClockCheck(Service):
    name = "cloud_clock"

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        threshold_s: float = THRESHOLD_S,
        synchronised: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.bus = bus
        self.threshold_s = threshold_s
        self._synchronised = synchronised or (lambda: bool(sysinfo.time_sync().get("synchronised")))
        self._sync_checked = -SYNC_RECHECK_S
        self._sync = False
        self.offset_s: float | None = None  # cloud minus hub: positive when the hub is behind
        self.trusted_tls = False
        self.checked_at: float | None = None
        self.skewed = False
        self.episodes = 0
        self._published: float | None = None

    @property
    def trusted_time_offset(self) -> float | None:
        """Seconds to add to the hub's clock for the cloud's time, when it came over verified TLS."""
        return self.offset_s if self.trusted_tls else None

    def synchronised(self) -> bool:
        now = time.monotonic()
        if now - self._sync_checked >= SYNC_RECHECK_S:
            self._sync_checked = now
            self._sync = self._synchronised()
        return self._sync

    async def run(self) -> None:
        sub = self.bus.subscribe("cloud.date", maxsize=16)
        try:
            while True:
                self.beat()
                try:
                    async with asyncio.timeout(30):
                        message = await sub.get()
                except TimeoutError:
                    continue
                data = message.data
                await self.observe(str(data.get("date") or ""), float(data.get("at") or 0), bool(data.get("tls")))
        finally:
            sub.close()

    async def observe(self, date_header: str, local_at: float, tls: bool) -> float | None:
        """One cloud response: its Date, the hub's clock when it arrived. Returns the offset (None if unreadable)."""
        cloud = parse_http_date(date_header)
        if cloud is None:
            return None
        # Date has whole seconds and was stamped before the body travelled: ~1-2 s of slack, far below a minute.
        offset = round(cloud - local_at, 1)
        self.offset_s = offset
        self.trusted_tls = tls
        self.checked_at = local_at
        if self._published is None or abs(offset - self._published) >= PUBLISH_CHANGE_S:
            self._published = offset
            self.bus.publish("clock.cloud_offset", offset_s=offset, trusted_tls=tls)
        synced = self.synchronised()
        if not synced and abs(offset) > self.threshold_s and not self.skewed:
            self.skewed = True
            self.episodes += 1
            payload = {
                "skew_s": offset,
                "cloud_time": cloud,
                "hub_time": local_at,
                "trusted_tls": tls,
                "ntp_synchronised": synced,
            }
            log.warning("clock: the hub's clock differs from the cloud's by %+.0f s (no NTP sync)", offset)
            self.bus.publish("clock.skew", **payload)
            await self.store.append(RecordClass.OPERATIONS, "clock.skew", payload)
        elif self.skewed and (synced or abs(offset) <= self.threshold_s / 2):
            self.skewed = False
            log.info("clock: the hub's clock agrees with the cloud's again (%+.0f s)", offset)
            await self.store.append(
                RecordClass.OPERATIONS, "clock.skew_cleared", {"skew_s": offset, "ntp_synchronised": synced}
            )
        return offset

    def health(self) -> dict[str, Any]:
        return {
            "offset_s": self.offset_s,
            "trusted_tls": self.trusted_tls,
            "trusted_time_offset": self.trusted_time_offset,
            "checked_at": self.checked_at,
            "ntp_synchronised": self._sync,
            "skewed": self.skewed,
            "episodes": self.episodes,
            "threshold_s": self.threshold_s,
        }

    def problems(self) -> list[str]:
        if self.skewed and self.offset_s is not None:
            return [f"the hub's clock differs from the cloud's by {self.offset_s:+.0f} s and NTP is not synchronised"]
        return []
