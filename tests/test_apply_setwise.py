"""A push applied set-wise (sync/cloud/apply.py): the same answers and the same cloud as one
entry at a time, in a bounded number of statements whatever the push's size.

Random pushes mixing new tickets (twins among them, in the push and before it), the same
ticket again with the same or other fields, bad payloads, lifecycle steps, repeated keys,
entries for a hotel the device does not serve and unknown kinds go to two clouds: one
applies as it does in production, the other with every run of entries cut to one entry
(the savepoint path).  Answers and every table the push writes must be equal, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import random

import pytest

from kiosk.clock import FakeClock
from sync.cloud import apply, devices, storage

NOW = FakeClock().now()
HOTELS = ("h1", "h2")
TABLES = {"tickets": "hotel_id, ticket_id", "changes": "hotel_id, seq", "conflicts": "id",
          "applied_entries": "hotel_id, key", "hlc_state": "node", "hotel_seq": "hotel_id", "events": "key",
          "consumptions": "jti, kiosk_id", "revocations": "jti", "security_events": "id"}
EVENTS = {"session.opened": "session", "session.ended": "session", "token.issued": "qr_token",
          "token.used": "qr_token", "token.revoked": "qr_token", "message.send": "message"}


def _ticket(n: int, hotel: str, fp: str | None, status: str = "received", title: str | None = None) -> dict:
    tid = f"T-{n}"
    return {"key": f"c-{n}-{title or ''}", "hotelId": hotel, "kind": "ticket.created", "entityType": "ticket",
            "entityId": tid, "hlc": f"{int(NOW * 1000) + n:015d}-00000-k1", "createdAt": NOW,
            "payload": {"ticketId": tid, "type": "housekeeping", "title": title or f"towels {n}", "description": "",
                        "roomNumber": "101", "priority": "normal", "queue": "housekeeping", "status": status,
                        "fingerprint": fp, "createdAt": "2026-06-01T10:00:00.000Z", "createdBy": "s-1"}}


def pushes(seed: int) -> list[list[dict]]:
    """A random history of pushes from one device serving h1 and h2 (and naming h3)."""
    rnd = random.Random(seed)
    made: list[dict] = []
    events: list[dict] = []
    out, n = [], 0
    for _ in range(12):
        batch = []
        for _ in range(rnd.randint(1, 40)):
            n += 1
            roll = rnd.random()
            hotel = rnd.choice(HOTELS)
            if roll < 0.40 or not made:
                e = _ticket(n, hotel, rnd.choice([None, "fp-a", "fp-b", "fp-c", f"fp-{n}"]),
                            rnd.choice(["received", "open", "done"]))
                made.append(e)
            elif roll < 0.55:  # the same ticket again: same fields (fine) or other ones (refused)
                old = rnd.choice(made)
                e = dict(old, key=f"again-{n}", hlc=f"{int(NOW * 1000) + n:015d}-00000-k1")
                if rnd.random() < 0.5:
                    e["payload"] = dict(old["payload"], title="something else")
            elif roll < 0.70:  # what a scan and a session write: events, a token's uses (replays among them)
                kind = rnd.choice([*EVENTS, "token.used", "token.used", "token.used"])
                entity = f"J-{rnd.randint(1, 3)}" if EVENTS[kind] == "qr_token" else f"S-{n}"
                key = f"ev-{n}"
                if events and rnd.random() < 0.15:  # the key of an event of the other hotel
                    other = rnd.choice(events)
                    key, hotel = other["key"], HOTELS[1 - HOTELS.index(other["hotelId"])]
                e = {"key": key, "hotelId": hotel, "kind": kind, "entityType": EVENTS[kind], "entityId": entity,
                     "hlc": f"{int(NOW * 1000) + n:015d}-00000-k1", "createdAt": NOW,
                     "payload": {"jti": entity, "sessionId": f"S-{n}", "kioskId": rnd.choice(["k1", "k2", "k3"]),
                                 "consumedAt": NOW - rnd.randint(0, 100)}}
                events.append(e)
            elif roll < 0.74:  # a step of an earlier ticket
                old = rnd.choice(made)
                e = {"key": f"u-{n}", "hotelId": old["hotelId"], "kind": "ticket.updated", "entityType": "ticket",
                     "entityId": old["entityId"], "hlc": f"{int(NOW * 1000) + n:015d}-00000-k1", "createdAt": NOW,
                     "payload": {"ticketId": old["entityId"], "changes": {"status": {"new": "accepted"}},
                                 "by": "s-1", "at": "2026-06-01T10:05:00.000Z"}}
            elif roll < 0.80:  # a key seen before, in this push or an earlier one
                e = rnd.choice(batch or made)
            elif roll < 0.85:  # a payload the model refuses
                e = _ticket(n, hotel, "fp-a")
                del e["payload"]["title"]
            elif roll < 0.90:
                e = _ticket(n, "h3", "fp-a")  # a hotel the device does not serve
            elif roll < 0.95:
                e = dict(_ticket(n, hotel, None), kind="ticket.teleported")
            else:  # an envelope the cloud refuses (a stamp far ahead)
                e = dict(_ticket(n, hotel, None), hlc=f"{int(NOW * 1000) + 10**9:015d}-00000-k1")
            batch.append(e)
        out.append(batch)
    first = events[0]  # at the end, always: an event's key again, for the other hotel
    out.append([dict(first, hotelId=HOTELS[1 - HOTELS.index(first["hotelId"])], entityId="S-last")])
    return out


def snapshot(db) -> dict:
    return {t: [tuple(r) for r in db.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall()]
            for t, order in TABLES.items()}


def cloud(tmp_path, name: str, url: str | None):
    st = storage.open_storage(tmp_path / name, url)
    st.prepare()
    db = st.connect()
    devices.add_device(db, "k1", list(HOTELS), NOW)
    return st, db


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_set_wise_and_one_by_one_give_the_same_answers_and_the_same_cloud(tmp_path, request, monkeypatch,
                                                                          backend, seed):
    urls = [None, None] if backend == "sqlite" else [request.getfixturevalue("pg").new_database(f"sw{seed}{i}")
                                                      for i in range(2)]
    dev = devices.Device("k1", HOTELS)
    (st1, fast), (st2, slow) = cloud(tmp_path, "fast", urls[0]), cloud(tmp_path, "slow", urls[1])
    runs = []
    real_run = apply._Push._run

    def counted(self, entries, checked, i, blocked):
        run = real_run(self, entries, checked, i, blocked)
        runs.append(len(run))
        return run

    try:
        answers = []
        history = pushes(seed)
        for n, batch in enumerate(history):
            if n % 3 == 2 or n == len(history) - 1:  # the remembered answers' retention passed: repeated keys reach the kinds' own checks
                for db in (fast, slow):
                    with storage.transaction(db):
                        db.execute("DELETE FROM applied_entries")
            monkeypatch.setattr(apply._Push, "_run", counted)
            a = apply.apply_push(fast, dev, batch, NOW)
            monkeypatch.setattr(apply._Push, "_run", lambda self, entries, checked, i, blocked: [i])
            b = apply.apply_push(slow, dev, batch, NOW)
            assert a == b
            answers += a
        assert max(runs) > 3  # the set-wise path did run (else this compared a path with itself)
        got, want = snapshot(fast), snapshot(slow)
        assert got["conflicts"], "the history made no twins: nothing about merging was compared"
        assert got["security_events"], "the history made no replays: nothing about them was compared"
        assert any(r.get("reason", "").startswith("KEY_CONFLICT: this key was used by another device")
                   for r in answers), "no event's key came again for the other hotel"
        for t in TABLES:
            assert got[t] == want[t], t
    finally:
        st1.close()
        st2.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_push_of_1000_new_tickets_takes_as_many_statements_as_a_push_of_10(tmp_path, request, monkeypatch, backend):
    url = None if backend == "sqlite" else request.getfixturevalue("pg").new_database("count")
    st, db = cloud(tmp_path, "c", url)
    dev = devices.Device("k1", HOTELS)
    counts = {}
    calls: list[str] = []
    try:
        import sync.cloud.storage as s

        if backend == "postgresql":
            for name in ("execute", "executemany"):
                real = getattr(s.PgDatabase, name)
                monkeypatch.setattr(s.PgDatabase, name,
                                    lambda self, sql, *a, _real=real, **kw: (calls.append(sql), _real(self, sql, *a,
                                                                                                         **kw))[1])
        else:
            db.conn.set_trace_callback(calls.append)
        first = 0
        for size in (10, 1000):
            batch = [_ticket(first + i, "h1", f"fp-{first + i}") for i in range(size)]
            first += size
            calls.clear()
            results = apply.apply_push(db, dev, batch, NOW)
            assert {r["status"] for r in results} == {"applied"}
            # SQLite's trace callback sees each row of an executemany: count distinct statements there
            counts[size] = len(calls) if backend == "postgresql" else len({c.split(" VALUES")[0] for c in calls})
        assert counts[1000] <= counts[10] + 6, counts  # a few chunks of 500 more, not one per entry
        assert counts[10] < 20, counts
        for size in (10, 1000):  # now each a twin of an open ticket above: merged, its conflict recorded
            batch = [_ticket(first + i, "h1", f"fp-{i}") for i in range(size)]
            first += size
            calls.clear()
            results = apply.apply_push(db, dev, batch, NOW)
            assert all(r["status"] == "applied" and len(r["conflicts"]) == 1 for r in results)
            counts[f"twins {size}"] = len(calls) if backend == "postgresql" else len(
                {c.split(" VALUES")[0] for c in calls})
        assert counts["twins 1000"] <= counts["twins 10"] + 8, counts  # (was one INSERT a twin)
    finally:
        st.close()


def test_on_postgresql_a_push_sends_the_same_statements_whatever_its_size(tmp_path, request, monkeypatch):
    """Each statement's text is the same for a push of 1, 7 or 100 entries (``= ANY(?)`` with an
    array, the rows of an insert as one JSON parameter): prepared and planned once a connection,
    where ``IN (?, …)`` and ``VALUES (…), (…)`` made a statement of each size."""
    st, db = cloud(tmp_path, "c", request.getfixturevalue("pg").new_database("texts"))
    dev = devices.Device("k1", HOTELS)
    sent: list[str] = []
    real = storage._raw_cursor

    class Recording:
        def __init__(self, cur):
            self._cur = cur

        def execute(self, query, *a, **kw):
            sent.append(query)
            return self._cur.execute(query, *a, **kw)

        def executemany(self, query, *a, **kw):
            sent.append(query)
            return self._cur.executemany(query, *a, **kw)

        def __getattr__(self, name):
            return getattr(self._cur, name)

    monkeypatch.setattr(storage, "_raw_cursor", lambda conn: Recording(real(conn)))
    texts, first = {}, 0
    try:
        for size in (3, 1, 7, 100):  # (the first push also reads what is read once: the columns' types)
            # new tickets, and as many twins of tickets made before (merged: a conflict each)
            batch = [_ticket(first + i, "h1", f"fp-{first + i}") for i in range(size)]
            batch += [_ticket(10_000 + first + i, "h1", f"fp-{i}") for i in range(size)]
            first += size
            sent.clear()
            results = apply.apply_push(db, dev, batch, NOW)
            assert {r["status"] for r in results} == {"applied"}
            texts[size] = sorted(set(sent))
        assert texts[1] == texts[7] == texts[100], [sorted(set(texts[a]) ^ set(texts[b])) for a, b in ((1, 7), (7, 100))]
        assert not [t for t in texts[100] if "IN ($" in t or "), ($" in t], "a list of parameters the size of the push"
    finally:
        st.close()
