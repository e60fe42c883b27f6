"""Failed-attempt limiter: too many failures from one client within a window.

Only failures count, so a guest who scans correctly is never slowed down,
while somebody trying tokens one after another is stopped after
``max_failures`` within ``window_seconds``.  In memory, per process, bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from .errors import RateLimited


class FailureLimiter:
    def __init__(self, max_failures: int, window_seconds: float, max_clients: int = 10_000):
        self.max_failures = max_failures
        self.window = window_seconds
        self.max_clients = max_clients
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self._fails.get(client)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def check(self, client: str, now: float) -> None:
        """Raise :class:`RateLimited` if ``client`` is over its failure budget."""
        with self._lock:
            q = self._recent(client, now)
            if len(q) >= self.max_failures:
                retry = max(1, int(q[0] + self.window - now) + 1)
                raise RateLimited("too many failed scans; wait a moment and try again",
                                  {"retryAfter": retry})

    def fail(self, client: str, now: float) -> None:
        with self._lock:
            q = self._recent(client, now)
            q.append(now)
            self._fails[client] = q
            self._fails.move_to_end(client)
            while len(self._fails) > self.max_clients:
                self._fails.popitem(last=False)
