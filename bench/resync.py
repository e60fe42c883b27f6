"""Retention, resync and fleet health: what they cost, on SQLite and on PostgreSQL.

1. **Purge** (``kiosk-cloud purge``): ``--changes`` change-log rows over ``--hotels`` hotels
   and ``--keys`` remembered entry keys and push answers, all older than the retention;
   rows deleted per second.  Then the same purge again (nothing to do).
2. **Snapshot** (``GET /sync/v1/snapshot``, in-process): one hotel with ``--rooms`` rooms,
   ``--reservations`` reservations, ``--work-orders`` work orders and ``--tickets`` tickets,
   paged 500 at a time; entities served per second.
3. **Resync at a kiosk** (SQLite, as a kiosk is): the same snapshot applied by
   ``Puller.resync`` through the in-memory transport; entities applied per second.
4. **Fleet health on the pull path**: ``--pulls`` pulls through the Flask app by 200
   devices in turn, with the fleet not recorded (the cost before fleet health), with the
   headers (the 200 pulling every 5 s, as agents do: a device's row is rewritten at most
   every 30 s) and with a write forced on every pull (new dead letters); and the kiosk's
   report (:class:`sync.health.Reporter`, counted afresh) over an outbox of ``--pending``
   entries.

    python bench/resync.py                       # the defaults below
    python bench/resync.py --changes 200000 --keys 100000 --reservations 20000   # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from kiosk import config as config_mod  # noqa: E402
from kiosk import outbox, store  # noqa: E402
from kiosk.clock import FakeClock  # noqa: E402
from kiosk.instance import Instance  # noqa: E402
from sync import health, pull  # noqa: E402
from sync.cloud import devices, fleet, retention, snapshot, storage  # noqa: E402
from sync.transport import InMemoryTransport  # noqa: E402

NOW = 1_790_000_000.0
DAY = 86400


def fill_old(db, hotels: int, changes: int, keys: int) -> None:
    """Change-log rows, entry keys and push answers, all 40 days old."""
    at = NOW - 40 * DAY
    per = changes // hotels
    with storage.transaction(db):
        for h in range(hotels):
            db.conn.executemany("INSERT INTO changes (hotel_id, seq, entity_type, entity_id, op, data, hlc, at)"
                                " VALUES (?, ?, 'room', ?, 'upsert', '{}', '', ?)",
                                [(f"h{h:03d}", s, str(s), at + s * 1e-3) for s in range(1, per + 1)])
            db.execute("INSERT INTO hotel_seq (hotel_id, seq) VALUES (?, ?)", [f"h{h:03d}", per])
        db.conn.executemany("INSERT INTO applied_entries (key, device_id, hotel_id, kind, entity_type, entity_id,"
                            " hlc, result, applied_at) VALUES (?, 'k', 'h000', 'ticket.created', 'ticket', ?, '',"
                            " '{\"status\":\"applied\"}', ?)", [(f"key-{i}", f"T{i}", at) for i in range(keys)])
        db.conn.executemany("INSERT INTO push_requests (device_id, idempotency_key, response, at, body_sha256)"
                            " VALUES ('k', ?, '{}', ?, '')", [(f"p-{i}", at) for i in range(keys // 100)])


def fill_hotel(db, rooms: int, reservations: int, work_orders: int, tickets: int) -> int:
    with storage.transaction(db):
        db.conn.executemany("INSERT INTO ref_data (hotel_id, entity_type, entity_id, data, hlc, updated_at)"
                            " VALUES ('demo', ?, ?, ?, '', ?)",
                            [("room", str(100 + i), json.dumps({"room_number": str(100 + i), "room_type": "KING",
                                                                "floor": 1, "status": "Clean", "occupied": 0}), NOW)
                             for i in range(rooms)]
                            + [("reservation", f"R{i}", json.dumps({"confirmation": f"R{i}", "guest_name": "Ada",
                                                                     "room_number": str(100 + i % rooms),
                                                                     "arrival": "2026-11-24", "departure": "2026-11-26",
                                                                     "status": "Confirmed"}), NOW)
                               for i in range(reservations)])
        stamps = json.dumps({f: "001790000000000-00000-x" for f in ("status", "assignee", "priority", "notes",
                                                                      "description")})
        db.conn.executemany("INSERT INTO work_orders (hotel_id, work_order_id, room_number, type, description,"
                            " status, priority, notes, created_payload, version, updated_at, updated_hlc, field_hlc,"
                            " judged_hlc) VALUES ('demo', ?, '101', 'failure', 'leak', 'open', 'normal', '', '{}', 1,"
                            " ?, '001790000000000-00000-x', ?, ?)",
                            [(f"WO-{i}", NOW, stamps, stamps) for i in range(work_orders)])
        db.conn.executemany("INSERT INTO tickets (hotel_id, ticket_id, type, title, description, room_number,"
                            " priority, queue, status, fingerprint, created_at, created_by, payload, received_at, hlc)"
                            " VALUES ('demo', ?, 'housekeeping', 'towels', '', '101', 'normal', 'housekeeping',"
                            " 'received', ?, '2026-11-24T10:00:00Z', 's-1', '{}', ?, '001790000000000-00000-x')",
                            [(f"T-{i}", f"fp{i}", NOW) for i in range(tickets)])
    return rooms + reservations + work_orders + tickets


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_backend(name: str, st, a, rows: list) -> None:
    st.prepare()
    db = st.connect()
    fill_old(db, a.hotels, a.changes, a.keys)
    out, s = timed(lambda: retention.purge(db, NOW, 30 * DAY))
    n = out["changes"] + out["appliedEntries"] + out["pushRequests"]
    rows.append((name, "purge", f"{out['changes']:,} changes + {out['appliedEntries'] + out['pushRequests']:,} keys",
                 f"{s:.2f} s", f"{n / s:,.0f} rows/s"))
    _, s = timed(lambda: retention.purge(db, NOW, 30 * DAY))
    rows.append((name, "purge again", "nothing older", f"{s * 1000:.1f} ms", ""))
    total = fill_hotel(db, a.rooms, a.reservations, a.work_orders, a.tickets)

    def page_through():
        token, n, pages = None, 0, 0
        while True:
            p = snapshot.page(db, "demo", token, 500, NOW)
            n, pages, token = n + len(p["changes"]), pages + 1, p["next"]
            if not token:
                return n, pages
    (n, pages), s = timed(page_through)
    assert n == total, (n, total)
    rows.append((name, "snapshot", f"{n:,} entities, {pages} pages", f"{s:.2f} s", f"{n / s:,.0f} entities/s"))

    devices.add_device(db, "k0", ["demo"], NOW)
    creds = [devices.add_device(db, f"d{i}", ["demo"], NOW) for i in range(200)]
    from sync.cloud.app import create_app

    clock = FakeClock(NOW)
    app = create_app(st.root if hasattr(st, "root") else None, clock=clock,
                     database=None if name == "sqlite" else st.url)
    c = app.test_client()
    hdr = {health.VERSION: "0.1.0", health.PENDING: "0", health.OLDEST: "0", health.DEAD: "0"}
    real_seen = fleet.seen

    def pulls(n, force=False):
        for i in range(n):
            clock.advance(5 / 200)
            h = {"Authorization": f"Bearer {creds[i % 200]}"} | hdr | {health.CLOCK: str(clock.now())}
            r = c.get(f"/sync/v1/pull?hotel=demo&after={10**9}&limit=1",
                      headers=h | ({health.DEAD: str(i)} if force else {}))
            assert r.status_code == 200, r.get_json()
    pulls(400)  # warm-up: every device has its row
    for label, force, off in (("pull, fleet not recorded", False, True), ("pull, fleet headers", False, False),
                              ("pull, a write every pull", True, False)):
        fleet.seen = (lambda *_, **__: None) if off else real_seen
        _, s = timed(lambda force=force: pulls(a.pulls, force))
        rows.append((name, label, f"{a.pulls} pulls", f"{s / a.pulls * 1000:.2f} ms/pull", f"{a.pulls / s:,.0f}/s"))
    fleet.seen = real_seen
    app.config["CLOUD_STORAGE"].close()
    return db


def bench_kiosk(root: Path, cloud_db, a, rows: list) -> None:
    cfg = config_mod.load(None, env={}, overrides={"data_dir": str(root / "kiosk"),
                                                   "property": {"hotels": ["demo"], "kiosk_id": "k0"}})
    inst = Instance(cfg, clock=FakeClock(NOW))
    inst.init()
    kdb = inst.connect()
    t = InMemoryTransport(cloud_db, devices.Device("k0", ("demo",)), FakeClock(NOW))
    puller = pull.Puller(kdb, t, hotels=["demo"], node="k0", clock=FakeClock(NOW), trust_path=inst.trust_path,
                         page_size=500)
    r, s = timed(lambda: puller.resync("demo"))
    rows.append(("kiosk", "resync (apply)", f"{r.changes:,} entities, {r.pages} pages", f"{s:.2f} s",
                 f"{r.changes / s:,.0f} entities/s"))
    r, s = timed(lambda: puller.resync("demo"))
    rows.append(("kiosk", "resync again", "the same state", f"{s:.2f} s", f"{r.changes / s:,.0f} entities/s"))
    with store.transaction(kdb):
        for i in range(a.pending):
            outbox.enqueue(kdb, hotel_id="demo", kind="ticket.created", entity_type="ticket", entity_id=f"X{i}",
                           payload={}, node="k0", now=NOW + i * 1e-3)
    rep = health.Reporter(inst.connect, FakeClock(NOW), every=0)
    rep()
    _, s = timed(lambda: [rep() for _ in range(20)])
    rows.append(("kiosk", "fleet report", f"{a.pending:,} pending", f"{s / 20 * 1000:.2f} ms", "(counted afresh)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hotels", type=int, default=20)
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=500_000)
    ap.add_argument("--rooms", type=int, default=500)
    ap.add_argument("--reservations", type=int, default=50_000)
    ap.add_argument("--work-orders", type=int, default=10_000)
    ap.add_argument("--tickets", type=int, default=10_000)
    ap.add_argument("--pulls", type=int, default=2_000)
    ap.add_argument("--pending", type=int, default=100_000)
    ap.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    a = ap.parse_args()
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cloud_db = bench_backend("sqlite", storage.SqliteStorage(root / "cloud"), a, rows)
        bench_kiosk(root, cloud_db, a, rows)
        if not a.no_postgresql:
            import pgserver

            why = pgserver.available()
            if why:
                print(f"PostgreSQL skipped: {why}")
            else:
                server = pgserver.PgServer().start()
                try:
                    st = storage.open_storage(None, server.new_database("bench"))
                    bench_backend("postgresql", st, a, rows)
                    st.close()
                finally:
                    server.stop()
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
