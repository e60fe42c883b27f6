"""The cloud at chain scale: a push costs the same however much the cloud already holds,
and, on PostgreSQL with several worker processes, concurrency changes nothing: no change
skipped or served twice by pull, one answer per Idempotency-Key, one order per entity.

Costs are compared as a ratio of two measurements in one run (never a wall-clock bound).
"""

from __future__ import annotations

import json
import time

import pytest

from kiosk.clock import FakeClock
from sync.cloud import devices, storage
from sync.cloud.apply import apply_entries, apply_push

NOW = FakeClock().now()


def ticket_entry(n: int, hotel: str = "demo", device: str = "k1") -> dict:
    hlc = f"{int(NOW * 1000) + n % 1_000_000:015d}-00000-{device}"  # within the accepted skew
    fp = f"{n % 50_000:020d}"  # twins are looked up by fingerprint: make the lookup do real work
    return {"key": f"{device}-{n}", "hotelId": hotel, "kind": "ticket.created", "entityType": "ticket",
            "entityId": f"T-{device}-{n}", "hlc": hlc, "createdAt": NOW,
            "payload": {"ticketId": f"T-{device}-{n}", "type": "housekeeping", "title": f"towels {n}",
                        "description": "", "roomNumber": str(100 + n % 400), "priority": "normal",
                        "queue": "housekeeping", "status": "received", "fingerprint": fp,
                        "createdAt": "2026-06-01T10:00:00.000Z", "createdBy": "s-1"}}


def fill(db, n: int, start: int) -> None:
    """``n`` tickets, their remembered entries and change-log rows, written directly (fast)."""
    with storage.transaction(db):
        rows = [ticket_entry(i, device="old") for i in range(start, start + n)]
        db.conn.executemany(
            "INSERT INTO tickets (hotel_id, ticket_id, type, title, description, room_number, priority, queue, status,"
            " fingerprint, created_at, created_by, payload, received_at, hlc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?)",
            [(e["hotelId"], e["entityId"], "housekeeping", "t", "", e["payload"]["roomNumber"], "normal",
              "housekeeping", "received", e["payload"]["fingerprint"], "2026-06-01", "s", json.dumps(e["payload"]),
              NOW, e["hlc"]) for e in rows])
        db.conn.executemany(
            "INSERT INTO applied_entries (key, device_id, hotel_id, kind, entity_type, entity_id, hlc, result,"
            " applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e["key"], "old", e["hotelId"], e["kind"], "ticket", e["entityId"], e["hlc"], '{"status":"applied"}',
              NOW) for e in rows])
        top = db.execute("SELECT coalesce(max(seq), 0) FROM changes WHERE hotel_id = 'demo'").fetchone()[0]
        db.conn.executemany(
            "INSERT INTO changes (hotel_id, seq, entity_type, entity_id, op, data, hlc, at) VALUES (?, ?, ?, ?, ?,"
            " ?, ?, ?)", [("demo", top + 1 + i, "ticket", e["entityId"], "upsert", "{}", e["hlc"], NOW)
                          for i, e in enumerate(rows)])
        db.execute("INSERT INTO hotel_seq (hotel_id, seq) VALUES ('demo', ?) ON CONFLICT (hotel_id) DO UPDATE SET"
                   " seq = excluded.seq", [top + n])


def push_cost(db, dev, first: int, size: int = 200) -> float:
    """What one push of ``size`` new tickets takes."""
    entries = [ticket_entry(first + i) for i in range(size)]
    t0 = time.perf_counter()
    results = apply_push(db, dev, entries, NOW)
    took = time.perf_counter() - t0
    assert {x["status"] for x in results} == {"applied"}
    return took


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_push_costs_the_same_with_1000_or_40000_tickets_held(tmp_path, request, backend):
    dbs, stores = [], []
    dev = devices.Device("k1", ("demo",))
    try:
        for name, held in (("small", 1_000), ("large", 40_000)):
            url = None if backend == "sqlite" else request.getfixturevalue("pg").new_database(f"scale-{name}")
            st = storage.open_storage(tmp_path / name, url)
            st.prepare()
            stores.append(st)
            db = st.connect()
            # what is timed is the lookups, not the disk: a commit that waits for its flush took
            # 100 ms and more while other suites wrote (CI)
            db.execute("SET synchronous_commit = off" if url else "PRAGMA synchronous = OFF")
            devices.add_device(db, "k1", ["demo"], NOW)
            fill(db, held, 0)
            db.execute("ANALYZE" if url else "PRAGMA wal_checkpoint(TRUNCATE)")  # the fill's own work done
            dbs.append(db)
        # the two stores pushed to in turn, so whatever else the machine does falls on both alike
        # (measured one after the other, a busy second made 40,000 look 3x dearer in CI once);
        # the cheapest push of each is what it costs
        # each push's 200 tickets have twins in both (fingerprints below 1,000): the same work
        costs: tuple[list, list] = ([], [])
        for r in range(5):
            for i, db in enumerate(dbs):
                costs[i].append(push_cost(db, dev, 10_000_000 + r * 200))
        small, large = min(costs[0]), min(costs[1])
    finally:
        for st in stores:
            st.close()
    # a lookup per entry without an index makes this grow with the rows held (40x the rows:
    # measured without the fingerprint index, 48x the cost, when each entry was looked up
    # alone); with indexes the two are the same up to noise.  (The set-wise push reads a
    # missing index's table once a push: 1.6x here on SQLite, which this bound does not catch.)
    assert large / small < 2.5, (small, large)


# --- PostgreSQL, two worker processes, real HTTP ---------------------------------------------

@pytest.fixture
def pg_cloud(tmp_path, pg):
    from harness import Cloud

    cloud = Cloud(tmp_path, database=pg.new_database(f"conc{time.monotonic_ns()}"), workers=2).start()
    yield cloud
    cloud.stop()


def push(cloud, cred: str, device: str, entries: list[dict], key: str | None = None):
    import requests

    headers = {"Authorization": f"Bearer {cred}"} | ({"Idempotency-Key": key} if key else {})
    return requests.post(cloud.url + "/sync/v1/push", json={"deviceId": device, "entries": entries},
                         headers=headers, timeout=60)


def test_concurrent_pushers_and_a_puller_never_skip_or_repeat_a_change(pg_cloud):
    import threading

    import requests

    kiosks = [f"k{i}" for i in range(6)]
    creds = {k: pg_cloud.device(k, "demo", "harbor") for k in kiosks}
    batches, size = 8, 15
    pushed: set[str] = set()
    failures: list = []
    done = threading.Event()

    def pusher(k: str) -> None:
        for b in range(batches):
            entries = [ticket_entry(b * size + i, hotel="demo" if i % 3 else "harbor", device=k) for i in range(size)]
            r = push(pg_cloud, creds[k], k, entries, key=f"{k}-{b}")
            if r.status_code != 200 or {x["status"] for x in r.json()["results"]} != {"applied"}:
                failures.append((r.status_code, r.text[:300]))
            pushed.update(e["entityId"] for e in entries if e["hotelId"] == "demo")

    seen: list[tuple[int, str]] = []

    def puller() -> None:
        cursor = 0
        while True:
            last_round = done.is_set()
            while True:
                page = requests.get(pg_cloud.url + f"/sync/v1/pull?hotel=demo&after={cursor}&limit=37",
                                    headers={"Authorization": f"Bearer {creds['k0']}"}, timeout=60).json()
                seen.extend((c["seq"], c["entityId"]) for c in page["changes"])
                cursor = page["cursor"]
                if not page["more"]:
                    break
            if last_round:
                return

    threads = [threading.Thread(target=pusher, args=(k,)) for k in kiosks]
    reader = threading.Thread(target=puller)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join(120)
    assert failures == []
    seqs = [s for s, _ in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, none twice
    ids = [e for _, e in seen if e.startswith("T-")]
    assert len(ids) == len(set(ids)) and set(ids) == pushed  # none skipped, none served twice
    assert len(pushed) == len(kiosks) * batches * sum(1 for i in range(size) if i % 3)  # two thirds to demo


def test_the_same_idempotency_key_at_two_workers_at_once_is_applied_once(pg_cloud):
    import threading

    cred = pg_cloud.device("k1", "demo")
    for round_ in range(5):
        entries = [ticket_entry(round_ * 100 + i) for i in range(30)]
        answers: list = [None, None]
        gate = threading.Barrier(2)

        def send(slot: int, entries=entries, round_=round_, answers=answers, gate=gate) -> None:
            gate.wait()
            answers[slot] = push(pg_cloud, cred, "k1", entries, key=f"twin-{round_}")

        ts = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].json() == answers[1].json()  # the second got the first's answer
        assert {r["status"] for r in answers[0].json()["results"]} == {"applied"}
    tickets = pg_cloud.list("tickets", "demo")
    assert len(tickets) == len({t["ticketId"] for t in tickets}) == 5 * 30


def test_two_kiosks_editing_one_work_order_at_once_are_judged_in_one_order(pg_cloud):
    import random
    import threading

    creds = {k: pg_cloud.device(k, "demo") for k in ("ka", "kb")}
    base = int(NOW * 1000)
    created = {"key": "wo-1", "hotelId": "demo", "kind": "work_order.created", "entityType": "work_order",
               "entityId": "WO-1", "hlc": f"{base:015d}-00000-ka", "createdAt": NOW,
               "payload": {"workOrderId": "WO-1", "assetId": None, "roomNumber": "101", "type": "failure",
                           "description": "leak", "status": "open", "assignee": None, "priority": "normal",
                           "notes": "", "openedAt": "2026-06-01T10:00:00.000Z", "closedAt": None}}
    assert push(pg_cloud, creds["ka"], "ka", [created]).status_code == 200
    stamps = {k: random.Random(k).sample(range(1, 400), 25) for k in creds}  # interleaved clocks

    def editor(k: str) -> None:
        for n, ms in enumerate(stamps[k]):
            e = {"key": f"{k}-{n}", "hotelId": "demo", "kind": "work_order.updated", "entityType": "work_order",
                 "entityId": "WO-1", "hlc": f"{base + ms:015d}-00000-{k}", "createdAt": NOW,
                 "payload": {"workOrderId": "WO-1", "by": k, "at": "2026-06-01T11:00:00.000Z",
                             "changes": {"notes": {"old": "", "new": f"{k}@{ms}"}}}}
            r = push(pg_cloud, creds[k], k, [e])
            assert r.status_code == 200 and r.json()["results"][0]["status"] in ("applied", "duplicate")

    ts = [threading.Thread(target=editor, args=(k,)) for k in creds]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    [wo] = pg_cloud.list("work-orders", "demo")
    # field-level last writer wins by HLC, whatever order the two workers took them in
    latest = max((ms, k) for k in creds for ms in stamps[k])
    assert wo["notes"] == f"{latest[1]}@{latest[0]}"


# --- the cloud's clock on PostgreSQL: per hotel, never moved back ----------------------------

def _pg_storage(tmp_path, pg, name: str):
    st = storage.open_storage(tmp_path / "cloud", pg.new_database(f"{name}{time.monotonic_ns()}"))
    st.prepare()
    return st


def _wait_for_a_lock_wait(db, deadline: float = 120.0) -> None:
    """Until another connection of this database waits for a lock (the state a test needs)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        n = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'").fetchone()[0]
        if n:
            return
        time.sleep(0.05)
    raise AssertionError("no connection came to wait for a lock")


def test_a_push_for_one_hotel_does_not_wait_for_another_hotels_open_push(tmp_path, pg):
    """The cloud's clock was one row for every hotel: a push held it until it committed, so
    every push of the chain queued behind the slowest (a bench with 200 kiosks on one worker
    timed out after 300 s).  Each hotel has its own clock row now."""
    import threading

    st = _pg_storage(tmp_path, pg, "clock")
    holder, other = st.acquire(), st.acquire()
    applied, release, done = threading.Event(), threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold_open() -> None:
        try:
            with storage.transaction(holder):
                storage.lock_hotels(holder, ["h1"])
                apply_entries(holder, devices.Device("k1", ("h1",)), [ticket_entry(1, "h1", "k1")], NOW)
                applied.set()
                release.wait(300)
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            failures.append(e)
            applied.set()

    def push_other() -> None:
        try:
            assert apply_push(other, devices.Device("k2", ("h2",)), [ticket_entry(2, "h2", "k2")], NOW)[0][
                "status"] == "applied"
        except BaseException as e:  # noqa: BLE001
            failures.append(e)
        done.set()

    devices.add_device(other, "k1", ["h1"], NOW)
    devices.add_device(other, "k2", ["h2"], NOW)
    a = threading.Thread(target=hold_open, daemon=True)
    a.start()
    assert applied.wait(120) and not failures, failures
    b = threading.Thread(target=push_other, daemon=True)
    b.start()
    try:
        finished = done.wait(120)  # under the old single clock row it waits until h1's push commits
    finally:
        release.set()
        a.join(120)
        b.join(120)
    st.release(holder)
    st.release(other)
    st.close()
    assert not failures, failures
    assert finished, "hotel h2's push waited for hotel h1's open transaction"


def test_two_transactions_merging_stamps_never_move_the_clock_back(tmp_path, pg):
    """hlc.receive read the state, then wrote it: on PostgreSQL a second transaction that read
    the state before the first committed wrote back a smaller one."""
    import threading

    from kiosk import hlc

    st = _pg_storage(tmp_path, pg, "recv")
    a, b, probe = st.acquire(), st.acquire(), st.acquire()
    base = int(NOW * 1000)
    with storage.transaction(probe):
        probe.execute("INSERT INTO hlc_state (node, wall_ms, counter) VALUES ('cloud:h1', ?, 0)", [base])
    later, between = f"{base + 60_000:015d}-00007-k1", f"{base + 30_000:015d}-00003-k2"
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with storage.transaction(b):
                hlc.receive(b, "cloud:h1", between, NOW)
        except BaseException as e:  # noqa: BLE001
            failures.append(e)

    with storage.transaction(a):
        hlc.receive(a, "cloud:h1", later, NOW)
        t = threading.Thread(target=second, daemon=True)
        t.start()
        _wait_for_a_lock_wait(probe)  # the second one waits for the row the first one holds
    t.join(120)
    row = probe.execute("SELECT wall_ms, counter FROM hlc_state WHERE node = 'cloud:h1'").fetchone()
    for d in (a, b, probe):
        st.release(d)
    st.close()
    assert not failures, failures
    assert tuple(row) == (base + 60_000, 7)
