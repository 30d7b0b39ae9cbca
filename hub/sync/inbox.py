"""The command inbox: long-polls the commune cloud for commands, applies each at most once, in id order, and
reports the outcome (docs/protocol.md, "Command inbox").

At most once: a command is written to the store as 'applying' before it runs; a restart finds it still
'applying' and reports it failed ("interrupted by a restart") rather than running it again. The cursor of the
poll is the highest id in the store, so a command delivered twice (a lost answer, a cloud that re-sends) is seen
as already handled. The outcome is recorded in the same transaction as its `command.result` outbox record (the
durable path to the cloud), then also posted directly (the fast path); the cloud keeps the first final status.

Expiry is judged on the hub's clock when it is trusted (NTP or RTC), else on the cloud's `server_time` carried
forward on the monotonic clock: a box that booted in 1970 neither runs stale commands nor refuses fresh ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from hub import sysinfo
from hub.bus import EventBus
from hub.config.settings import Settings
from hub.service import Service
from hub.store import RecordClass, Store, Transaction
from hub.sync.commands import Dispatcher, Failed, Hooks, Outcome, Rejected, validate
from hub.sync.media_fetch import MediaFetcher
from hub.sync.transport import CloudTransport, InsecureURLError, TokenLike, describe_error
from hub.sync.uploader import CloudError, full_jitter

log = logging.getLogger(__name__)

FETCH_PATH = "/api/v1/commands"
RESULT_PATH = "/api/v1/commands/{id}/result"
ENROLLMENT_KEY = "install.enrollment"  # the install wizard's one-time code (hub/web/wizard.py)
INTERRUPTED = "interrupted by a restart while it was being applied; not run again"
PRUNE_EVERY = 50


def clock_trusted() -> bool:
    """NTP-synchronised, or a hardware clock to boot from (hub/sysinfo.py)."""
    sync = sysinfo.time_sync()
    return bool(sync.get("synchronised")) or sync.get("source") == "rtc"


def _plain(value: Any) -> Any:
    """A service's answer as plain JSON (dates and the like as strings), so the store can always record it."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


class CommandInbox(Service):
    name = "commands"

    def __init__(
        self,
        store: Store,
        settings: Settings,
        token: TokenLike,
        bus: EventBus,
        hooks: Hooks | None = None,
        *,
        rng: random.Random | None = None,
        trusted: Callable[[], bool] = clock_trusted,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.sync = settings.sync
        self.config = settings.commands
        self.bus = bus
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.trusted = trusted
        self.wall = wall
        self.transport = CloudTransport(
            settings.sync, token, bus, limit=2, timeout_s=self.config.poll_wait_s + settings.sync.timeout_s
        )
        self.fetcher = MediaFetcher(
            self.transport, Path(settings.hub.data_dir) / "media-cache", self.config.media_max_mb * 1024 * 1024
        )
        self.dispatcher = Dispatcher(
            bus,
            store,
            settings.hub.id,
            self.transport,
            self.fetcher,
            hooks or Hooks(),
            timeout_s=self.config.dispatch_timeout_s,
        )
        self.base_url = self.transport.base_url
        self.enabled = self.config.enabled and self.base_url is not None
        self.link = "offline" if not self.enabled else "starting"
        self.cursor = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_poll_at: float | None = None
        self.retry_at: float | None = None
        self.counts = {"applied": 0, "rejected": 0, "expired": 0, "failed": 0}
        self.duplicates = 0
        self.interrupted = 0
        self.last_command: dict[str, Any] | None = None
        self.enroll_error: str | None = None
        self._enroll_after = 0.0
        self._finished_since_prune = 0

    # ---- the loop ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.cursor = await asyncio.to_thread(self._read_cursor)

    async def stop(self) -> None:
        await self.transport.close()

    async def run(self) -> None:
        if not self.enabled:
            while True:  # offline by configuration
                self.beat()
                await asyncio.sleep(30)
        for row in await self.store.write(self._recover_op):
            await self._report(row)
        while True:
            self.beat()
            await self._enroll_pending()
            try:
                commands, server_time, received = await self._poll()
            except CloudError as exc:
                await self._back_off(exc)
                continue
            self.failures = 0
            self.retry_at = None
            self.link = "connected"
            for raw in commands:
                await self.handle(raw, server_time, received)

    async def _poll(self) -> tuple[list[Any], float | None, float]:
        self.last_poll_at = time.time()
        # The first poll (and the first after a failure) answers at once: the link is known to work, and what
        # queued meanwhile is fetched, without waiting out a long poll.
        wait = self.config.poll_wait_s if self.link == "connected" else 0.0
        query = {"after": str(self.cursor), "wait": f"{wait:g}"}
        try:
            async with self.transport.request("GET", FETCH_PATH, params=query) as response:
                received = time.monotonic()
                text = await response.text()
                if response.status != 200:
                    hint = ""
                    if response.status == 401:
                        hint = " (the box is not enrolled, or its token was replaced: `hub enroll CODE`)"
                    raise CloudError(f"cloud answered GET {FETCH_PATH}: HTTP {response.status} {text[:200]}{hint}")
        except InsecureURLError as exc:
            raise CloudError(str(exc)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise CloudError(describe_error(exc, self.sync)) from None
        try:
            body = json.loads(text)
            commands = body["commands"]
            if not isinstance(commands, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise CloudError(f"cloud answered GET {FETCH_PATH} without a commands list: {text[:200]}") from None
        server_time = body.get("server_time")
        if not isinstance(server_time, int | float) or isinstance(server_time, bool):
            server_time = None
        return commands, server_time, received

    async def _back_off(self, exc: CloudError) -> None:
        self.failures += 1
        self.last_error = str(exc)
        self.link = "failing"
        delay = full_jitter(self.failures - 1, self.sync.backoff_base_s, self.sync.backoff_max_s, self.rng)
        self.retry_at = time.time() + delay
        log.warning("commands: %s; retry %d in %.1fs", exc, self.failures, delay)
        await asyncio.sleep(delay)

    # ---- one command ------------------------------------------------------------------------------------------------

    def now(self, server_time: float | None, received: float) -> float:
        """What time it is for judging expiry (see the module docstring)."""
        if server_time is None or self.trusted():
            return self.wall()
        return server_time + (time.monotonic() - received)

    async def handle(self, raw: Any, server_time: float | None, received: float) -> str | None:
        """Apply one delivered command (or recognise it as handled already); its final status, or None."""
        command_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(command_id, int) or isinstance(command_id, bool) or command_id < 1:
            log.error("commands: the cloud sent a command without a valid id: %.200r", raw)
            return None
        if command_id <= self.cursor:
            self.duplicates += 1
            log.info("commands: %d delivered again; already handled", command_id)
            return None
        assert isinstance(raw, dict)
        kind = raw.get("kind")
        args = raw.get("args", {})
        expires_at = raw.get("expires_at")
        created_at = raw.get("created_at")
        row = {
            "id": command_id,
            "kind": kind if isinstance(kind, str) else repr(kind)[:100],
            "args": args,
            "created_at": created_at if isinstance(created_at, int | float) else None,
            "expires_at": expires_at if isinstance(expires_at, int | float) else None,
        }
        now = self.now(server_time, received)
        if isinstance(expires_at, int | float) and not isinstance(expires_at, bool) and expires_at < now:
            late = now - expires_at
            return await self._finish(row, "expired", None, f"expired {late:.0f} s before it could be applied")
        try:
            parsed = validate(kind, args)
        except Rejected as exc:
            return await self._finish(row, "rejected", None, str(exc))
        await self.store.write(lambda tx: self._insert(tx, row, "applying"))
        self.cursor = max(self.cursor, command_id)
        self.bus.publish("commands.applying", id=command_id, kind=row["kind"])
        try:
            async with asyncio.timeout(self.config.dispatch_timeout_s):
                outcome = await self.dispatcher.apply(command_id, row["kind"], parsed)
        except Rejected as exc:
            return await self._finish(row, "rejected", None, str(exc))
        except Failed as exc:
            return await self._finish(row, "failed", None, str(exc))
        except TimeoutError:
            limit = self.config.dispatch_timeout_s
            return await self._finish(row, "failed", None, f"did not finish within {limit:g} s")
        except Exception as exc:  # a bug in a handler must not stop the inbox
            log.exception("commands: %d (%s) failed", command_id, row["kind"])
            return await self._finish(row, "failed", None, f"{type(exc).__name__}: {exc}")
        return await self._finish(row, "applied", outcome, None)

    def _insert(self, tx: Transaction, row: dict[str, Any], status: str) -> None:
        tx.conn.execute(
            "INSERT INTO commands (id, kind, status, args, created_at, expires_at, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                row["id"],
                row["kind"],
                status,
                json.dumps(row["args"], ensure_ascii=False, default=str),
                row["created_at"],
                row["expires_at"],
                time.time(),
            ),
        )

    async def _finish(self, row: dict[str, Any], status: str, outcome: Outcome | None, error: str | None) -> str:
        result = _plain(outcome.result) if outcome is not None else None
        report = {"id": row["id"], "kind": row["kind"], "status": status}
        if status == "applied":
            report["result"] = result
        else:
            report["error"] = error

        def op(tx: Transaction) -> None:
            self._insert(tx, row, status)
            tx.conn.execute(
                "UPDATE commands SET status = ?, result = ?, error = ?, finished_at = ? WHERE id = ?",
                (
                    status,
                    None if result is None else json.dumps(result, ensure_ascii=False),
                    error,
                    time.time(),
                    row["id"],
                ),
            )
            tx.append(RecordClass.OPERATIONS, "command.result", report)
            if outcome is not None and outcome.in_transaction is not None:
                outcome.in_transaction(tx)

        await self.store.write(op)
        self.cursor = max(self.cursor, row["id"])
        self.counts[status] += 1
        self.last_command = {**report, "at": time.time()}
        if status == "applied":
            log.info("commands: %d %s applied", row["id"], row["kind"])
        else:
            log.warning("commands: %d %s %s: %s", row["id"], row["kind"], status, error)
        self.bus.publish("commands.finished", **report)
        await self._report(report)
        self._finished_since_prune += 1
        if self._finished_since_prune >= PRUNE_EVERY:
            self._finished_since_prune = 0
            await self.store.write(self._prune_op)
        if outcome is not None and outcome.after is not None:
            outcome.after()
        return status

    async def _report(self, report: dict[str, Any]) -> None:
        """The fast path; if it fails, the outbox record gets there anyway."""
        body = {k: v for k, v in report.items() if k in ("status", "result", "error")}
        path = RESULT_PATH.format(id=report["id"])
        try:
            async with self.transport.request(
                "POST", path, data=json.dumps(body, ensure_ascii=False).encode(), timeout=aiohttp.ClientTimeout(10)
            ) as response:
                if response.status != 200:
                    why = f"HTTP {response.status}"
                    log.info("commands: result of %s not taken (%s); the outbox carries it", report["id"], why)
        except (aiohttp.ClientError, TimeoutError, OSError, InsecureURLError) as exc:
            log.info("commands: result of %s not posted (%s); the outbox carries it", report["id"], exc)

    # ---- the store ----------------------------------------------------------------------------------------------

    def _read_cursor(self) -> int:
        rows = self.store.query("SELECT coalesce(max(id), 0) FROM commands")
        return int(rows[0][0])

    def _recover_op(self, tx: Transaction) -> list[dict[str, Any]]:
        """Commands a previous run left 'applying': reported failed, never run again."""
        rows = tx.conn.execute("SELECT id, kind FROM commands WHERE status = 'applying' ORDER BY id").fetchall()
        reports = []
        for command_id, kind in rows:
            tx.conn.execute(
                "UPDATE commands SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                (INTERRUPTED, time.time(), command_id),
            )
            report = {"id": command_id, "kind": kind, "status": "failed", "error": INTERRUPTED}
            tx.append(RecordClass.OPERATIONS, "command.result", report)
            reports.append(report)
        self.interrupted += len(reports)
        return reports

    def _prune_op(self, tx: Transaction) -> None:
        keep = self.config.keep_commands
        tx.conn.execute(
            "DELETE FROM commands WHERE status != 'applying' AND id < "
            "(SELECT min(id) FROM (SELECT id FROM commands ORDER BY id DESC LIMIT ?))",
            (keep,),
        )

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT id, kind, status, result, error, received_at, finished_at, expires_at FROM commands "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": cid,
                "kind": kind,
                "status": status,
                "result": json.loads(result) if result else None,
                "error": error,
                "received_at": received,
                "finished_at": finished,
                "expires_at": expires,
            }
            for cid, kind, status, result, error, received, finished, expires in rows
        ]

    # ---- enrollment from the install wizard --------------------------------------------------------------------

    async def _enroll_pending(self) -> None:
        pending = self.store.get_state(ENROLLMENT_KEY)
        if not isinstance(pending, dict) or not pending.get("code") or time.monotonic() < self._enroll_after:
            return
        from hub.enroll import EnrollError, enroll

        try:
            done = await enroll(self.settings, str(pending["code"]))
        except EnrollError as exc:
            message = self.enroll_error = str(exc)
            if exc.status is not None and 400 <= exc.status < 500:
                # The code itself was refused: forget it (it is one-time anyway); the technician enters a new one.
                await self.store.write(lambda tx: self._forget_code(tx, message))
            else:
                self._enroll_after = time.monotonic() + 60.0
            log.warning("commands: enrollment with the install wizard's code failed: %s", exc)
            return
        self.enroll_error = None
        await self.store.write(lambda tx: self._forget_code(tx, None))
        log.info("commands: enrolled as %s with the install wizard's code", done.hub_id)

    @staticmethod
    def _forget_code(tx: Transaction, error: str | None) -> None:
        tx.conn.execute("DELETE FROM state WHERE key = ?", (ENROLLMENT_KEY,))
        tx.append(RecordClass.SECURITY, "hub.enrolled" if error is None else "hub.enroll_failed", {"error": error})

    # ---- health -----------------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "cloud_url": self.base_url,
            "enabled": self.enabled,
            "link": self.link,
            "token": "set" if self.transport.token else "missing",
            "cursor": self.cursor,
            "counts": dict(self.counts),
            "duplicates_ignored": self.duplicates,
            "interrupted_by_restart": self.interrupted,
            "last_command": self.last_command,
            "last_poll_at": self.last_poll_at,
            "last_error": self.last_error if self.failures else None,
            "consecutive_failures": self.failures,
            "retry_at": self.retry_at,
            "enroll_error": self.enroll_error,
        }

    def problems(self) -> list[str]:
        out = []
        if self.enabled and not self.transport.token:
            out.append("not enrolled: no cloud token (run `hub enroll CODE` or enter the code on the Cloud page)")
        if self.failures:
            out.append(f"command inbox failing ({self.failures} tries): {self.last_error}")
        if self.enroll_error:
            out.append(f"enrollment failed: {self.enroll_error}")
        return out


__all__ = ["CommandInbox", "clock_trusted"]
