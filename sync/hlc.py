"""Hybrid logical clock (Kulkarni et al., 2014), persisted in the local store.

A stamp is ``WWWWWWWWWWWWWWW-CCCCC-node``: wall milliseconds and a counter, both
zero-padded so that stamps sort as strings in causal order.  The state is kept
in ``hlc_state`` and advanced inside the caller's transaction, so stamps stay
monotonic across restarts even when the wall clock steps backwards.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Stamp:
    wall_ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall_ms:015d}-{self.counter:05d}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> Stamp:
        wall, counter, node = text.split("-", 2)
        return cls(int(wall), int(counter), node)


def tick(db, node: str, now_s: float) -> Stamp:
    """Next local stamp for ``node``; call inside a transaction."""
    row = db.execute("SELECT wall_ms, counter FROM hlc_state WHERE node = ?", [node]).fetchone()
    last_wall, last_counter = row if row else (0, 0)
    physical = int(now_s * 1000)
    if physical > last_wall:
        wall, counter = physical, 0
    else:
        wall, counter = last_wall, last_counter + 1
    db.execute(
        "INSERT INTO hlc_state(node, wall_ms, counter) VALUES (?, ?, ?) "
        "ON CONFLICT(node) DO UPDATE SET wall_ms = excluded.wall_ms, counter = excluded.counter",
        [node, wall, counter],
    )
    return Stamp(wall, counter, node)
