"""Technician sessions and the login throttle.

Sessions live in memory: a restart of the hub logs the technician out, which is the safe side. The cookie holds
a random token; the server keeps only its SHA-256, so a memory dump in a diagnostics bundle could not be replayed.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

IDLE_TIMEOUT_S = 30 * 60
ABSOLUTE_TIMEOUT_S = 12 * 3600


@dataclass(slots=True)
class Session:
    user: str
    csrf: str
    address: str
    created: float
    seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # messages shown once on the next page


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(
        self,
        idle_s: float = IDLE_TIMEOUT_S,
        absolute_s: float = ABSOLUTE_TIMEOUT_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self._now = now
        self._by_digest: dict[str, Session] = {}

    def create(self, user: str, address: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = self._now()
        session = Session(user, secrets.token_urlsafe(32), address, now, now)
        self._by_digest[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        key = _digest(token)
        session = self._by_digest.get(key)
        if session is None:
            return None
        now = self._now()
        if now - session.seen > self.idle_s or now - session.created > self.absolute_s:
            del self._by_digest[key]
            return None
        session.seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_digest.pop(_digest(token), None)

    def end_all(self) -> None:
        """After a password change every other browser must log in again."""
        self._by_digest.clear()

    def count(self) -> int:
        now = self._now()
        return sum(1 for s in self._by_digest.values() if now - s.seen <= self.idle_s)


@dataclass(slots=True)
class _Attempts:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    lockouts: int = 0


class LoginThrottle:
    """Per client address: at most `max_failures` wrong passwords in `window_s`; then the address is locked out,
    for `lockout_s` the first time and twice as long each time again (up to `max_lockout_s`). A correct password
    does not get through a lockout: otherwise the lockout would only slow a guesser down, not stop one."""

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 15 * 60,
        lockout_s: float = 5 * 60,
        max_lockout_s: float = 3600,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.max_lockout_s = max_lockout_s
        self._now = now
        self._by_address: dict[str, _Attempts] = {}
        self.total_failures = 0
        self.total_lockouts = 0

    def locked_for(self, address: str) -> float:
        """Seconds left of this address's lockout; 0 when it may try."""
        attempts = self._by_address.get(address)
        if attempts is None:
            return 0.0
        return max(0.0, float(attempts.locked_until - self._now()))

    def failed(self, address: str) -> float:
        """Count a wrong password; returns the lockout (seconds) it caused, 0 if none."""
        now = self._now()
        self.total_failures += 1
        attempts = self._by_address.setdefault(address, _Attempts())
        attempts.failures = [t for t in attempts.failures if now - t < self.window_s] + [now]
        if len(attempts.failures) < self.max_failures:
            return 0.0
        duration = float(min(self.max_lockout_s, self.lockout_s * 2.0**attempts.lockouts))
        attempts.lockouts += 1
        attempts.locked_until = now + duration
        attempts.failures = []
        self.total_lockouts += 1
        if len(self._by_address) > 10_000:  # a flood of spoofed addresses must not grow memory without end
            self._by_address = {a: s for a, s in self._by_address.items() if s.locked_until > now}
        return duration

    def succeeded(self, address: str) -> None:
        attempts = self._by_address.get(address)
        if attempts is not None:
            attempts.failures = []
            attempts.lockouts = 0

    def remaining(self, address: str) -> int:
        attempts = self._by_address.get(address)
        now = self._now()
        recent = [t for t in attempts.failures if now - t < self.window_s] if attempts else []
        return self.max_failures - len(recent)
