"""The change log keeps one row per entity, its newest (sync/cloud/changelog.py): a fresh kiosk
pulls each ticket once in its last state, a kiosk between two changes gets the newer one, and
nothing a puller needs is skipped, one by one and set-wise, on SQLite and PostgreSQL; a log
written before compaction is compacted by the migration."""

from __future__ import annotations

import re
import sqlite3
import uuid

import pytest

from kiosk.clock import FakeClock
from sync.cloud import apply, changelog, devices, schema, storage

NOW = FakeClock().now()
HOTEL = "h1"


def created(n: int, tid: str) -> dict:
    return {"key": f"c-{tid}", "hotelId": HOTEL, "kind": "ticket.created", "entityType": "ticket", "entityId": tid,
            "hlc": f"{int(NOW * 1000) + n:015d}-00000-k1", "createdAt": NOW,
            "payload": {"ticketId": tid, "type": "housekeeping", "title": f"towels {tid}", "description": "",
                        "roomNumber": "101", "priority": "normal", "queue": "housekeeping", "status": "received",
                        "createdAt": "2026-06-01T10:00:00.000Z", "createdBy": "s-1"}}


def step(n: int, tid: str, status: str) -> dict:
    return {"key": f"u-{tid}-{status}", "hotelId": HOTEL, "kind": "ticket.updated", "entityType": "ticket",
            "entityId": tid, "hlc": f"{int(NOW * 1000) + n:015d}-00000-k1", "createdAt": NOW,
            "payload": {"ticketId": tid, "changes": {"status": {"new": status}}, "by": "s-1",
                        "at": "2026-06-01T10:05:00.000Z"}}


def pull_all(db, after: int = 0, limit: int = 2) -> tuple[list[dict], int]:
    out = []
    while True:
        page = changelog.page(db, HOTEL, after, limit)
        out += page["changes"]
        after = page["cursor"]
        if not page["more"]:
            return out, after


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request, tmp_path):
    url = None if request.param == "sqlite" else request.getfixturevalue("pg").new_database(f"compact{uuid.uuid4().hex[:8]}")
    st = storage.open_storage(tmp_path / "c", url)
    st.prepare()
    db = st.connect()
    devices.add_device(db, "k1", [HOTEL], NOW)
    yield db
    st.close()


def test_a_fresh_puller_gets_each_entity_once_in_its_newest_state(cloud):
    db, dev = cloud, devices.Device("k1", (HOTEL,))
    apply.apply_push(db, dev, [created(1, "T-1"), created(2, "T-2")], NOW)
    _, between = pull_all(db)  # a kiosk that pulled both tickets as received
    for n, status in enumerate(("accepted", "in_progress", "done"), start=3):  # one push a step
        assert apply.apply_push(db, dev, [step(n, "T-1", status)], NOW)[0]["status"] == "applied"
    fresh, head = pull_all(db)
    assert [(c["entityId"], c["data"]["status"]) for c in fresh if c["entityType"] == "ticket"] == [
        ("T-2", "received"), ("T-1", "done")]
    later, cursor = pull_all(db, between)  # the kiosk that had T-1 received gets its last state only
    assert [(c["entityId"], c["data"]["status"]) for c in later] == [("T-1", "done")]
    assert cursor == head == changelog.head(db, HOTEL)
    rows = db.execute("SELECT entity_id, count(*) FROM changes WHERE hotel_id = ? AND entity_type = 'ticket'"
                      " GROUP BY entity_id ORDER BY entity_id", [HOTEL]).fetchall()
    assert [tuple(r) for r in rows] == [("T-1", 1), ("T-2", 1)]


def test_an_entity_changed_several_times_in_one_push_is_written_once(cloud):
    db, dev = cloud, devices.Device("k1", (HOTEL,))
    apply.apply_push(db, dev, [created(1, "T-0")], NOW)
    _, before = pull_all(db)
    batch = [created(2, "T-1"), created(3, "T-2"), step(4, "T-1", "accepted"), step(5, "T-1", "done"),
             step(6, "T-0", "accepted"), created(7, "T-3")]
    assert {r["status"] for r in apply.apply_push(db, dev, batch, NOW)} == {"applied"}
    got, _ = pull_all(db, before, limit=1)
    assert [(c["entityId"], c["data"]["status"]) for c in got if c["entityType"] == "ticket"] == [
        ("T-2", "received"), ("T-1", "done"), ("T-0", "accepted"), ("T-3", "received")]
    seqs = [c["seq"] for c in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, with gaps where rows went


def test_the_migration_compacts_a_log_written_before(tmp_path):
    st = storage.open_storage(tmp_path / "old")
    st.prepare()
    db = st.connect()
    with storage.transaction(db):
        for seq, (eid, state) in enumerate([("R-1", "a"), ("R-2", "a"), ("R-1", "b"), ("R-1", "c"), ("R-2", "b")], 1):
            db.conn.execute("INSERT INTO changes (hotel_id, seq, entity_type, entity_id, op, data, hlc, at)"
                            " VALUES (?, ?, 'reservation', ?, 'upsert', ?, '', 0)", [HOTEL, seq, eid, f'"{state}"'])
    st.close()
    raw = sqlite3.connect(tmp_path / "old" / "cloud.db")
    # as a cloud of the version before compaction left it: the migrations from that one on undone
    at = next(i for i, m in enumerate(schema.MIGRATIONS) if any("changes_entity" in s for s in m))
    raw.execute("DROP INDEX changes_entity")
    for later in schema.MIGRATIONS[at + 1:]:
        for table in re.findall(r"CREATE TABLE (\w+)", " ".join(later)):
            raw.execute(f"DROP TABLE {table}")
    raw.execute(f"PRAGMA user_version = {at}")
    raw.commit()
    raw.close()
    st = storage.open_storage(tmp_path / "old")
    st.prepare()
    db = st.connect()
    try:
        rows = db.execute("SELECT seq, entity_id, data FROM changes WHERE hotel_id = ? ORDER BY seq", [HOTEL]).fetchall()
        assert [tuple(r) for r in rows] == [(4, "R-1", '"c"'), (5, "R-2", '"b"')]
    finally:
        st.close()
