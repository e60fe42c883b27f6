"""One hold-up is one scan: a code counts once it is read ``reads`` times within
``window_ms`` (2 reads = two consecutive frames at camera rate), and the same payload is
then ignored for ``cooldown_seconds``."""

from __future__ import annotations

import time
from collections import deque


class StableReads:
    def __init__(self, reads: int = 2, window_ms: float = 500.0, cooldown_seconds: float = 5.0,
                 clock=time.monotonic):
        self.reads, self.window, self.cooldown, self.clock = reads, window_ms / 1000, cooldown_seconds, clock
        self.seen: dict[str, deque] = {}
        self.fired: dict[str, float] = {}

    def offer(self, texts: list[str]) -> list[str]:
        """The payloads of this frame that just became a scan."""
        now = self.clock()
        out = []
        for text in texts:
            if now - self.fired.get(text, -1e18) < self.cooldown:
                continue
            q = self.seen.setdefault(text, deque())
            q.append(now)
            while q and now - q[0] > self.window:
                q.popleft()
            if len(q) >= self.reads:
                self.fired[text] = now
                del self.seen[text]
                out.append(text)
        # forget what has not been seen for a while
        for text in [t for t, q in self.seen.items() if not q or now - q[-1] > self.window]:
            del self.seen[text]
        for text in [t for t, at in self.fired.items() if now - at >= self.cooldown]:
            del self.fired[text]
        return out
