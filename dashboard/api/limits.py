"""Count requests per API token in a sliding window, in memory, and say how long to wait.

Per process, like the sign-in throttle (``dashboard.ratelimit``), which counts failures
only and cannot say when a key is free again; ``Retry-After`` needs that.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import datetime, timedelta


class RequestLimiter:
    """Allow at most ``limit`` requests per key within ``window``."""

    def __init__(self, limit: int, window: timedelta) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, key: str, now: datetime) -> int:
        """Count a request of ``key`` at ``now``; return 0, or whole seconds to wait if refused.

        A refused request is not counted, so a client that waits as told gets through.
        """
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil((hits[0] + self.window - now).total_seconds()))
            hits.append(now)
            return 0
