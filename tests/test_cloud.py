"""The reference cloud: per-entry results, idempotency, hotel scoping, bad input, CLI, a real server.

The storage contract suite: every test that takes ``db`` or ``client`` runs against both
storages — a real SQLite file in a temp dir, and a fresh database on a throwaway
PostgreSQL server (tests/pgserver.py) — through the Flask test client; one test runs
``kiosk-cloud serve`` as a process and pushes to it over HTTP.
"""

from __future__ import annotations

import json
import signal

import pytest
import requests
from click.testing import CliRunner
from harness import Cloud

from kiosk.clock import FakeClock
from sync.cloud import db as cloud_db
from sync.cloud import devices, storage
from sync.cloud import tickets as cloud_tickets
from sync.cloud.app import create_app
from sync.cloud.apply import apply_push
from sync.cloud.cli import main as cli
from sync.transport import InMemoryTransport

_seq = iter(range(10**9))


def entry(kind, entity_id, payload, *, hotel="demo", key=None, entity_type=None):
    entity_type = entity_type or {"work_order": "work_order", "ticket": "ticket", "token": "qr_token",
                                  "session": "session"}.get(kind.split(".")[0], "thing")
    n = next(_seq)
    return {"key": key or f"key-{n}", "hotelId": hotel, "kind": kind, "entityType": entity_type,
            "entityId": entity_id, "hlc": f"{1_780_000_000_000 + n:015d}-00000-k1", "createdAt": 1_780_000_000.0,
            "payload": payload}


def wo_created(wid, *, status="open", **kw):
    fields = {"workOrderId": wid, "assetId": None, "roomNumber": "101", "type": "failure",
              "description": "leak", "status": status, "assignee": None, "priority": "normal", "notes": "",
              "openedAt": "2026-06-01T10:00:00.000Z", "closedAt": None}
    return entry("work_order.created", wid, fields, **kw)


def wo_updated(wid, by="s-1", **changes):
    payload = {"workOrderId": wid, "by": by, "at": "2026-06-01T11:00:00.000Z",
               "changes": {f: {"old": old, "new": new} for f, (old, new) in changes.items()}}
    return entry("work_order.updated", wid, payload)


def ticket(tid, *, title="towels", **kw):
    fields = {"ticketId": tid, "type": "housekeeping", "title": title, "description": "", "roomNumber": "12",
              "priority": "normal", "queue": "housekeeping", "status": "open", "fingerprint": "f" * 20,
              "createdAt": "2026-06-01T10:00:00.000Z", "createdBy": "s-1"}
    return entry("ticket.created", tid, fields, **kw)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "cloud"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    """None (SQLite in the data dir) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg").new_database(f"c{next(_seq)}")


@pytest.fixture
def db(data_dir, database):
    st = storage.open_storage(data_dir, database)
    st.prepare()
    yield st.connect()
    st.close()


@pytest.fixture
def creds(db):
    return {"k1": devices.add_device(db, "k1", ["demo"]),
            "k2": devices.add_device(db, "k2", ["harbor"]),
            "hq": devices.add_device(db, "hq", ["demo", "harbor"])}


@pytest.fixture
def client(data_dir, db, clock, database):
    app = create_app(data_dir, clock=clock, database=database)
    app.config["TESTING"] = True
    yield app.test_client()
    app.config["CLOUD_STORAGE"].close()


@pytest.fixture
def push(client, creds):
    """push(entries, device="k1", key=None) -> response."""
    def _push(entries, device="k1", key=None, body=None):
        headers = {"Authorization": f"Bearer {creds[device]}"}
        if key:
            headers["Idempotency-Key"] = key
        return client.post("/sync/v1/push", headers=headers,
                           json=body if body is not None else {"deviceId": device, "entries": entries})
    return _push


def statuses(resp):
    assert resp.status_code == 200, resp.get_json()
    return [r["status"] for r in resp.get_json()["results"]]


def read(client, creds, what, hotel="demo", device="k1"):
    r = client.get(f"/v1/hotels/{hotel}/{what}", headers={"Authorization": f"Bearer {creds[device]}"})
    return r


def test_push_applies_every_kind_and_the_read_endpoints_show_it(push, client, creds, db):
    entries = [wo_created("WO-1"), ticket("T-1"),
               wo_updated("WO-1", status=("open", "assigned"), assignee=(None, "s-12")),
               entry("token.used", "jti-1", {"jti": "jti-1", "sessionId": "S1"}),
               entry("session.opened", "S1", {"sessionId": "S1", "role": "staff"}),
               wo_updated("WO-1", status=("assigned", "in_progress"), notes=("", "on it"))]
    r = push(entries)
    assert statuses(r) == ["applied"] * 6
    assert [x["key"] for x in r.get_json()["results"]] == [e["key"] for e in entries]
    assert r.get_json()["serverTime"] == FakeClock().now()
    [wo] = read(client, creds, "work-orders").get_json()["workOrders"]
    assert (wo["workOrderId"], wo["status"], wo["assignee"], wo["notes"], wo["version"]) == \
           ("WO-1", "in_progress", "s-12", "on it", 3)
    assert [(h["field"], h["old"], h["new"], h["by"]) for h in wo["history"]] == [
        ("status", "open", "assigned", "s-1"), ("assignee", None, "s-12", "s-1"),
        ("status", "assigned", "in_progress", "s-1"), ("notes", "", "on it", "s-1")]
    [t] = read(client, creds, "tickets").get_json()["tickets"]
    assert (t["ticketId"], t["hotelId"], t["title"], t["queue"]) == ("T-1", "demo", "towels", "housekeeping")
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2


def test_entries_are_idempotent_across_differently_batched_pushes(push, client, creds):
    a, b, c, d = wo_created("WO-1"), wo_updated("WO-1", status=("open", "assigned")), ticket("T-1"), ticket("T-2")
    assert statuses(push([a, b, c], key="batch-1")) == ["applied"] * 3
    r = push([c, b, d], key="batch-2")
    assert statuses(r) == ["duplicate", "duplicate", "applied"]
    assert r.get_json()["results"][0]["original"] == {"status": "applied"}
    assert statuses(push([d, d])) == ["duplicate", "duplicate"]
    [wo] = read(client, creds, "work-orders").get_json()["workOrders"]
    assert (wo["status"], len(wo["history"]), wo["version"]) == ("assigned", 1, 2)
    assert len(read(client, creds, "tickets").get_json()["tickets"]) == 2


def test_a_repeated_idempotency_key_returns_the_original_body(push, clock):
    entries = [wo_created("WO-1"), ticket("T-1")]
    first = push(entries, key="k-1")
    clock.advance(60)
    again = push(entries, key="k-1")
    assert again.status_code == 200 and again.get_json() == first.get_json()  # "applied", first serverTime
    assert statuses(push(entries, key="k-2")) == ["duplicate", "duplicate"]
    other_device = push([{**e, "hotelId": "harbor"} for e in entries], device="k2", key="k-1")
    assert [r["reason"] for r in other_device.get_json()["results"]] == ["KEY_CONFLICT: this key was used by "
                                                                         "another device for another hotel"] * 2


def test_the_same_idempotency_key_for_other_entries_is_refused(push, client, creds):
    assert statuses(push([ticket("T-1")], key="same")) == ["applied"]
    r = push([ticket("T-2")], key="same")
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert [t["ticketId"] for t in read(client, creds, "tickets").get_json()["tickets"]] == ["T-1"]


def test_a_push_remembered_under_the_earlier_digest_is_still_known_when_retried(push, db):
    from sync.cloud import pushes

    entries = [ticket("T-1", title="Handtücher für 12"), ticket("T-2")]
    first = push(entries, key="old")
    # as an earlier version remembered it: the digest of the entries written ASCII-escaped
    old = pushes._digest_v1(json.loads(json.dumps(entries)))
    assert old != pushes.digest(entries) and not old.startswith("2:")
    with storage.transaction(db):
        db.execute("UPDATE push_requests SET body_sha256 = ? WHERE idempotency_key = 'old'", [old])
    again = push([{k: e[k] for k in reversed(list(e))} for e in entries], key="old")  # its keys in another order
    assert again.status_code == 200 and again.get_json() == first.get_json()
    other = push([ticket("T-1", title="Handtücher für 14"), ticket("T-2")], key="old")
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert pushes.digest(entries) == pushes.digest([dict(reversed(list(e.items()))) for e in entries])


def test_invalid_transition_is_rejected_remembered_and_blocks_only_its_entity(push, client, creds):
    assert statuses(push([wo_created("WO-1"), wo_created("WO-2")])) == ["applied", "applied"]
    bad = wo_updated("WO-1", status=("open", "done"))
    later = wo_updated("WO-1", notes=("", "x"))
    other = wo_updated("WO-2", status=("open", "assigned"))
    r = push([bad, later, other], key="p1")
    assert r.get_json()["results"] == [
        {"key": bad["key"], "status": "rejected", "reason": "INVALID_TRANSITION: open -> done"},
        {"key": later["key"], "status": "retry", "reason": "blocked by an earlier entry of work_order WO-1"},
        {"key": other["key"], "status": "applied"}]
    again = push([bad], key="p2")  # retrying a rejected entry gives the same answer
    assert again.get_json()["results"] == [r.get_json()["results"][0]]
    assert statuses(push([later], key="p3")) == ["applied"]  # a retry was not remembered
    wos = {w["workOrderId"]: w for w in read(client, creds, "work-orders").get_json()["workOrders"]}
    assert (wos["WO-1"]["status"], wos["WO-1"]["notes"], wos["WO-2"]["status"]) == ("open", "x", "assigned")


def test_transitions_are_checked_against_the_clouds_status_not_the_entrys_old(push, client, creds):
    push([wo_created("WO-1"), wo_updated("WO-1", status=("open", "assigned"))])
    # a second kiosk still thought it was open; assigned -> in_progress is legal from the cloud's state
    assert statuses(push([wo_updated("WO-1", status=("open", "in_progress"))])) == ["applied"]
    done = [wo_updated("WO-1", status=("in_progress", "done")), wo_updated("WO-1", status=("done", "open"))]
    r = push(done)
    assert statuses(r) == ["applied", "rejected"]
    assert r.get_json()["results"][1]["reason"] == "INVALID_TRANSITION: done -> open"
    [wo] = read(client, creds, "work-orders").get_json()["workOrders"]
    assert wo["status"] == "done" and wo["closedAt"] == "2026-06-01T11:00:00.000Z"
    assert [h["old"] for h in wo["history"]] == ["open", "assigned", "in_progress"]


def test_an_update_to_the_value_already_held_is_applied_without_history(push, client, creds):
    push([wo_created("WO-1"), wo_updated("WO-1", status=("open", "assigned"))])
    assert statuses(push([wo_updated("WO-1", status=("open", "assigned"), priority=("normal", "normal"))])) \
        == ["applied"]
    [wo] = read(client, creds, "work-orders").get_json()["workOrders"]
    assert (wo["version"], len(wo["history"])) == (2, 1)


def test_creating_an_existing_work_order_or_ticket_again(push):
    a = wo_created("WO-1")
    assert statuses(push([a, wo_created("WO-1")])) == ["applied", "applied"]  # identical: nothing changes
    r = push([{**wo_created("WO-1"), "payload": {**a["payload"], "description": "other"}}])
    assert r.get_json()["results"][0]["reason"].startswith("WORK_ORDER_EXISTS: WO-1")
    r = push([ticket("T-1"), ticket("T-1", title="another")])
    assert statuses(r) == ["applied", "rejected"]
    assert r.get_json()["results"][1]["reason"].startswith("DUPLICATE_TICKET_ID: T-1")


@pytest.mark.parametrize("mutate, reason", [
    (lambda e: e.update(kind="work_order.deleted"), "UNKNOWN_KIND: work_order.deleted"),
    (lambda e: e.update(hlc=None), "INVALID_ENTRY: hlc"),
    (lambda e: e.update(createdAt="yesterday"), "INVALID_ENTRY: createdAt"),
    (lambda e: e.update(payload=[1]), "INVALID_ENTRY: payload"),
    (lambda e: e.update(entityType="ticket"), "INVALID_ENTRY: work_order.updated needs entityType work_order"),
    (lambda e: e.update(entityId="WO-2"), "INVALID_ENTRY: payload.workOrderId 'WO-1' is not the entityId"),
    (lambda e: e["payload"]["changes"].update(openedAt={"old": None, "new": "x"}),
     "INVALID_ENTRY: payload: Value error, fields that cannot change: openedAt"),
    (lambda e: e["payload"]["changes"].update(status={"old": "open", "new": "closed"}),
     "INVALID_ENTRY: payload: Value error, changes.status.new must be one of"),
    (lambda e: e["payload"].update(notes="x" * 70_000), "INVALID_ENTRY: payload is 70"),
    # 66,000 bytes in 22,000 characters: the limit is in UTF-8 bytes, not characters
    (lambda e: e["payload"].update(notes="\u20ac" * 22_000), "INVALID_ENTRY: payload is 66"),
    (lambda e: e.update(entityId="WO-404", payload={**e["payload"], "workOrderId": "WO-404"}),
     "UNKNOWN_WORK_ORDER: no work order WO-404 in hotel demo"),
])
def test_bad_entries_are_rejected_with_a_reason(push, mutate, reason):
    push([wo_created("WO-1")])
    e = wo_updated("WO-1", notes=("", "x"))
    mutate(e)
    r = push([e, ticket("T-1")])
    assert statuses(r) == ["rejected", "applied"]
    assert r.get_json()["results"][0]["reason"].startswith(reason)
    assert statuses(push([e])) == ["rejected"]  # remembered


def test_a_device_writes_and_reads_only_its_own_hotels(push, client, creds):
    r = push([ticket("T-1"), ticket("T-2", hotel="harbor")])
    assert statuses(r) == ["applied", "rejected"]
    assert r.get_json()["results"][1]["reason"] == "FORBIDDEN_HOTEL: device k1 may not write for hotel harbor"
    assert statuses(push([ticket("T-3", hotel="harbor")], device="k2")) == ["applied"]
    for what in ("tickets", "work-orders"):
        r = read(client, creds, what, hotel="harbor", device="k1")
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "FORBIDDEN"
    assert [t["ticketId"] for t in read(client, creds, "tickets", "demo", "hq").get_json()["tickets"]] == ["T-1"]
    assert [t["ticketId"] for t in read(client, creds, "tickets", "harbor", "hq").get_json()["tickets"]] == ["T-3"]


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_a_bad_or_missing_credential_is_401(client, creds, auth):
    headers = {"Authorization": auth} if auth else {}
    for method, path in (("post", "/sync/v1/push"), ("get", "/sync/v1/health"),
                         ("get", "/v1/hotels/demo/tickets"), ("get", "/v1/hotels/demo/work-orders")):
        r = getattr(client, method)(path, headers=headers, json={"deviceId": "k1", "entries": []})
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "UNAUTHORIZED", (path, r.data)


def test_health_and_a_revoked_device(client, creds, db, clock):
    h = {"Authorization": f"Bearer {creds['k1']}"}
    assert client.get("/sync/v1/health", headers=h).get_json() == {"status": "ok", "serverTime": clock.now()}
    devices.revoke_device(db, "k1", clock.now())
    assert client.get("/sync/v1/health", headers=h).status_code == 401
    new = devices.add_device(db, "k1", ["demo"])  # a new credential; the old one stays dead
    assert client.get("/sync/v1/health", headers=h).status_code == 401
    assert client.get("/sync/v1/health", headers={"Authorization": f"Bearer {new}"}).status_code == 200


@pytest.mark.parametrize("data", [
    b"not json", b"[]", b"null", b'{"entries": []}', b'{"deviceId": "k1"}', b'{"deviceId": "k1", "entries": {}}',
    b'{"deviceId": 7, "entries": []}', b'{"deviceId": "k1", "entries": [1]}',
    b'{"deviceId": "k1", "entries": [{"key": 5}]}', b'{"deviceId": "k1", "entries": [{"key": ""}]}',
    b'{"deviceId": "k1", "entries": [{"createdAt": NaN, "key": "a"}]}', b"\xff\xfe\x00",
    b'{"deviceId": "k1", "entries": [{"createdAt": 1e400, "key": "a"}]}',  # no double: was read as infinity
    b'{"deviceId": "k1", "entries": [{"createdAt": -1e400, "n": 12345678901234567890123, "key": "a"}]}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"deviceId": "k1", "entries": [{"key": "a", "payload": {"x": ' + b"[" * 61 + b"]" * 61 + b"}}]}",  # 65 deep: 1 past
])
def test_malformed_bodies_are_400_never_500(client, creds, data):
    r = client.post("/sync/v1/push", data=data, content_type="application/json",
                    headers={"Authorization": f"Bearer {creds['k1']}"})
    assert r.status_code == 400, r.data[:300]
    err = r.get_json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and err["message"] and "details" in err
    assert b"Traceback" not in r.data


def test_size_limits_deviceid_and_unknown_routes(push, client, creds):
    r = push(None, body={"deviceId": "k1", "entries": [ticket(f"T-{i}") for i in range(1001)]})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    r = push(None, body={"deviceId": "k1", "entries": [{"key": "x", "pad": "x" * (4 * 1024 * 1024)}]})
    assert r.status_code == 413
    r = push([], body={"deviceId": "k2", "entries": []})
    assert r.status_code == 403 and "deviceId" in r.get_json()["error"]["message"]
    assert statuses(push([])) == []
    assert client.get("/nope").status_code == 404
    assert client.get("/sync/v1/push").get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_a_crash_mid_push_applies_nothing(push, db, monkeypatch):
    def boom(*a):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(cloud_tickets, "create", boom)
    entries = [wo_created("WO-1"), ticket("T-1")]
    r = push(entries, key="crash")
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "INTERNAL_ERROR"
    assert b"disk on fire" not in r.data and b"Traceback" not in r.data
    for table in ("applied_entries", "work_orders", "push_requests", "tickets"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    monkeypatch.undo()
    assert statuses(push(entries, key="crash")) == ["applied", "applied"]


def test_apply_push_as_a_library_and_through_the_in_memory_transport(db, creds, clock):
    dev = devices.authenticate(db, creds["k1"])
    assert dev == devices.Device("k1", ("demo",))
    assert devices.authenticate(db, creds["k1"] + "x") is None
    a = ticket("T-1")
    assert apply_push(db, dev, [a], clock.now()) == [{"key": a["key"], "status": "applied"}]
    t = InMemoryTransport(db, dev, clock)
    assert [r["status"] for r in t.push("k1", [a, ticket("T-2")], "b")] == ["duplicate", "applied"]
    assert db.execute("SELECT credential_hash FROM devices WHERE device_id = 'k1'").fetchone()[0] \
        == devices.credential_hash(creds["k1"])


def test_cli_device_add_then_tickets_and_work_orders_as_json(tmp_path, monkeypatch, clock):
    d = str(tmp_path / "c")
    run = CliRunner().invoke
    r = run(cli, ["device", "add", "kiosk-1", "--hotel", "demo", "--hotel", "harbor", "--data-dir", d])
    assert r.exit_code == 0, r.output
    cred = r.output.strip()
    assert r.output == cred + "\n" and len(cred) == 43  # only the credential, 32 bytes url-safe
    db = cloud_db.open_data_dir(d)
    dev = devices.authenticate(db, cred)
    assert dev.hotels == ("demo", "harbor")
    assert cred not in (tmp_path / "c" / "cloud.db").read_bytes().decode(errors="replace")
    apply_push(db, dev, [wo_created("WO-1"), wo_updated("WO-1", status=("open", "assigned")), ticket("T-1"),
                         ticket("T-9", hotel="harbor")], clock.now())
    tix = json.loads(run(cli, ["--data-dir", d, "tickets", "--hotel", "demo", "--json"]).output)
    assert [t["ticketId"] for t in tix] == ["T-1"]
    assert set(tix[0]) >= {"ticketId", "type", "title", "description", "roomNumber", "priority", "queue",
                           "status", "fingerprint", "createdAt", "createdBy"}
    monkeypatch.setenv("KIOSK_CLOUD_DATA_DIR", d)
    [wo] = json.loads(run(cli, ["work-orders", "--hotel", "demo", "--json"]).output)
    assert (wo["workOrderId"], wo["status"], [h["new"] for h in wo["history"]]) == ("WO-1", "assigned", ["assigned"])
    assert "WO-1  assigned" in run(cli, ["work-orders", "--hotel", "demo"]).output
    assert json.loads(run(cli, ["work-orders", "--hotel", "harbor", "--json"]).output) == []
    bad = run(cli, ["device", "add", "no spaces", "--hotel", "demo"])
    assert bad.exit_code == 1 and "VALIDATION_ERROR" in bad.output


def test_kiosk_cloud_serve_as_a_process(tmp_path):
    cloud = Cloud(tmp_path)
    cred = cloud.device("k1", "demo")
    cloud.start()
    try:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {cred}"
        entries = [wo_created("WO-1"), wo_updated("WO-1", status=("open", "done")), ticket("T-1")]
        r = s.post(cloud.url + "/sync/v1/push", json={"deviceId": "k1", "entries": entries},
                   headers={"Idempotency-Key": "b1"}, timeout=60)
        assert [x["status"] for x in r.json()["results"]] == ["applied", "rejected", "applied"]
        again = s.post(cloud.url + "/sync/v1/push", json={"deviceId": "k1", "entries": entries},
                       headers={"Idempotency-Key": "b1"}, timeout=60)
        assert again.json() == r.json()
        assert s.post(cloud.url + "/sync/v1/push", data=b"{", timeout=60).status_code == 400
        assert requests.get(cloud.url + "/sync/v1/health", timeout=60).status_code == 401
        assert s.get(cloud.url + "/v1/hotels/demo/tickets", timeout=60).json()["tickets"][0]["ticketId"] == "T-1"
        assert [w["status"] for w in cloud.list("work-orders", "demo")] == ["open"]
    finally:
        code = cloud.proc.kill(signal.SIGTERM)
    assert code == 0
    log = (tmp_path / "cloud.log").read_text()
    assert '"msg":"push"' in log and '"msg":"cloud stopped"' in log


def test_pull_pages_the_change_log_and_conflicts_come_back_in_push_results(push, client, creds, clock):
    created = wo_created("WO-5")
    assert statuses(push([created], device="k1")) == ["applied"]
    base = int(created["hlc"].split("-")[0])
    e1 = entry("work_order.updated", "WO-5", {"workOrderId": "WO-5", "by": "a", "at": "2026-01-01T00:00:00Z",
                                                "changes": {"notes": {"old": "", "new": "from a"}}})
    e2 = entry("work_order.updated", "WO-5", {"workOrderId": "WO-5", "by": "b", "at": "2026-01-01T00:00:00Z",
                                                "changes": {"notes": {"old": "", "new": "from b"}}})
    e1["hlc"], e2["hlc"] = f"{base + 100:015d}-00000-k1", f"{base + 50:015d}-00000-k2"  # b's stamp is older
    assert statuses(push([e1], device="hq")) == ["applied"]
    r = push([e2], device="hq").get_json()["results"][0]
    assert r["status"] == "applied" and [c["rule"] for c in r["conflicts"]] == ["field-lww"]
    h = {"Authorization": f"Bearer {creds['k1']}"}
    first = client.get("/sync/v1/pull?hotel=demo&after=0&limit=1", headers=h).get_json()
    assert first["more"] is True and len(first["changes"]) == 1 and first["cursor"] == first["changes"][0]["seq"]
    rest = client.get(f"/sync/v1/pull?hotel=demo&after={first['cursor']}", headers=h).get_json()
    kinds = [c["entityType"] for c in first["changes"] + rest["changes"]]
    # three changes of the work order, one row: the log keeps an entity's newest state only
    assert kinds.count("work_order") == 1 and "conflict" in kinds and rest["more"] is False
    wo = [c for c in rest["changes"] if c["entityType"] == "work_order"][-1]["data"]
    assert wo["notes"] == "from a" and wo["judgedHlc"]["notes"] == e1["hlc"]
    assert read(client, creds, "conflicts").get_json()["conflicts"][0]["rule"] == "field-lww"
    assert read(client, creds, "security-events").get_json() == {"securityEvents": []}
    assert client.get("/sync/v1/pull?hotel=harbor", headers=h).status_code == 403  # not k1's hotel
    assert client.get("/sync/v1/pull?hotel=demo&after=x", headers=h).status_code == 400
    assert read(client, creds, "conflicts", hotel="harbor").status_code == 403
