"""Outbox delivery logic: batching, per-entity order, backoff with jitter, dead letters.

The transport here is scripted (the network is not what these tests are
about); tests/test_sync_integration.py runs the same paths against real
processes.
"""

import random

import pytest
from settled import settled

from kiosk import outbox, store
from kiosk.clock import FakeClock
from sync import delivery
from sync.transport import TransportError


class Scripted:
    """Answers each entry by a rule; records what it was sent."""

    def __init__(self, rule=lambda e: {"status": "applied"}):
        self.rule = rule
        self.pushes: list[list[dict]] = []
        self.fail_with: TransportError | None = None

    def push(self, device_id, entries, idempotency_key):
        self.pushes.append(entries)
        if self.fail_with:
            raise self.fail_with
        return [dict(self.rule(e), key=e["key"]) for e in entries]


@pytest.fixture
def clock():
    return FakeClock(1_000.0)


@pytest.fixture
def db(tmp_path):
    return store.connect(tmp_path / "k.db")


def add(db, clock, entity, n=1, kind="ticket.created"):
    keys = []
    with store.transaction(db):
        for i in range(n):
            keys.append(outbox.enqueue(db, hotel_id="demo", kind=kind, entity_type="t", entity_id=entity,
                                       payload={"i": i}, node="k", now=clock.now()).idempotency_key)
    return keys


def states(db):
    return dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())


def pusher(db, t, clock, **kw):
    return delivery.Pusher(db, t, device_id="k", clock=clock, rng=random.Random(1), **kw)


def test_batches_in_order_and_marks_delivered(db, clock):
    keys = add(db, clock, "a", 5) + add(db, clock, "b", 5)
    t = Scripted()
    r = pusher(db, t, clock, batch_size=4).drain()
    assert r.applied == 10 and [len(p) for p in t.pushes] == [4, 4, 2]
    assert [e["key"] for p in t.pushes for e in p] == keys
    assert states(db) == {"delivered": 10}
    assert delivery.backlog(db, clock.now())["lastSuccessfulPushAt"] == clock.now()


def test_transport_failure_backs_off_exponentially_with_jitter(db, clock):
    add(db, clock, "a")
    t = Scripted()
    t.fail_with = TransportError("ConnectionError")
    p = pusher(db, t, clock, backoff_base=1, backoff_max=60)
    delays = []
    for _ in range(8):
        before = clock.now()
        assert p.push_once().error == "ConnectionError"
        nxt = db.execute("SELECT next_attempt_at FROM outbox").fetchone()[0]
        delays.append(nxt - before)
        assert p.push_once().sent == 0  # not due before its time
        clock.t = nxt
    for n, d in enumerate(delays, start=1):
        full = min(60, 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert delays[5] > delays[0] * 8
    assert states(db) == {"pending": 1}
    assert db.execute("SELECT attempts FROM outbox").fetchone()[0] == 8
    t.fail_with = None
    assert p.push_once().applied == 1


def test_a_waiting_entity_keeps_its_order_and_does_not_block_others(db, clock):
    a1, a2 = add(db, clock, "a", 2)
    b1 = add(db, clock, "b")[0]
    # the cloud will not take a1 yet: per protocol a2 (same entity) then gets retry too
    t = Scripted(lambda e: {"status": "retry" if e["entityId"] == "a" else "applied"})
    p = pusher(db, t, clock)
    r = p.push_once()
    assert (r.applied, r.retried) == (1, 2)
    add(db, clock, "c")
    # a2's own retry time might come before a1's; it must still wait for a1
    db.execute("UPDATE outbox SET next_attempt_at = ? WHERE idempotency_key = ?", [clock.now(), a2])
    t.rule = lambda e: {"status": "applied"}
    r = p.push_once()
    assert [e["entityId"] for e in t.pushes[-1]] == ["c"]
    clock.advance(10)
    r = p.push_once()
    assert [e["key"] for e in t.pushes[-1]] == [a1, a2]
    assert states(db) == {"delivered": 4}
    assert b1 in [e["key"] for e in t.pushes[0]]


def test_rejection_goes_to_dead_letters_with_reason_then_retry_or_drop(db, clock):
    bad = add(db, clock, "x")[0]
    add(db, clock, "y")
    t = Scripted(lambda e: {"status": "rejected", "reason": "INVALID_TRANSITION: done -> open"}
                 if e["entityId"] == "x" else {"status": "applied"})
    p = pusher(db, t, clock)
    p.drain()
    assert states(db) == {"dead": 1, "delivered": 1}
    dead = outbox.list_dead(db, ["demo"])
    assert [(d["idempotency_key"], d["last_error"]) for d in dead] == [(bad, "INVALID_TRANSITION: done -> open")]
    assert outbox.list_dead(db, ["harbor"]) == []
    assert p.push_once().sent == 0  # dead entries are not pushed again
    outbox.resolve_dead(db, dead[0]["id"], "retry", hotels=["demo"], by="admin:a", now=clock.now())
    t.rule = lambda e: {"status": "applied"}
    assert p.push_once().applied == 1
    assert states(db) == {"delivered": 2}
    add(db, clock, "z")
    t.rule = lambda e: {"status": "rejected", "reason": "nope"}
    p.push_once()
    z = outbox.list_dead(db, ["demo"])[0]["id"]
    with pytest.raises(Exception) as e:
        outbox.resolve_dead(db, z, "drop", hotels=["harbor"], by="admin:h", now=clock.now())
    assert e.value.code == "NOT_FOUND"
    outbox.resolve_dead(db, z, "drop", hotels=["demo"], by="admin:a", now=clock.now())
    assert states(db) == {"delivered": 2, "dropped": 1}
    events = [r[0] for r in db.execute("SELECT event FROM audit_log ORDER BY id")]
    assert events == ["outbox.retry", "outbox.drop"]


def test_too_large_halves_the_batch(db, clock):
    add(db, clock, "a", 8)
    t = Scripted()
    t.fail_with = TransportError("HTTP 413", too_large=True)
    p = pusher(db, t, clock, batch_size=8)
    p.push_once()
    assert p.batch_size == 4


def test_duplicate_counts_as_delivered_and_batch_key_is_stable(db, clock):
    add(db, clock, "a", 3)
    t = Scripted(lambda e: {"status": "duplicate", "original": {"status": "applied"}})
    assert pusher(db, t, clock).drain().duplicate == 3
    assert states(db) == {"delivered": 3}
    assert delivery.batch_key(["k1", "k2"]) == delivery.batch_key(["k1", "k2"]) != delivery.batch_key(["k2", "k1"])


def test_a_malformed_answer_is_a_retry_not_a_loss(db, clock):
    add(db, clock, "a", 2)
    t = Scripted(lambda e: {"status": "mystery"})
    r = pusher(db, t, clock).push_once()
    assert r.retried == 2 and states(db) == {"pending": 2}


class InBackground(Scripted):
    """Sends in the background as the HTTP transport does (``push_async``); notes, as each push
    starts, how many entries the kiosk has recorded delivered so far."""

    def __init__(self, db, rule=lambda e: {"status": "applied"}):
        super().__init__(rule)
        self.db = db
        self.delivered_at_start: list[int] = []

    def push_async(self, device_id, entries, idempotency_key):
        self.delivered_at_start.append(states(self.db).get("delivered", 0))
        return settled(self.push, device_id, entries, idempotency_key)


def test_the_next_batch_is_read_ahead_and_sent_before_the_last_answer_is_recorded(db, clock):
    keys = add(db, clock, "a", 5) + add(db, clock, "b", 4)
    t = InBackground(db)
    r = pusher(db, t, clock, batch_size=3).drain()
    assert r.applied == 9 and [e["key"] for p in t.pushes for e in p] == keys  # the order kept
    # each batch left while the one before it was still unrecorded: the kiosk's own work overlaps
    # the cloud's (the first batch finds nothing recorded; the last read ahead is the third)
    assert t.delivered_at_start == [0, 0, 3]
    assert states(db) == {"delivered": 9}


def test_a_batch_read_ahead_is_dropped_unsent_when_the_one_before_was_not_all_delivered(db, clock):
    a = add(db, clock, "a", 4)
    t = InBackground(db, lambda e: {"status": "retry"} if e["key"] == a[1] else {"status": "applied"})
    p = pusher(db, t, clock, batch_size=2)
    r = p.drain()
    # a[1] waits for its retry: a[2] and a[3], read ahead while it was at the cloud, must not pass it
    assert [[e["key"] for e in b] for b in t.pushes] == [a[:2]]
    assert (r.applied, r.retried) == (1, 1) and states(db) == {"delivered": 1, "pending": 3}
    clock.advance(10)
    t.rule = lambda e: {"status": "applied"}
    p.drain()
    assert [[e["key"] for e in b] for b in t.pushes[1:]] == [a[1:3], a[3:]]
    assert states(db) == {"delivered": 4}


def test_a_transport_error_drops_the_batch_read_ahead(db, clock):
    add(db, clock, "a", 4)
    t = InBackground(db)
    t.fail_with = TransportError("ConnectionError: down")
    r = pusher(db, t, clock, batch_size=2).drain()
    assert len(t.pushes) == 1 and r.error == "ConnectionError: down" and states(db) == {"pending": 4}


def test_reading_ahead_skips_the_batch_at_the_cloud_and_keeps_every_entity_waiting_in_order(db, clock):
    a = add(db, clock, "a", 2)
    b = add(db, clock, "b", 2)
    c = add(db, clock, "c")
    p = pusher(db, Scripted(), clock, batch_size=10)
    ids = dict(db.execute("SELECT idempotency_key, id FROM outbox").fetchall())
    # a[0] waits for a retry: a[1] waits behind it, whatever is skipped
    db.execute("UPDATE outbox SET next_attempt_at = ? WHERE idempotency_key = ?", [clock.now() + 60, a[0]])
    assert [r["idempotency_key"] for r in p.due(clock.now(), skip=[ids[b[0]]])] == [b[1], c[0]]
    assert [r["idempotency_key"] for r in p.due(clock.now())] == [*b, *c]
