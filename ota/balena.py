"""balenaOS mode: the balena supervisor owns updates; the hub only holds its update lock while it broadcasts.

Detection: the supervisor's environment variables (BALENA_SUPERVISOR_ADDRESS, BALENA_DEVICE_UUID, BALENA=1)
are present in the container. Then the hub installs no slots.

The update lock (docs.balena.io, "Update locks"): the *lockfile* mechanism holds application updates and
config-change reboots while the file `/tmp/balena/updates.lock` (BALENA_APP_LOCK_PATH) exists; it must be created
exclusively (O_CREAT|O_EXCL), because the supervisor creates the same file itself before it kills the app: if
creating fails, the supervisor (or another holder) has it. The *flock* mechanism (an exclusive flock on the same
file) holds host-OS update reboots; we take both while we hold the file. Releasing = unlinking the file we created.
Standard library only (the supervisor API is plain HTTP on the device); balena-sdk is for fleet-side tools only
(ota/balena_fleet.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LOCK_PATH = Path("/tmp/balena/updates.lock")  # noqa: S108 - the path the balena supervisor defines
OWNER_TAG = "village-hub"


@dataclass(frozen=True)
class BalenaEnv:
    supervisor_address: str | None
    api_key: str | None
    device_uuid: str | None
    lock_path: Path
    app_name: str | None = None


def detect(env: Mapping[str, str] | None = None) -> BalenaEnv | None:
    """The supervisor's environment, or None when the hub does not run under balenaOS."""
    env = os.environ if env is None else env
    if not (env.get("BALENA_SUPERVISOR_ADDRESS") or env.get("BALENA_DEVICE_UUID") or env.get("BALENA") == "1"):
        return None
    return BalenaEnv(
        supervisor_address=env.get("BALENA_SUPERVISOR_ADDRESS"),
        api_key=env.get("BALENA_SUPERVISOR_API_KEY"),
        device_uuid=env.get("BALENA_DEVICE_UUID"),
        lock_path=Path(env.get("BALENA_APP_LOCK_PATH") or DEFAULT_LOCK_PATH),
        app_name=env.get("BALENA_APP_NAME"),
    )


class UpdateLock:
    """The supervisor's update lock, taken and released by the hub (not reentrant; one holder per process)."""

    def __init__(self, path: Path = DEFAULT_LOCK_PATH) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.held_since: float | None = None
        self.last_refusal: str | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock; False (with `last_refusal` saying why) when someone else holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not self._stale_own_lock():
                self.last_refusal = f"{self.path} exists: the supervisor is updating, or another holder has it"
                return False
            self.path.unlink(missing_ok=True)
            return self.acquire()
        # flock too: host-OS update reboots wait for it (no-op where nobody checks it).
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{OWNER_TAG} {os.getpid()}\n".encode())
        self._fd = fd
        self.held_since = time.time()
        self.last_refusal = None
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
        self.held_since = None

    def _stale_own_lock(self) -> bool:
        """A lock file a previous hub process left (killed while broadcasting): ours to take back."""
        try:
            owner, pid = self.path.read_text().split()
        except (OSError, ValueError):
            return False
        if owner != OWNER_TAG or int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def supervisor_status(env: BalenaEnv, timeout: float = 5.0) -> dict[str, Any]:
    """The supervisor's view of the app (GET /v2/state/status): release, status of each container."""
    if not env.supervisor_address or not env.api_key:
        return {}
    query = urllib.parse.urlencode({"apikey": env.api_key})
    url = f"{env.supervisor_address.rstrip('/')}/v2/state/status?{query}"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the supervisor's local URL
        data = json.loads(response.read())
    return data if isinstance(data, dict) else {}
