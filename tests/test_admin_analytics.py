"""GET /api/admin?endpoint=analytics: every figure of a known history, exactly.

The history is built on the fake clock around NOW (2026-05-28T20:26:40Z): scans that
succeed or are refused with known codes (through the real scan endpoint), sessions of
each role, model runs with known durations and statuses, outbox rows pending and dead,
tasks, approvals, sync bookkeeping, conflicts and security events — and the same kinds
of rows in the other hotel and outside the window, which must never count.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kiosk import outbox, store, sync_status

NOW = 1_780_000_000.0  # the FakeClock's start: 2026-05-28T20:26:40Z
H = 3600.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


@pytest.fixture
def cfg(cfg):
    """The history is made at chosen instants over hours: the admin reading it may have signed
    in longer ago than the idle limit (tested on its own in test_lobby_visits.py)."""
    return cfg.model_copy(update={"sessions": cfg.sessions.model_copy(update={
        "idle_seconds": 86400, "idle_seconds_by_role": cfg.sessions.idle_seconds_by_role.model_copy(
            update={"guest": 86400, "staff": 86400, "admin": 86400})})})


@pytest.fixture
def anon(app):
    return app.test_client(use_cookies=False)


class History:
    """Drives the app and the store at chosen instants; remembers what it did."""

    def __init__(self, anon, issue, instance, clock):
        self.anon, self.issue, self.instance, self.clock = anon, issue, instance, clock
        self.ip = 0

    def at(self, ts: float):
        self.clock.t = ts
        return self

    def scan(self, token: str, hotel: str = "demo", ip: str | None = None):
        self.ip += 1  # a fresh client per scan, so refusals never add up to RATE_LIMITED by accident
        return self.anon.post("/api/qr/scan", json={"qrToken": token, "hotelId": hotel},
                              environ_base={"REMOTE_ADDR": ip or f"10.0.0.{self.ip}"})

    def login(self, role: str, hotel: str = "demo", **kw) -> dict:
        r = self.scan(self.issue(role, hotel, **kw), hotel)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def run(self, model: str, at: float, ms: float, status: str = "SUCCESS", hotel: str = "demo",
            session: str | None = None, actions: int = 0):
        db = self.instance.db()
        with store.transaction(db):
            db.execute("INSERT INTO ai_interactions (hotel_id, model_id, session_id, actor, started_at, duration_ms,"
                       " status, error, actions) VALUES (?, ?, ?, 'x', ?, ?, ?, ?, ?)",
                       [hotel, model, session, at, ms, status, None if status == "SUCCESS" else "boom", actions])

    def queue(self, kind: str, at: float, state: str = "pending", hotel: str = "demo"):
        db = self.instance.db()
        with store.transaction(db):
            q = outbox.enqueue(db, hotel_id=hotel, kind=kind, entity_type="pms", entity_id="x",
                               payload={"entity": "folio", "id": "R-1", "changes": {"amount": 1}}, node="k", now=at)
            db.execute("UPDATE outbox SET state = ? WHERE idempotency_key = ?", [state, q.idempotency_key])

    def task(self, at_text: str, *, source: str | None = "task-routing", type_: str = "leak",
             status: str = "open", hotel: str = "demo"):
        db = self.instance.db()
        with store.transaction(db):
            n = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
            db.execute("INSERT INTO tasks (hotel_id, task_id, type, created_at, status, source) VALUES (?, ?, ?, ?, ?, ?)",
                       [hotel, f"T{n}", type_, at_text, status, source])


def utc_text(ts: float, naive: bool = False) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return (dt.replace(tzinfo=None) if naive else dt).isoformat()


@pytest.fixture
def history(anon, issue, instance, clock):
    h = History(anon, issue, instance, clock)
    cfg = instance.config
    # --- three days ago: counts for the week, not for the day
    h.at(NOW - 72 * H)
    h.login("guest")
    h.scan("not-a-token")  # INVALID_TOKEN
    h.run("night-audit", NOW - 72 * H, 999.0)
    h.task(utc_text(NOW - 72 * H))
    # --- the other hotel, inside the window: never counts for demo
    h.at(NOW - 2 * H)
    h.login("guest", "harbor")
    h.login("admin", "harbor")
    h.scan("not-a-token", "harbor")
    h.run("night-audit", NOW - 2 * H, 5000.0, "ERROR", hotel="harbor")
    h.queue("pms.update", NOW - 2 * H, hotel="harbor")
    h.task(utc_text(NOW - 2 * H), hotel="harbor")
    # --- five hours ago: two guests in, three refusals
    h.at(NOW - 5 * H)
    used = h.issue("guest")
    assert h.scan(used).status_code == 200
    h.login("guest", name="Ada")
    assert h.scan(used).get_json()["error"]["code"] == "TOKEN_ALREADY_USED"
    assert h.scan("not-a-token").get_json()["error"]["code"] == "INVALID_TOKEN"
    assert h.scan(h.issue("guest", "harbor"), "demo").get_json()["error"]["code"] == "HOTEL_MISMATCH"
    short = h.issue("guest", ttl=60)
    # --- three hours ago: an expired token, then a client that fails until it is rate limited
    h.at(NOW - 3 * H)
    assert h.scan(short).get_json()["error"]["code"] == "TOKEN_EXPIRED"
    for i in range(cfg.scan.max_failures):  # different junk codes: the source's limit, not one code's
        assert h.scan(f"junk-{i}", ip="10.9.9.9").get_json()["error"]["code"] == "INVALID_TOKEN"
    assert h.scan("junk-last", ip="10.9.9.9").get_json()["error"]["code"] == "RATE_LIMITED"
    # --- half an hour ago: staff and admin; a second staff member logs out at once
    h.at(NOW - 0.5 * H)
    h.login("staff")
    admin = h.login("admin", user="a-boss")
    h.at(NOW - 0.25 * H)
    staff2 = h.login("staff")
    assert anon.delete("/api/session", headers={"Authorization": "Bearer " + staff2["sessionJWT"]}).status_code == 200

    # everything queued so far went to the cloud; then a known backlog
    db = instance.db()
    with store.transaction(db):
        db.execute("UPDATE outbox SET state = 'delivered', delivered_at = ?", [NOW - 0.2 * H])
    h.queue("message.send", NOW - 4 * H)  # pending, not a PMS change: the oldest pending entry
    h.queue("pms.update", NOW - 3.5 * H, "dead")
    h.queue("pms.update", NOW - 2 * H)
    h.queue("work_order.updated", NOW - 1.5 * H)
    h.queue("work_order.created", NOW - 10 * 60)
    h.queue("pms.update", NOW - 20 * 60, "delivered")
    h.queue("pms.update", NOW - 30 * H, "pending")  # pending, but queued before the day's window

    # model runs (durations in ms): night-audit 10..200 in 20 runs, 2 errors and a timeout
    for i in range(20):
        status = "ERROR" if i in (3, 15) else "TIMEOUT" if i == 19 else "SUCCESS"
        h.run("night-audit", NOW - 20 * H + i * H + 60, 10.0 * (i + 1), status, actions=1)
    h.run("guest-messaging", NOW - 5 * H + 1, 5.0)
    h.run("guest-messaging", NOW - 5 * H + 2, 7.0)
    h.run("guest-messaging", NOW - 5 * H + 3, 100.0, "INVALID")

    # tasks the models created (one written without an offset), an imported one, approvals
    h.task(utc_text(NOW - 6 * H, naive=True))
    h.task(utc_text(NOW - 2 * H))
    h.task(utc_text(NOW - 2 * H), source=None)  # imported from the PMS: not an action
    h.task(utc_text(NOW - 2 * H), type_="approval", source="billing-detection")
    h.task(utc_text(NOW - 2 * H), type_="approval", source="billing-detection", status="done")
    h.task(utc_text(NOW - 80 * H), type_="approval", source="billing-detection", status="assigned")

    with store.transaction(db):
        for key, value in (("last_push_ok_at", NOW - 600), ("last_push_at", NOW - 60),
                           ("last_pull_at", NOW - 120), ("last_heard_at", NOW - 60)):
            sync_status.put(db, {key: value})
        for i, (hotel, at) in enumerate((("demo", NOW - H), ("demo", NOW - 50 * H), ("harbor", NOW - H))):
            sync_status.record_conflict(db, hotel, {"entityType": "work_order", "entityId": "WO-1", "field": "notes",
                                             "rule": "field-lww", "outcome": "kept", "incoming": {}, "current": {}},
                                 source="pull", now=at, key=f"c{i}")
            db.execute("INSERT INTO security_events (hotel_id, kind, subject, details, detected_at)"
                       " VALUES (?, 'TOKEN_REPLAY', 'j', '{}', ?)", [hotel, at])
    h.at(NOW)
    return {"Authorization": "Bearer " + admin["sessionJWT"]}


def get(anon, headers, query=""):
    r = anon.get("/api/admin?endpoint=analytics" + query, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_every_figure_of_the_day(anon, history, instance):
    m = instance.config.scan.max_failures
    a = get(anon, history)
    assert a["success"] is True
    assert a["period"] == {"from": iso(NOW - 24 * H), "to": iso(NOW), "bucket": "hour"}
    assert a["scans"] == {"total": 5 + 4 + m + 1, "success": 5,
                          "refused": {"HOTEL_MISMATCH": 1, "INVALID_TOKEN": 1 + m, "RATE_LIMITED": 1,
                                      "TOKEN_ALREADY_USED": 1, "TOKEN_EXPIRED": 1},
                          "refusedTotal": 4 + m + 1}
    assert a["sessions"] == {"total": 5, "byRole": {"guest": 2, "staff": 2, "admin": 1}, "activeNow": 2}
    night = {"modelId": "night-audit", "runs": 20, "success": 17, "error": 2, "timeout": 1, "invalid": 0,
             "meanMs": 105.0, "p95Ms": 190.0, "errorRate": 0.15}
    messaging = {"modelId": "guest-messaging", "runs": 3, "success": 2, "error": 0, "timeout": 0, "invalid": 1,
                 "meanMs": 37.33, "p95Ms": 100.0, "errorRate": 0.0}
    assert a["models"] == [messaging, night]
    assert a["actions"] == {"tasksCreated": 2, "pmsUpdatesQueued": 5, "approvalsPending": 2}
    assert a["pmsSyncStatus"] == {"pending": 3, "delivered": 1, "dead": 1, "dropped": 0}
    assert a["sync"] == {"pending": 5, "oldestPendingAgeSeconds": 30 * H, "dead": 1,
                         "lastPushAt": iso(NOW - 600), "lastPushAttemptAt": iso(NOW - 60),
                         "lastPullAt": iso(NOW - 120), "lastHeardAt": iso(NOW - 60),
                         "conflicts": 1, "securityEvents": 1}
    # the seed's names
    assert a["aiModelUsage"] == {"guest-messaging": 3, "night-audit": 20}
    assert a["avgExecutionTimeMs"] == round((2100 + 112) / 23, 2)
    assert a["errorRate"] == round(3 / 23, 4)


def test_hourly_series_has_every_bucket(anon, history, instance):
    m = instance.config.scan.max_failures
    a = get(anon, history)
    first = NOW - 24 * H - 26 * 60 - 40  # 2026-05-27T20:00:00Z: the window's start, floored to the hour
    ts = [iso(first + k * H) for k in range(25)]
    assert [b["t"] for b in a["series"]["scans"]] == ts
    assert [b["t"] for b in a["series"]["models"]] == ts
    scans = dict.fromkeys(ts, (0, 0))
    scans[ts[19]] = (2, 3)  # 15:26:40 (-5 h): two guests in; used, invalid, hotel mismatch
    scans[ts[21]] = (0, 1 + m + 1)  # 17:26:40 (-3 h): expired, m junk, rate limited
    scans[ts[23]] = (2, 0)  # 19:56:40: staff and admin
    scans[ts[24]] = (1, 0)  # 20:11:40: the second staff member
    assert {b["t"]: (b["success"], b["refused"]) for b in a["series"]["scans"]} == scans
    runs = dict.fromkeys(ts, (0, 0))
    for i in range(20):  # night-audit at -20 h + i h + 60 s = 00:27:40 + i h
        runs[ts[4 + i]] = (1, int(i in (3, 15, 19)))
    runs[ts[19]] = (1 + 3, 1)  # night-audit i = 15 (an error) and three guest-messaging (INVALID is no error)
    assert {b["t"]: (b["runs"], b["errors"]) for b in a["series"]["models"]} == runs


def test_week_counts_older_rows_in_daily_buckets(anon, history, instance):
    assert instance.config.scan.max_failures == 10
    a = get(anon, history, "&period=week")
    assert a["period"]["bucket"] == "day"
    days = [b["t"] for b in a["series"]["scans"]]
    assert days[0] == "2026-05-21T00:00:00.000Z" and days[-1] == "2026-05-28T00:00:00.000Z" and len(days) == 8
    m = 10
    assert a["scans"]["success"] == 6 and a["scans"]["refused"]["INVALID_TOKEN"] == 2 + m
    by_day = {b["t"]: (b["success"], b["refused"]) for b in a["series"]["scans"]}
    assert by_day == dict.fromkeys(by_day, (0, 0)) | {"2026-05-25T00:00:00.000Z": (1, 1),  # three days ago
                                                       "2026-05-28T00:00:00.000Z": (5, 3 + m + 2)}
    assert a["sessions"]["byRole"] == {"guest": 3, "staff": 2, "admin": 1}
    assert [m["runs"] for m in a["models"]] == [3, 21] and a["models"][1]["p95Ms"] == 200.0
    assert a["actions"]["tasksCreated"] == 3 and a["actions"]["pmsUpdatesQueued"] == 6
    assert a["sync"]["conflicts"] == 2 and a["sync"]["securityEvents"] == 2
    month = get(anon, history, "&period=month")
    assert len(month["series"]["scans"]) == 31 and month["scans"]["total"] == a["scans"]["total"]


def test_from_and_to_dates_include_the_last_day(anon, history):
    a = get(anon, history, "&from=2026-05-28&to=2026-05-28")
    assert a["period"] == {"from": "2026-05-28T00:00:00.000Z", "to": "2026-05-29T00:00:00.000Z", "bucket": "hour"}
    assert len(a["series"]["scans"]) == 24
    assert a["scans"]["success"] == 5  # all of today's
    b = get(anon, history, "&from=2026-05-27&to=2026-05-28")
    assert len(b["series"]["scans"]) == 48 and b["period"]["bucket"] == "hour"
    c = get(anon, history, "&from=2026-05-25&to=2026-05-28")
    assert c["period"]["bucket"] == "day" and len(c["series"]["scans"]) == 4 and c["scans"]["success"] == 6


def test_from_and_to_datetimes(anon, history):
    # 15:26:40 exactly is included at both ends (to is inclusive)
    a = get(anon, history, "&from=2026-05-28T15:26:40Z&to=2026-05-28T15:26:40Z")
    assert a["scans"]["success"] == 2 and a["scans"]["refusedTotal"] == 3
    b = get(anon, history, "&from=2026-05-28T15:26:41%2B00:00")  # no to: up to now
    assert b["scans"]["success"] == 3 and b["period"]["to"] == iso(NOW)
    c = get(anon, history, "&from=2026-05-28T17:26:40")  # no offset: UTC
    assert c["scans"]["refused"] == {"INVALID_TOKEN": 10, "RATE_LIMITED": 1, "TOKEN_EXPIRED": 1}
    assert c["scans"]["success"] == 3


def test_another_hotel_sees_only_its_own(anon, history, issue, clock):
    r = anon.post("/api/qr/scan", json={"qrToken": issue("admin", "harbor"), "hotelId": "harbor"})
    a = get(anon, {"Authorization": "Bearer " + r.get_json()["sessionJWT"]})
    assert a["scans"] == {"total": 4, "success": 3, "refused": {"INVALID_TOKEN": 1}, "refusedTotal": 1}
    assert a["sessions"]["byRole"] == {"guest": 1, "staff": 0, "admin": 2}
    assert a["models"] == [{"modelId": "night-audit", "runs": 1, "success": 0, "error": 1, "timeout": 0,
                            "invalid": 0, "meanMs": 5000.0, "p95Ms": 5000.0, "errorRate": 1.0}]
    assert a["actions"] == {"tasksCreated": 1, "pmsUpdatesQueued": 1, "approvalsPending": 0}
    assert (a["sync"]["conflicts"], a["sync"]["securityEvents"], a["sync"]["dead"]) == (1, 1, 0)


def test_an_empty_hotel_has_zeros_and_no_division_by_zero(anon, login):
    a = get(anon, login("admin", "harbor"))
    assert a["scans"] == {"total": 1, "success": 1, "refused": {}, "refusedTotal": 0}
    assert a["models"] == [] and a["aiModelUsage"] == {}
    assert a["avgExecutionTimeMs"] is None and a["errorRate"] is None
    assert a["sync"]["oldestPendingAgeSeconds"] == 0.0 and a["sync"]["lastPushAt"] is None
    assert len(a["series"]["scans"]) == 25 and len(a["series"]["models"]) == 25


@pytest.mark.parametrize("query,field", [
    ("&period=year", "period"),
    ("&from=yesterday", "from"),
    ("&from=2026-13-01", "from"),
    ("&from=2026-02-30", "from"),
    ("&from=20260528", "from"),
    ("&to=2026-05-28", "from"),
    ("&from=2026-05-28&to=2026-05-27", "from"),
    ("&from=2026-05-28&period=day", "period"),
    ("&from=2025-01-01&to=2026-05-28", "from"),  # more than 366 days
    ("&from=2026-05-28&to=9999-12-31", "to"),
    ("&from=" + "9" * 41, "from"),
    ("&from=2026-05-28T25:00:00Z", "from"),
    ("&from=0001-01-01&to=0001-01-02", "from"),  # before 1970
    ("&from=1969-12-31T23:59:59Z", "from"),
])
def test_bad_windows_are_validation_errors_naming_the_form(anon, login, query, field):
    r = anon.get("/api/admin?endpoint=analytics" + query, headers=login("admin"))
    body = r.get_json()
    assert (r.status_code, body["error"]["code"]) == (400, "VALIDATION_ERROR"), body
    assert body["error"]["details"]["field"] == field
    if field in ("from", "to") and "expected" in body["error"]["details"]:
        assert "YYYY-MM-DD" in body["error"]["details"]["expected"]


def test_earliest_window_answers(anon, login):
    a = get(anon, login("admin"), "&from=1970-01-01&to=1970-01-02")
    assert a["scans"]["total"] == 0 and a["period"]["from"] == "1970-01-01T00:00:00.000Z"


def test_analytics_is_get_only(anon, login):
    r = anon.post("/api/admin?endpoint=analytics", headers=login("admin"), json={})
    # (a method an endpoint does not serve is moving from 400 VALIDATION_ERROR to 405 METHOD_NOT_ALLOWED)
    assert (r.status_code, r.get_json()["error"]["code"]) in {(400, "VALIDATION_ERROR"), (405, "METHOD_NOT_ALLOWED")}
    assert r.get_json()["error"]["details"]["method"] == "POST"


ADMIN_ENDPOINTS = [("analytics", "GET", None), ("export", "GET", None), ("export", "POST", {"format": "json"}),
                   ("sessions", "GET", None), ("sessions", "POST", {"sessionId": "x"}),
                   ("sessions", "DELETE", {"sessionId": "x"}), ("tokens", "GET", None),
                   ("tokens", "POST", {"userRole": "guest", "expiresInDays": 30}), ("tokens", "PUT", {"jti": "x"}),
                   ("outbox", "GET", None), ("conflicts", "GET", None), ("security", "GET", None),
                   ("sync", "GET", None)]


@pytest.mark.parametrize("role", ["guest", "staff"])
@pytest.mark.parametrize("endpoint,method,body", ADMIN_ENDPOINTS)
def test_guest_and_staff_are_forbidden_everywhere(anon, login, instance, role, endpoint, method, body):
    headers = login(role)
    before = instance.db().execute("SELECT count(*) FROM qr_tokens").fetchone()[0]
    r = anon.open(f"/api/admin?endpoint={endpoint}", method=method, headers=headers, json=body)
    assert (r.status_code, r.get_json()["error"]["code"]) == (403, "FORBIDDEN")
    assert r.mimetype == "application/json" and "Content-Disposition" not in r.headers
    assert instance.db().execute("SELECT count(*) FROM qr_tokens").fetchone()[0] == before
    row = instance.db().execute("SELECT details FROM audit_log WHERE event = 'security.forbidden'"
                                " ORDER BY id DESC LIMIT 1").fetchone()
    assert json.loads(row[0]) == {"path": "/api/admin", "method": method, "role": role}


def test_without_a_session_nothing_is_answered(anon):
    for endpoint in ("analytics", "export"):
        r = anon.get(f"/api/admin?endpoint={endpoint}")
        assert (r.status_code, r.get_json()["error"]["code"]) == (401, "UNAUTHORIZED")


def test_day_window_is_the_last_24_hours_whatever_the_date(anon, login, clock):
    clock.t = datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp()  # a DST night in Europe: UTC ignores it
    a = get(anon, login("admin"))
    start = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    assert a["period"]["from"] == iso(start.timestamp())
    assert a["series"]["scans"][0]["t"] == iso((start - timedelta(minutes=30)).timestamp())


# --- POST endpoint=sessions: one session's details and timeline ----------------------------------

@pytest.fixture
def staff_day(anon, issue, instance, clock, login):
    """A staff session that runs models, changes a work order, files tickets, is refused once,
    decides an approval and is ended by an admin; plus rows that must stay out of its timeline."""
    from kiosk import workorders
    from kiosk.models import actions
    from kiosk.models.base import Action

    t0 = clock.now()
    admin = login("admin", user="a-1")
    r = anon.post("/api/qr/scan", json={"qrToken": issue("staff", user="s-7", name="Sam"), "hotelId": "demo"})
    staff_body = r.get_json()
    staff = {"Authorization": "Bearer " + staff_body["sessionJWT"]}
    sid = staff_body["sessionId"]
    db = instance.db()
    workorders.create(db, hotel_id="demo", work_order_id="WO-1", by="pms", now=t0, node="k", room_number="101")
    h = History(anon, issue, instance, clock)
    clock.advance(10)
    h.run("task-routing", clock.now(), 40.0, session=sid, actions=1)
    actions.apply(db, "demo", [Action("CREATE_TASK", {"type": "leak", "roomNumber": "101"})],
                  model_id="task-routing", by="s-7", now=clock.now(), node="k")
    clock.advance(10)
    h.run("night-audit", clock.now(), 90.0, "ERROR", session=sid)
    h.run("housekeeping", clock.now() + 0.5, 30000.0, "TIMEOUT", session=sid)
    clock.advance(10)
    r = anon.post("/api/pms/update", headers=staff, json={"workOrderId": "WO-1",
                                                          "changes": {"status": "assigned", "assignee": "s-7"}})
    assert r.status_code == 200
    clock.advance(10)
    ticket = {"type": "maintenance", "title": "AC rattles", "roomNumber": "101"}
    ticket_id = anon.post("/api/tickets/auto", headers=staff, json=ticket).get_json()["ticket"]["ticketId"]
    clock.advance(10)
    assert anon.post("/api/tickets/auto", headers=staff, json=ticket).status_code == 200  # a duplicate
    clock.advance(10)
    assert anon.get("/api/admin?endpoint=tokens", headers=staff).status_code == 403
    clock.advance(10)
    done = actions.apply(db, "demo", [Action("UPDATE_PMS", {"entity": "charge", "id": "C-1", "changes": {"amount": 0},
                                                            "requiresApproval": True})],
                         model_id="billing-detection", by="s-7", now=clock.now(), node="k")
    h.run("night-audit", clock.now(), 80.0, session=sid)
    clock.advance(10)
    task = done[0]["approvalTaskId"]
    assert anon.post("/api/approvals", headers=staff, json={"taskId": task, "decision": "approve"}).status_code == 200
    # another user, the same minute: not in s-7's timeline
    other = login("staff", user="s-8")
    anon.post("/api/tickets/auto", headers=other, json={"type": "it", "title": "printer jammed"})
    clock.advance(10)
    assert anon.delete("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": sid}).status_code == 200
    clock.advance(10)
    # s-7 again after the session ended: not in this session's timeline
    again = login("staff", user="s-7")
    anon.post("/api/tickets/auto", headers=again, json={"type": "it", "title": "screen flickers"})
    return {"admin": admin, "sid": sid, "t0": t0, "ticketId": ticket_id, "approval": task}


def detail(anon, headers, sid, status=200):
    r = anon.post("/api/admin?endpoint=sessions", headers=headers, json={"sessionId": sid})
    assert r.status_code == status, r.get_json()
    return r.get_json()


def test_session_detail_and_timeline(anon, staff_day):
    d = detail(anon, staff_day["admin"], staff_day["sid"])
    t0 = staff_day["t0"]
    assert d["success"] is True
    names = ("personName", "staffName", "guestName", "roomNumber")  # kiosk/names.py: Sam is not on the staff list
    assert {k: d["session"][k] for k in names} == {"personName": "Sam", "staffName": None, "guestName": None,
                                                   "roomNumber": None}
    assert {k: v for k, v in d["session"].items() if k not in names} == {
        "sessionId": staff_day["sid"], "userId": "s-7", "role": "staff", "name": "Sam",
        "scanMethod": "camera", "createdAt": iso(t0), "expiresAt": iso(t0 + 3600),
        "endedAt": iso(t0 + 90), "endReason": "terminated_by_admin", "status": "ended"}
    got = [(e["at"], e["kind"]) for e in d["timeline"]]
    assert got == [(iso(t0), "scan"), (iso(t0), "workflow.started"),
                   (iso(t0 + 10), "model.run"), (iso(t0 + 10), "model.actions"),
                   (iso(t0 + 20), "model.run"), (iso(t0 + 20.5), "model.run"),
                   (iso(t0 + 30), "pms.change"),
                   (iso(t0 + 40), "ticket.created"),
                   (iso(t0 + 50), "ticket.duplicate"),
                   (iso(t0 + 60), "security.forbidden"),
                   (iso(t0 + 70), "model.run"), (iso(t0 + 70), "model.actions"),
                   (iso(t0 + 80), "approval"),
                   (iso(t0 + 90), "session.ended")]
    e = {k: e for e, k in ((e, e["kind"]) for e in d["timeline"])}  # the last of each kind
    assert d["timeline"][0]["details"] | {"jti": None} == {"outcome": "success", "actor": "s-7", "jti": None,
                                                           "client": "127.0.0.1", "role": "staff",
                                                           "scanMethod": "camera"}
    assert d["timeline"][1]["details"]["triggeredAIModels"] == ["task-routing", "housekeeping", "night-audit",
                                                                 "maintenance", "billing-detection"]
    assert d["timeline"][2]["details"] | {"interactionId": 0} == {
        "interactionId": 0, "modelId": "task-routing", "status": "SUCCESS", "durationMs": 40.0, "actions": 1,
        "error": None}
    assert d["timeline"][2]["summary"] == "task-routing SUCCESS in 40 ms, 1 action(s)"
    assert d["timeline"][3]["details"] == {"modelId": "task-routing", "actions": ["CREATE_TASK"]}
    assert e["pms.change"]["details"]["changes"] == {"status": {"old": "open", "new": "assigned"},
                                                     "assignee": {"old": None, "new": "s-7"}}
    assert e["pms.change"]["details"]["workOrderId"] == "WO-1"
    assert e["ticket.created"]["details"]["ticketId"] == staff_day["ticketId"]
    assert e["ticket.duplicate"]["details"] == {"ticketId": staff_day["ticketId"]}
    assert e["security.forbidden"]["details"] == {"outcome": "refused", "code": "FORBIDDEN", "path": "/api/admin",
                                                  "method": "GET", "role": "staff"}
    assert e["approval"]["details"]["decision"] == "approve" and e["approval"]["details"]["taskId"] == \
        staff_day["approval"]
    assert e["session.ended"]["details"] == {"reason": "terminated_by_admin", "by": "admin:a-1"}
    assert all(set(x) == {"at", "kind", "summary", "details", "textKey", "params"} and x["summary"]
               for x in d["timeline"])


def test_session_workflow_steps(anon, staff_day):
    w = detail(anon, staff_day["admin"], staff_day["sid"])["workflow"]
    t0 = staff_day["t0"]
    assert (w["workflow"], w["state"], w["status"], w["completedSteps"], w["totalSteps"]) == \
        ("staff", "started", "failed", 2, 5)
    assert [(s["step"], s["name"], s["status"]) for s in w["steps"]] == [
        (1, "scan", "completed"), (2, "workflow.start", "completed"), (3, "task-routing", "completed"),
        (4, "housekeeping", "timeout"), (5, "night-audit", "completed"), (6, "maintenance", "pending"),
        (7, "billing-detection", "pending")]
    night = w["steps"][4]
    assert (night["at"], night["durationMs"], night["runs"]) == (iso(t0 + 70), 80.0, 2)  # the latest run counts
    assert w["steps"][5] == {"step": 6, "name": "maintenance", "modelId": "maintenance", "status": "pending",
                             "at": None, "durationMs": None, "actions": 0, "runs": 0}


def test_an_expired_guest_session(anon, login, clock, issue):
    admin = login("admin")
    r = anon.post("/api/qr/scan", json={"qrToken": issue("guest", user="R-1"), "hotelId": "demo"})
    sid = r.get_json()["sessionId"]
    clock.advance(3600 + 5)
    admin = login("admin")
    d = detail(anon, admin, sid)
    assert d["session"]["status"] == "expired"
    assert [e["kind"] for e in d["timeline"]] == ["scan", "workflow.started", "session.expired"]
    assert d["timeline"][-1]["at"] == iso(NOW + 3600)
    assert d["workflow"]["status"] == "in_progress" and d["workflow"]["totalSteps"] == 3


def test_an_admin_session_has_no_model_steps(anon, login, keys):
    import jwt as pyjwt
    admin = login("admin")
    sid = pyjwt.decode(admin["Authorization"][7:], keys.session_secret, algorithms=["HS256"],
                       options={"verify_exp": False})["sid"]
    w = detail(anon, admin, sid)["workflow"]
    assert (w["status"], w["completedSteps"], w["totalSteps"], len(w["steps"])) == ("completed", 0, 0, 2)


def test_session_detail_is_own_hotel_only(anon, login, issue):
    r = anon.post("/api/qr/scan", json={"qrToken": issue("guest", "harbor"), "hotelId": "harbor"})
    harbor_sid = r.get_json()["sessionId"]
    admin = login("admin")
    body = detail(anon, admin, harbor_sid, 404)
    assert body["error"]["code"] == "NOT_FOUND" and "harbor" not in json.dumps(body["error"]["message"])
    assert detail(anon, admin, "no-such-session", 404)["error"]["code"] == "NOT_FOUND"
    for bad in ({}, {"sessionId": ""}, {"sessionId": 5}, {"sessionId": "x", "more": 1}, ["x"]):
        r = anon.post("/api/admin?endpoint=sessions", headers=admin, json=bad)
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_session_list_filters(anon, login, issue, clock):
    admin_headers = login("admin", user="a-1")
    old = anon.post("/api/qr/scan", json={"qrToken": issue("guest", user="old"), "hotelId": "demo"}).get_json()
    clock.advance(1800)
    ended = login("staff", user="ended")
    assert anon.delete("/api/session", headers=ended).status_code == 200
    clock.advance(1900)  # the first guest's session has expired; the admin's too: a fresh admin
    admin_headers = login("admin", user="a-2")
    login("guest", user="live")

    def users(query):
        r = anon.get("/api/admin?endpoint=sessions" + query, headers=admin_headers)
        assert r.status_code == 200, r.get_json()
        return sorted((s["userId"], s["status"]) for s in r.get_json()["sessions"])

    everyone = [("a-1", "expired"), ("a-2", "active"), ("ended", "ended"), ("live", "active"), ("old", "expired")]
    assert users("") == users("&status=all") == everyone
    assert users("&status=active") == users("&active=1") == users("&active=1&status=active") == \
        [("a-2", "active"), ("live", "active")]
    assert users("&status=expired") == [("a-1", "expired"), ("ended", "ended"), ("old", "expired")]
    assert old["sessionId"]
    for bad in ("&status=gone", "&active=1&status=expired", "&active=yes", "&limit=0"):
        r = anon.get("/api/admin?endpoint=sessions" + bad, headers=admin_headers)
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR"), bad
