"""Count failed sign-ins per user name and address, in memory, and refuse past a limit.

Per process: after a restart the counts start again, and two processes count apart. That
is enough to stop password guessing through the sign-in form, which is all it is for.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

_MAX_KEYS = 10_000  # bound memory whatever an attacker sends


class LoginThrottle:
    """Allow at most ``attempts`` failures per key within ``window``."""

    def __init__(self, attempts: int, window: timedelta) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[tuple[str, str], deque[datetime]] = {}
        self._lock = threading.Lock()

    def blocked(self, username: str, address: str, now: datetime) -> bool:
        """Return True when this user name from this address must wait."""
        with self._lock:
            recent = self._recent(_key(username, address), now)
            return recent is not None and len(recent) >= self.attempts

    def failed(self, username: str, address: str, now: datetime) -> None:
        """Count one failed sign-in."""
        key = _key(username, address)
        with self._lock:
            if key not in self._failures and len(self._failures) >= _MAX_KEYS:
                self._prune(now)
            recent = self._recent(key, now)
            if recent is None:
                recent = self._failures[key] = deque(maxlen=self.attempts)
            recent.append(now)

    def succeeded(self, username: str, address: str) -> None:
        """Forget the failures of a user name that has just signed in from ``address``."""
        with self._lock:
            self._failures.pop(_key(username, address), None)

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime] | None:
        recent = self._failures.get(key)
        if recent is None:
            return None
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if not recent:
            del self._failures[key]
            return None
        return recent

    def _prune(self, now: datetime) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) >= _MAX_KEYS:
            self._failures.pop(next(iter(self._failures)))


def _key(username: str, address: str) -> tuple[str, str]:
    return (username.strip().lower()[:64], address)
