"""GET|POST /api/admin?endpoint=export: the rows of a range, every kind, CSV injection, JSON, streaming."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from kiosk import audit, export, outbox, store, workorders

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z
DAY = 86400.0
MAY26 = datetime(2026, 5, 26, tzinfo=UTC).timestamp()
MAY28 = datetime(2026, 5, 28, tzinfo=UTC).timestamp()


@pytest.fixture
def anon(app):
    return app.test_client(use_cookies=False)


@pytest.fixture
def admin(login):
    return login("admin", user="a-1")


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def post(anon, headers, body, status=200):
    r = anon.post("/api/admin?endpoint=export", headers=headers, json=body)
    assert r.status_code == status, r.get_data(as_text=True)[:500]
    return r


def record(instance, at, event="test.event", hotel="demo", **details):
    audit.record_now(instance.db(), hotel_id=hotel, event=event, outcome="success", at=at, actor="t",
                     details=details)


def test_csv_rows_of_a_date_range_are_the_rows_in_that_range(anon, admin, instance):
    times = [MAY26 - 0.001, MAY26, MAY26 + 3600, MAY28 - 0.001, MAY28, MAY28 + 5, NOW - 5 * DAY]
    for i, at in enumerate(times):
        record(instance, at, n=i)
        record(instance, at, hotel="harbor", n=100 + i)  # never in demo's export
    r = post(anon, admin, {"format": "csv", "from": "2026-05-26", "to": "2026-05-27", "kinds": ["audit"]})
    assert r.is_streamed
    assert r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="kiosk-export-demo-2026-05-26-2026-05-27.csv"'
    got = rows_of(r.get_data(as_text=True))
    want = instance.db().execute("SELECT id FROM audit_log WHERE hotel_id = 'demo' AND at >= ? AND at < ?"
                                 " ORDER BY at, id", [MAY26, MAY28]).fetchall()
    assert [int(row["id"]) for row in got] == [w[0] for w in want]
    assert [json.loads(row["details"])["n"] for row in got] == [1, 2, 3]  # to is inclusive, the next midnight is not
    assert list(got[0]) == ["kind", "at", "id", "event", "outcome", "actor", "sessionId", "jti", "client", "code",
                            "repeats", "details"]
    assert {row["repeats"] for row in got} == {"1"}
    assert {row["kind"] for row in got} == {"audit"}
    assert got[0]["at"] == "2026-05-26T00:00:00.000Z" and got[-1]["at"] == "2026-05-27T23:59:59.999Z"


@pytest.fixture
def estate(anon, login, instance, clock):
    """One of every kind in demo (and in harbor, marked HARBOR, which must never show)."""
    staff = login("staff", user="s-7")
    login("guest", "harbor", user="HARBOR-guest")
    workorders.create(instance.db(), hotel_id="demo", work_order_id="WO-1", by="pms", now=clock.now(),
                      node="k", room_number="101")
    r = anon.post("/api/pms/update", headers=staff, json={"workOrderId": "WO-1",
                                                          "changes": {"status": "assigned", "assignee": "s-7"}})
    assert r.status_code == 200, r.get_json()
    r = anon.post("/api/tickets/auto", headers=staff, json={"type": "maintenance", "title": "=HYPERLINK(\"x\")",
                                                            "description": "-2+3", "roomNumber": "101"})
    assert r.status_code == 201, r.get_json()
    db = instance.db()
    with store.transaction(db):
        db.execute("INSERT INTO ai_interactions (hotel_id, model_id, session_id, actor, started_at, duration_ms,"
                   " status, error, actions) VALUES ('demo', 'night-audit', NULL, 's-7', ?, 12.5, 'ERROR',"
                   " '@SUM(A1)', 0)", [clock.now()])
        db.execute("INSERT INTO ai_interactions (hotel_id, model_id, session_id, actor, started_at, duration_ms,"
                   " status, error, actions) VALUES ('harbor', 'HARBOR-model', NULL, 'x', ?, 1, 'SUCCESS', NULL, 0)",
                   [clock.now()])
        q = outbox.enqueue(db, hotel_id="demo", kind="pms.update", entity_type="pms", entity_id="folio:R-1",
                           payload={"entity": "folio", "id": "R-1", "changes": {"amount": -5}, "approvedBy": "s-7"},
                           node="k", now=clock.now())
        outbox.enqueue(db, hotel_id="harbor", kind="pms.update", entity_type="pms", entity_id="HARBOR-folio",
                       payload={"changes": {}}, node="k", now=clock.now())
        db.execute("INSERT INTO tickets (hotel_id, ticket_id, type, title, priority, queue, fingerprint, terms,"
                   " created_at, created_by) VALUES ('harbor', 'HARBOR-T', 'it', 'HARBOR', 'low', 'it', 'f', '[]', ?,"
                   " 'x')", [clock.now()])
    return {"staff": staff, "pmsKey": q.idempotency_key}


def test_every_kind_in_one_table(anon, admin, estate, instance):
    text = post(anon, admin, {}).get_data(as_text=True)  # defaults: csv, the last day, every kind
    assert "HARBOR" not in text
    rows = rows_of(text)
    header = list(rows[0])
    assert header == export.header(list(export.KINDS))
    assert header[:3] == ["kind", "at", "id"] and len(header) == len(set(header))
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    assert list(by_kind) == ["audit", "sessions", "modelRuns", "pmsChanges", "tickets"]
    db = instance.db()
    assert len(by_kind["audit"]) == db.execute("SELECT count(*) FROM audit_log WHERE hotel_id = 'demo'").fetchone()[0]
    assert sorted((r["role"], r["userId"]) for r in by_kind["sessions"]) == [("admin", "a-1"), ("staff", "s-7")]
    run, = by_kind["modelRuns"]
    assert (run["modelId"], run["status"], run["durationMs"], run["error"]) == ("night-audit", "ERROR", "12.5",
                                                                               "'@SUM(A1)")
    changes = by_kind["pmsChanges"]
    assert sorted((c["entityType"], c["entityId"], c["field"], c["old"], c["new"]) for c in changes[:2]) == [
        ("work_order", "WO-1", "assignee", "", "s-7"), ("work_order", "WO-1", "status", "open", "assigned")]
    assert [(c["entityType"], c["entityId"], c["field"], c["old"], c["new"]) for c in changes[2:]] == [
        ("pms", "folio:R-1", "", "", '{"amount":-5}')]  # history first, then the queued PMS updates
    assert changes[2]["actor"] == "s-7" and changes[2]["syncState"] == "pending" and changes[0]["actor"] == "s-7"
    assert changes[0]["id"].startswith("wo:") and changes[2]["id"].startswith("pms:")
    ticket, = by_kind["tickets"]
    assert (ticket["type"], ticket["queue"], ticket["actor"]) == ("maintenance", "engineering", "s-7")
    # cells of other kinds are empty
    assert ticket["event"] == "" and run["title"] == ""


def test_formulas_are_neutralised_in_csv_only(anon, admin, estate, instance, clock):
    for i, evil in enumerate(["=1+1", "+cmd|' /C calc'!A0", "-2", "@SUM(1)", "\tx", "\rx", "safe = 1", "'quoted"]):
        record(instance, clock.now(), event=f"e{i}", **{"v": 1})
        db = instance.db()
        with store.transaction(db):  # an actor a user could choose, e.g. a token's user id
            db.execute("UPDATE audit_log SET actor = ? WHERE id = (SELECT max(id) FROM audit_log)", [evil])
    csv_rows = rows_of(post(anon, admin, {"kinds": ["audit", "tickets"]}).get_data(as_text=True))
    actors = [r["actor"] for r in csv_rows if r["event"].startswith("e")]
    assert actors == ["'=1+1", "'+cmd|' /C calc'!A0", "'-2", "'@SUM(1)", "'\tx", "'\rx", "safe = 1", "'quoted"]
    ticket = next(r for r in csv_rows if r["kind"] == "tickets")
    assert (ticket["title"], ticket["description"]) == ("'=HYPERLINK(\"x\")", "'-2+3")
    for row in csv_rows:  # nothing a spreadsheet would run
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", row
    only = rows_of(post(anon, admin, {"kinds": ["tickets"]}).get_data(as_text=True))  # one kind: no padding
    assert (only[0]["title"], only[0]["description"]) == ("'=HYPERLINK(\"x\")", "'-2+3")
    objs = json.loads(post(anon, admin, {"format": "json", "kinds": ["tickets"]}).get_data(as_text=True))
    assert objs[0]["title"] == "=HYPERLINK(\"x\")"  # JSON keeps the data as it is


def test_neutralise():
    assert [export.neutralise(v) for v in ("=A1", "a=b", "", None, -5, 1.5, "-", "@")] == \
        ["'=A1", "a=b", "", None, -5, 1.5, "'-", "'@"]


def test_json_array_and_ndjson(anon, admin, estate):
    r = post(anon, admin, {"format": "json", "kinds": ["sessions", "modelRuns"]})
    assert r.mimetype == "application/json" and r.headers["Content-Disposition"].endswith('.json"')
    objs = json.loads(r.get_data(as_text=True))
    assert [o["kind"] for o in objs] == ["sessions", "sessions", "modelRuns"]
    assert set(objs[0]) == {"kind", *export.KINDS["sessions"].columns}
    assert set(objs[2]) == {"kind", *export.KINDS["modelRuns"].columns}
    assert objs[2]["durationMs"] == 12.5 and objs[2]["actions"] == 0  # numbers stay numbers
    r = post(anon, admin, {"format": "ndjson", "kinds": ["sessions", "modelRuns"]})
    assert r.mimetype == "application/x-ndjson"
    lines = r.get_data(as_text=True).splitlines()
    assert [json.loads(line) for line in lines] == objs


def test_empty_exports_are_well_formed(anon, admin):
    body = {"from": "2020-01-01", "to": "2020-01-02"}
    assert post(anon, admin, body | {"kinds": ["tickets"]}).get_data(as_text=True) == \
        "kind,at,id,type,title,description,roomNumber,priority,queue,status,actor,sessionId,mergedInto\r\n"
    assert json.loads(post(anon, admin, body | {"format": "json"}).get_data(as_text=True)) == []
    assert post(anon, admin, body | {"format": "ndjson"}).get_data(as_text=True) == ""


def test_get_with_query_parameters_is_a_download_link(anon, admin, estate):
    r = anon.get("/api/admin?endpoint=export&format=csv&from=2026-05-28T00:00:00Z&to=2026-05-28T23:59:59Z"
                 "&kinds=tickets,modelRuns", headers=admin)
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="kiosk-export-demo-20260528T000000Z-20260528T235959Z.csv"'
    assert r.headers["Cache-Control"] == "no-store"
    assert [row["kind"] for row in rows_of(r.get_data(as_text=True))] == ["tickets", "modelRuns"]
    r = anon.get("/api/admin?endpoint=export&kinds=tickets&kinds=audit&period=week&format=ndjson", headers=admin)
    kinds = [json.loads(line)["kind"] for line in r.get_data(as_text=True).splitlines()]
    assert kinds[0] == "tickets" and set(kinds) == {"tickets", "audit"}


@pytest.mark.parametrize("body", [
    {"format": "xml"},
    {"kinds": ["audit", "passwords"]},
    {"kinds": []},
    {"kinds": "audit"},
    {"from": "last tuesday"},
    {"from": "2026-05-28", "to": "2026-05-01"},
    {"to": "2026-05-28"},
    {"period": "year"},
    {"period": "day", "from": "2026-05-28"},
    {"from": 20260528},
    {"everything": True},
    [],
    "csv",
])
def test_bad_requests_are_validation_errors(anon, admin, body):
    r = anon.post("/api/admin?endpoint=export", headers=admin, json=body)
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR"), r.get_json()


@pytest.mark.parametrize("query", ["format=xml", "kinds=", "kinds=audit,x", "from=x", "period=decade"])
def test_bad_query_parameters_are_validation_errors(anon, admin, query):
    r = anon.get("/api/admin?endpoint=export&" + query, headers=admin)
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR"), r.get_json()


def test_export_supports_get_and_post_only(anon, admin):
    r = anon.put("/api/admin?endpoint=export", headers=admin, json={})
    assert (r.status_code, r.get_json()["error"]["details"]) == (405, {"method": "PUT", "allowed": ["GET", "POST"]})
    assert r.headers["Allow"] == "GET, POST"


def test_rows_are_read_a_chunk_at_a_time_from_one_snapshot(instance, clock, monkeypatch):
    monkeypatch.setattr(export, "CHUNK", 5)
    for i in range(23):
        record(instance, NOW - 100 + i, n=i)
    from kiosk import analytics
    w = analytics.parse_window(period="day", now=NOW)
    fetched = []

    class Counting:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, params=()):
            cur = self.conn.execute(sql, params)

            class Cur:
                def fetchmany(self, n):
                    rows = cur.fetchmany(n)
                    fetched.append(len(rows))
                    return rows

                def close(self):
                    cur.close()
            return Cur() if sql.startswith("SELECT") else cur

        def __getattr__(self, name):
            return getattr(self.conn, name)

    gen = export.stream(lambda: Counting(export.reader(instance.db_path)), "demo", w, ["audit"], "csv")
    first = next(gen)
    assert first.count("\r\n") == 1 + 5 and fetched == [5]  # the header and one chunk: nothing more was read
    record(instance, NOW - 1, n=999)  # written while the export runs: not in its snapshot
    rest = "".join(gen)
    rows = rows_of(first + rest)
    assert [json.loads(r["details"])["n"] for r in rows] == list(range(23))
    assert fetched == [5, 5, 5, 5, 3, 0]


def test_a_failing_export_closes_its_connection(instance, monkeypatch):
    from kiosk import analytics
    closed = []

    class Broken:
        in_transaction = False

        def execute(self, sql, params=()):
            if sql.startswith("SELECT"):
                raise RuntimeError("disk gone")

        def close(self):
            closed.append(True)

    gen = export.stream(lambda: Broken(), "demo", analytics.parse_window(period="day", now=NOW), ["audit"], "csv")
    with pytest.raises(RuntimeError):
        list(gen)
    assert closed == [True]
