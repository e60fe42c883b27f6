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


def latest(stamps) -> str | None:
    """Of ``stamps`` (text), the one :func:`receive` would move the clock furthest for: the
    largest (wall time, counter) of those that parse; None if none does.  Receiving it alone
    ends where receiving each in turn would (the rule is a maximum)."""
    best, best_key = None, None
    for text in stamps:
        try:
            s = Stamp.parse(text)
        except (AttributeError, ValueError):
            continue
        if best_key is None or (s.wall_ms, s.counter) > best_key:
            best, best_key = text, (s.wall_ms, s.counter)
    return best


def tick(db, node: str, now_s: float, state: str | None = None) -> Stamp:
    """Next local stamp for ``node``; call inside a transaction.

    One UPSERT ... RETURNING: the physical time wins when it is ahead of the last
    stamp, else the last wall time is kept and the counter moves on (so a clock that
    steps backwards never makes stamps go backwards).  A counter at 99,999 moves the
    stamp to the next millisecond instead of growing a sixth digit.  ``state`` names the
    row the clock is kept in (default: ``node``): the cloud keeps one per hotel, so
    writers of different hotels never wait for one another's clock row.
    """
    wall, counter = db.conn.execute(
        "INSERT INTO hlc_state(node, wall_ms, counter) VALUES (?, ?, 0) "
        "ON CONFLICT(node) DO UPDATE SET "  # (right-hand sides see the old row; SQL portable to PostgreSQL)
        " counter = CASE WHEN excluded.wall_ms > hlc_state.wall_ms OR hlc_state.counter >= ? THEN 0"
        "                ELSE hlc_state.counter + 1 END,"
        " wall_ms = CASE WHEN excluded.wall_ms > hlc_state.wall_ms THEN excluded.wall_ms"
        "                WHEN hlc_state.counter >= ? THEN hlc_state.wall_ms + 1 ELSE hlc_state.wall_ms END "
        "RETURNING wall_ms, counter",
        [state or node, int(now_s * 1000), MAX_COUNTER, MAX_COUNTER],
    ).fetchone()
    return Stamp(wall, counter, node)


def receive(db, node: str, remote: str, now_s: float) -> None:
    """Merge a stamp seen from another node: later local stamps will sort after it.

    Kulkarni's receive rule, without issuing a stamp: the state moves to the
    maximum of (local state, remote stamp, physical time).  Call inside a
    transaction.  Unparseable stamps are ignored (they were validated upstream).

    One UPSERT that takes the larger of the stored state and the candidate (the remote
    stamp or the physical time, whichever is later) in the database itself: a read, then
    a write, would let two transactions that read the same state write it back smaller
    (PostgreSQL under READ COMMITTED, the cloud with several workers).  ``node`` is the
    row the clock is kept in (the cloud's per-hotel rows: :func:`tick`'s ``state``).
    """
    try:
        r = Stamp.parse(remote)
    except ValueError:
        return
    now_ms = int(now_s * 1000)
    wall, counter = (r.wall_ms, r.counter) if r.wall_ms >= now_ms else (now_ms, 0)
    if counter >= MAX_COUNTER:  # keep the counter's five digits: the string order depends on them
        wall, counter = wall + 1, 0
    db.conn.execute(
        "INSERT INTO hlc_state(node, wall_ms, counter) VALUES (?, ?, ?) ON CONFLICT(node) DO UPDATE SET"
        " wall_ms = CASE WHEN excluded.wall_ms > hlc_state.wall_ms THEN excluded.wall_ms ELSE hlc_state.wall_ms END,"
        " counter = CASE WHEN excluded.wall_ms > hlc_state.wall_ms THEN excluded.counter"
        "                WHEN excluded.wall_ms = hlc_state.wall_ms AND excluded.counter > hlc_state.counter"
        "                THEN excluded.counter ELSE hlc_state.counter END",
        [node, wall, counter])
