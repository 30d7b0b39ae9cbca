"""The real backend: `nft` (nftables' command-line tool). The only place in the hub that runs it.

Writes go through `nft -f -` (one transaction per call: all of it happens or none of it); reads through
`nft -j list table` (JSON). Each call is a short subprocess run off the event loop by asyncio.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from typing import Any

from drivers.base import DriverHealth
from drivers.firewall.interface import ClientElement, ClientState, FirewallError, FirewallState
from drivers.firewall.ruleset import FirewallConfig, admit_commands, render_table, revoke_commands

log = logging.getLogger(__name__)

NFT_TIMEOUT_S = 10.0


def nft_path() -> str | None:
    """nft on PATH, or in /usr/sbin (not on a plain user's PATH on Debian)."""
    found = shutil.which("nft")
    if found:
        return found
    return next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)


async def run_nft(args: list[str], stdin: str | None = None, nft: str | None = None) -> str:
    """Run nft; its stdout, or FirewallError with what it printed."""
    binary = nft or nft_path()
    if binary is None:
        raise FirewallError("nft not found (install Debian's nftables package)")
    proc = await asyncio.create_subprocess_exec(
        binary,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), timeout=NFT_TIMEOUT_S
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise FirewallError(f"nft {' '.join(args)} did not finish within {NFT_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        text = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
        raise FirewallError(f"nft {' '.join(args)} failed ({proc.returncode}): {text[:800]}")
    return out.decode(errors="replace")


def parse_table(document: dict[str, Any]) -> FirewallState:
    """`nft -j list table inet <ours>` -> the admitted clients with their time left and counters."""
    ups: dict[str, tuple[str, float, int]] = {}
    downs: dict[str, int] = {}
    for item in document.get("nftables", []):
        s = item.get("set") if isinstance(item, dict) else None
        if not s:
            continue
        for entry in s.get("elem", []) or []:
            elem = entry.get("elem", entry) if isinstance(entry, dict) else {"val": entry}
            val = elem.get("val")
            counter = elem.get("counter") or {}
            expires = float(elem.get("expires", elem.get("timeout", 0)))
            if s.get("name") == "clients" and isinstance(val, dict) and "concat" in val:
                ip, mac = val["concat"]
                ups[str(ip)] = (str(mac), expires, int(counter.get("bytes", 0)))
            elif s.get("name") == "clients_down" and isinstance(val, str):
                downs[val] = int(counter.get("bytes", 0))
    clients = {
        ip: ClientState(ip=ip, mac=mac, expires_s=expires, bytes_up=up, bytes_down=downs.get(ip, 0))
        for ip, (mac, expires, up) in ups.items()
    }
    return FirewallState(present=True, clients=clients)


class NftFirewall:
    kind = "nft"

    def __init__(self, config: FirewallConfig, nft: str | None = None) -> None:
        self.config = config
        self.nft = nft
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.loaded_at: float | None = None
        self.commands = 0
        self.table_present: bool | None = None

    async def _run(self, args: list[str], stdin: str | None = None) -> str:
        self.commands += 1
        try:
            out = await run_nft(args, stdin, self.nft)
        except FirewallError as exc:
            self.last_error, self.last_error_at = str(exc), time.time()
            raise
        return out

    async def load(self, clients: list[ClientElement]) -> None:
        await self._run(["-f", "-"], render_table(self.config, clients))
        self.loaded_at = time.time()
        self.table_present = True
        self.last_error = None

    async def admit(self, client: ClientElement) -> None:
        await self._run(["-f", "-"], admit_commands(self.config.table, client))

    async def revoke(self, ip: str, mac: str) -> None:
        await self._run(["-f", "-"], revoke_commands(self.config.table, ip, mac))

    async def read(self) -> FirewallState:
        try:
            out = await run_nft(["-j", "list", "table", "inet", self.config.table], nft=self.nft)
        except FirewallError as exc:
            if "No such file or directory" in str(exc):
                self.table_present = False
                return FirewallState(present=False)
            self.last_error, self.last_error_at = str(exc), time.time()
            raise
        self.table_present = True
        return parse_table(json.loads(out))

    async def remove(self) -> None:
        await self._run(["-f", "-"], f"table inet {self.config.table}\ndelete table inet {self.config.table}\n")
        self.table_present = False

    def health(self) -> DriverHealth:
        ok = self.table_present is not False and self.last_error is None
        return DriverHealth(
            ok=ok,
            state="loaded" if self.table_present else ("absent" if self.table_present is False else "unknown"),
            detail={
                "backend": self.kind,
                "table": f"inet {self.config.table}",
                "table_present": self.table_present,
                "loaded_at": self.loaded_at,
                "nft_commands": self.commands,
            },
            last_error=self.last_error,
        )


def table_status(table: str = "", timeout: float = 5.0) -> tuple[bool | None, str]:
    """For `hub doctor` (synchronous, read-only): is our table loaded? (True/False, or None if nft cannot tell:
    not installed, or no CAP_NET_ADMIN), with nft's words."""
    import subprocess

    from drivers.firewall.ruleset import TABLE

    binary = nft_path()
    if binary is None:
        return None, "nft not found (install Debian's nftables package)"
    try:
        result = subprocess.run(
            [binary, "list", "table", "inet", table or TABLE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nft did not run: {exc}"
    if result.returncode == 0:
        return True, f"{result.stdout.count(' . ')} admitted client(s) in the table"
    err = result.stderr.strip()
    if "No such file or directory" in err:
        return False, "table not loaded"
    return None, err.splitlines()[-1] if err else f"nft exited with {result.returncode}"
