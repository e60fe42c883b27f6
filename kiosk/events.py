"""An in-process publish/subscribe for what the screens show as it happens.

The camera's scan loop publishes each scan result here; the lobby screen's
server-sent-events stream (``/screen/events``) subscribes.  Each subscriber has
a small bounded queue: a slow or vanished browser loses old events, it never
blocks the scan loop.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

MAX_QUEUED = 32


class Bus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[queue.Queue] = []

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=MAX_QUEUED)
        with self._lock:
            self._subs.append(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._subs:
                self._subs.remove(q)

    def publish(self, event: dict[str, Any]) -> int:
        """Deliver to every subscriber; returns how many got it."""
        with self._lock:
            subs = list(self._subs)
        n = 0
        for q in subs:
            try:
                q.put_nowait(event)
                n += 1
            except queue.Full:  # drop the oldest, keep the newest
                try:
                    q.get_nowait()
                    q.put_nowait(event)
                    n += 1
                except (queue.Empty, queue.Full):
                    pass
        return n

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)
