"""Uploads the outbox to the commune cloud, one batch at a time, as docs/protocol.md describes.

A record leaves the outbox only when the cloud's answer says it holds a sequence number at least as high:
a lost answer, a dead link or a cloud crash mid-batch just means the batch is sent again, and the cloud
ignores what it already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any

import aiohttp

from hub.bus import EventBus
from hub.config.settings import SyncSection
from hub.service import Service
from hub.store import OutboxRecord, Store
from hub.sync.transport import CloudTransport, InsecureURLError, TokenLike, describe_error

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
STATE_PATH = "/api/v1/ingest/state"
MAX_BODY_BYTES = 3 * 1024 * 1024


class CloudError(Exception):
    """A failed exchange with the cloud; the batch stays in the outbox and is retried."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """AWS's "full jitter": spreads the retries of many boxes coming back after one outage."""
    return rng.uniform(0.0, min(cap, base * (2**attempt)))


def encode_batch(hub_id: str, records: list[OutboxRecord], dropped: dict[str, int]) -> bytes:
    # Payloads are stored already encoded: splice them in rather than decode and encode them again.
    parts = []
    for record in records:
        head = json.dumps(record.to_wire(), ensure_ascii=False, separators=(",", ":"))
        parts.append(f'{head[:-1]},"payload":{record.payload_json}}}')
    body = (
        '{"hub_id":'
        + json.dumps(hub_id)
        + ',"records":['
        + ",".join(parts)
        + '],"dropped":'
        + json.dumps(dropped, separators=(",", ":"))
        + "}"
    )
    return body.encode("utf-8")


class Uploader(Service):
    name = "sync"

    def __init__(
        self,
        store: Store,
        settings: SyncSection,
        hub_id: str,
        token: TokenLike,
        bus: EventBus,
        rng: random.Random | None = None,
        transport: CloudTransport | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.hub_id = hub_id
        self.transport = transport or CloudTransport(settings, token, bus)
        self.bus = bus
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.base_url = str(settings.cloud_url).rstrip("/") if settings.cloud_url else None
        self._wake: asyncio.Event | None = None
        self._listening = False
        self.batch_size = settings.batch_size
        # what the technician page and the cloud want to know
        self.link = "offline" if self.base_url is None else "starting"
        self.cloud_ack_seq: int | None = None
        self.last_success_at: float | None = None
        self.last_rtt_ms: float | None = None
        self.last_attempt_at: float | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.batches_sent = 0
        self.records_sent = 0
        self.retry_at: float | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        if not self._listening:
            loop = asyncio.get_running_loop()
            wake = self._wake_soon

            def on_commit() -> None:
                loop.call_soon_threadsafe(wake)

            self.store.add_commit_listener(on_commit)
            self._listening = True

    @property
    def token(self) -> str | None:
        return self.transport.token

    def _wake_soon(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def stop(self) -> None:
        await self.transport.close()

    async def run(self) -> None:
        if self.base_url is None:
            while True:  # offline by configuration: everything stays in the outbox
                self.beat()
                await asyncio.sleep(30)
        state_known = False
        while True:
            self.beat()
            try:
                if not state_known:
                    await self._check_cloud_state()
                    state_known = True
                sent = await self._send_batch()
            except CloudError as exc:
                await self._back_off(exc)
                continue
            self.failures = 0
            self.retry_at = None
            if sent == 0:
                await self._idle()

    async def _idle(self) -> None:
        assert self._wake is not None
        self._wake.clear()
        if self.store.counters()["pending_count"] > 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.settings.idle_poll_s)

    async def _back_off(self, exc: CloudError) -> None:
        self.failures += 1
        self.last_error = str(exc)
        self.link = "failing"
        delay = full_jitter(self.failures - 1, self.settings.backoff_base_s, self.settings.backoff_max_s, self.rng)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self.settings.backoff_max_s))
        self.retry_at = time.time() + delay
        log.warning("sync: %s; retry %d in %.1fs", exc, self.failures, delay)
        self.bus.publish("sync.failed", error=str(exc), retry_in=delay)
        await asyncio.sleep(delay)

    async def _check_cloud_state(self) -> None:
        reply = await self._request("GET", STATE_PATH, None)
        await self._absorb_ack(reply)

    async def _send_batch(self) -> int:
        records = await asyncio.to_thread(self.store.pending, self.batch_size, MAX_BODY_BYTES)
        if not records:
            self.link = "connected" if self.last_success_at else self.link
            return 0
        body = encode_batch(self.hub_id, records, self._dropped())
        # The backlog once this batch is acknowledged, for the operator's hubs list (docs/protocol.md).
        backlog = max(0, self.store.counters()["pending_count"] - len(records))
        reply = await self._request("POST", INGEST_PATH, body, {"X-Hub-Pending": str(backlog)})
        ack = await self._absorb_ack(reply)
        if ack is None:
            return len(records)  # sequence raised; the renumbered records go in the next batch
        if ack < records[-1].seq:
            raise CloudError(f"cloud acknowledged seq {ack}, below the batch's last seq {records[-1].seq}")
        removed = await self.store.mark_delivered(ack)
        self.batches_sent += 1
        self.records_sent += len(records)
        self.bus.publish("sync.delivered", ack_seq=ack, records=removed)
        return len(records)

    def _dropped(self) -> dict[str, int]:
        counters = self.store.counters()
        return {k.removeprefix("dropped."): v for k, v in counters.items() if k.startswith("dropped.")}

    async def _absorb_ack(self, reply: dict[str, Any]) -> int | None:
        """Take the cloud's ack_seq; None if it revealed a sequence regression (handled here)."""
        try:
            ack = int(reply["ack_seq"])
        except (KeyError, TypeError, ValueError):
            raise CloudError(f"cloud answer has no valid ack_seq: {str(reply)[:200]}") from None
        self.cloud_ack_seq = ack
        self.last_success_at = time.time()
        self.link = "connected"
        if ack > self.store.last_seq():
            renumbered = await self.store.raise_sequence(ack)
            log.warning("sync: cloud holds seq %d, above ours; renumbered %d pending records", ack, renumbered)
            return None
        return ack

    async def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        assert self.base_url is not None
        self.last_attempt_at = time.time()
        sent = time.monotonic()
        try:
            async with self.transport.request(method, path, data=body, headers=headers or {}) as response:
                text = await response.text()
                # The link's latency as the technician page shows it: the whole exchange, body included.
                self.last_rtt_ms = round((time.monotonic() - sent) * 1000, 1)
                if response.status == 200:
                    try:
                        parsed = json.loads(text)
                    except ValueError:
                        raise CloudError(f"cloud answered {method} {path} with invalid JSON") from None
                    if not isinstance(parsed, dict):
                        raise CloudError(f"cloud answered {method} {path} with a non-object")
                    return parsed
                if response.status == 413 and self.batch_size > 1:
                    self.batch_size = max(1, self.batch_size // 2)
                retry_after = _retry_after(response.headers.get("Retry-After"))
                raise CloudError(f"cloud answered {method} {path}: HTTP {response.status} {text[:200]}", retry_after)
        except InsecureURLError as exc:
            raise CloudError(str(exc)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise CloudError(describe_error(exc, self.settings)) from None

    def health(self) -> dict[str, Any]:
        counters = self.store.counters()
        return {
            "cloud_url": self.base_url,
            "link": self.link,
            "token": "set" if self.token else "missing",
            "pending": counters["pending_count"],
            "acked_seq": counters["acked_seq"],
            "last_seq": counters["last_seq"],
            "cloud_ack_seq": self.cloud_ack_seq,
            "last_success_at": self.last_success_at,
            "last_rtt_ms": self.last_rtt_ms,
            "last_attempt_at": self.last_attempt_at,
            "last_error": self.last_error if self.failures else None,
            "consecutive_failures": self.failures,
            "retry_at": self.retry_at,
            "batches_sent": self.batches_sent,
            "records_sent": self.records_sent,
        }

    def problems(self) -> list[str]:
        out = []
        if self.base_url is None:
            out.append("no cloud_url configured: records stay on the box")
        elif not self.token:
            out.append("no cloud token (not enrolled: `hub enroll CODE`): the cloud will refuse uploads")
        if self.failures:
            out.append(f"cloud link failing ({self.failures} tries): {self.last_error}")
        return out


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
