"""Hybrid logical clock (Kulkarni et al., 2014), persisted in the local store.

A stamp is ``WWWWWWWWWWWWWWW-CCCCC-node``: wall milliseconds and a counter, both
zero-padded so that stamps sort as strings in causal order.  The state is kept
in ``hlc_state`` and advanced inside the caller's transaction, so stamps stay
monotonic across restarts even when the wall clock steps backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the counter is five digits wide; past it the stamp moves to the next millisecond
MAX_COUNTER = 99_999


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
    """Next local stamp for ``node``; call inside a transaction.

    One UPSERT ... RETURNING: the physical time wins when it is ahead of the last
    stamp, else the last wall time is kept and the counter moves on (so a clock that
    steps backwards never makes stamps go backwards).  A counter at 99,999 moves the
    stamp to the next millisecond instead of growing a sixth digit.
    """
    wall, counter = db.conn.execute(
        "INSERT INTO hlc_state(node, wall_ms, counter) VALUES (?, ?, 0) "
        "ON CONFLICT(node) DO UPDATE SET "  # (right-hand sides see the old row; SQL portable to PostgreSQL)
        " counter = CASE WHEN excluded.wall_ms > hlc_state.wall_ms OR hlc_state.counter >= ? THEN 0"
        "                ELSE hlc_state.counter + 1 END,"
        " wall_ms = CASE WHEN excluded.wall_ms > hlc_state.wall_ms THEN excluded.wall_ms"
        "                WHEN hlc_state.counter >= ? THEN hlc_state.wall_ms + 1 ELSE hlc_state.wall_ms END "
        "RETURNING wall_ms, counter",
        [node, int(now_s * 1000), MAX_COUNTER, MAX_COUNTER],
    ).fetchone()
    return Stamp(wall, counter, node)


def receive(db, node: str, remote: str, now_s: float) -> None:
    """Merge a stamp seen from another node: later local stamps will sort after it.

    Kulkarni's receive rule, without issuing a stamp: the state moves to the
    maximum of (local state, remote stamp, physical time).  Call inside a
    transaction.  Unparseable stamps are ignored (they were validated upstream).
    """
    try:
        r = Stamp.parse(remote)
    except ValueError:
        return
    row = db.conn.execute("SELECT wall_ms, counter FROM hlc_state WHERE node = ?", [node]).fetchone()
    lw, lc = row if row else (0, 0)
    wall = max(lw, r.wall_ms, int(now_s * 1000))
    if wall == lw == r.wall_ms:
        counter = max(lc, r.counter)
    elif wall == lw:
        counter = lc
    elif wall == r.wall_ms:
        counter = r.counter
    else:
        counter = 0
    if counter >= MAX_COUNTER:  # keep the counter's five digits: the string order depends on them
        wall, counter = wall + 1, 0
    db.conn.execute("INSERT INTO hlc_state(node, wall_ms, counter) VALUES (?, ?, ?) ON CONFLICT(node)"
                    " DO UPDATE SET wall_ms = excluded.wall_ms, counter = excluded.counter",
                    [node, wall, counter])
