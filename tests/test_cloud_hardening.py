"""The reference cloud against a hostile or broken device: regression tests for the findings of
the probe of the cloud (docs/security.md).  Each failed on the code before its fix.

The cloud tests take test_cloud.py's fixtures, so they run on SQLite and on a throwaway
PostgreSQL (tests/pgserver.py).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import test_cloud
import test_queue
from click.testing import CliRunner
from test_cloud import entry, read, statuses, ticket, wo_created
from test_queue import count

from kiosk import outbox, store
from kiosk.clock import FakeClock
from sync import delivery
from sync.cloud import apply, devices, quota, retention, schema, storage
from sync.cloud.app import create_app
from sync.cloud.cli import main as cli
from sync.transport import HttpTransport, TransportError

# the cloud's fixtures (SQLite and PostgreSQL) and the kiosk's property, shared with those tests
clock, data_dir, database, db = test_cloud.clock, test_cloud.data_dir, test_cloud.database, test_cloud.db
creds, client, push, hotel = test_cloud.creds, test_cloud.client, test_cloud.push, test_queue.hotel


def offer_entry(key: str, hotel: str = "demo") -> dict:
    """A guest's late-checkout purchase, as a kiosk queues it (kiosk/guest.py)."""
    return entry("pms.update", "reservation:R-1", {"entity": "reservation", "id": "R-1",
                                                  "changes": {"addOffer": {"offerId": "LATE", "price": 25.0}}},
                 hotel=hotel, key=key, entity_type="pms")


def reasons(resp) -> list[str]:
    return [r.get("reason", r["status"]) for r in resp.get_json()["results"]]


# --- 1. entry-key squatting across hotels ---------------------------------------------------------

def test_keys_pushed_for_a_foreign_hotel_are_not_remembered_so_the_hotels_real_entry_applies(push, db):
    """A device of hotel B (k2: harbor) pushed guessed keys claiming hotel A (demo): the refusal
    was remembered under the key, and A's real purchase went dead with FORBIDDEN_HOTEL."""
    guessed = [offer_entry(f"offer-accepted:demo:R-{i}:LATE") for i in range(20)]
    bad_shape = {**offer_entry("offer-accepted:demo:R-77:LATE"), "hlc": "not a stamp"}
    r = push(guessed + [bad_shape], device="k2")
    assert all(x.startswith("FORBIDDEN_HOTEL: device k2") for x in reasons(r))
    assert db.execute("SELECT count(*) FROM applied_entries").fetchone()[0] == 0
    real = [offer_entry("offer-accepted:demo:R-3:LATE"), offer_entry("offer-accepted:demo:R-77:LATE")]
    assert statuses(push(real, device="k1")) == ["applied", "applied"]
    assert statuses(push(real, device="k1")) == ["duplicate", "duplicate"]
    assert db.execute("SELECT count(*) FROM events WHERE kind = 'pms.update'").fetchone()[0] == 2


def test_a_key_applied_for_another_hotel_is_a_key_conflict_never_a_duplicate(push, db):
    """A two-hotel box (hq: demo + harbor) was told "duplicate" for its breakfast purchase in
    demo because a device of harbor had applied the same key there first: marked delivered,
    never applied."""
    key = "offer-accepted:demo:R-1:BREAKFAST"
    assert statuses(push([offer_entry(key, hotel="harbor")], device="k2")) == ["applied"]
    r = push([offer_entry(key, hotel="demo")], device="hq")
    assert statuses(r) == ["rejected"] and reasons(r)[0].startswith("KEY_CONFLICT: ")
    r = push([offer_entry(key, hotel="demo")], device="k1")  # a device of demo alone: the same
    assert statuses(r) == ["rejected"] and reasons(r)[0].startswith("KEY_CONFLICT: ")
    assert db.execute("SELECT count(*) FROM applied_entries WHERE hotel_id = 'demo'").fetchone()[0] == 0
    # within one hotel the key means one thing, whichever of its devices repeats it (a kiosk
    # moved to new hardware): duplicate, as before
    assert statuses(push([offer_entry("k-9", hotel="demo")], device="k1")) == ["applied"]
    assert statuses(push([offer_entry("k-9", hotel="demo")], device="hq")) == ["duplicate"]


def test_a_key_whose_memory_was_purged_is_still_a_conflict_not_a_silent_no_op(push, db, clock):
    """The event log is keyed by the entry key: after the purge of the remembered key, another
    hotel's entry with that key was answered "applied" and recorded nothing."""
    key = "act-0123456789abcdef"
    assert statuses(push([offer_entry(key, hotel="harbor")], device="k2")) == ["applied"]
    retention.purge(db, clock.now() + 10, retention=0)
    assert db.execute("SELECT count(*) FROM applied_entries").fetchone()[0] == 0
    r = push([offer_entry(key, hotel="demo")], device="k1")
    assert statuses(r) == ["rejected"] and reasons(r)[0].startswith("KEY_CONFLICT: ")


def test_the_upgrade_drops_remembered_refusals_of_foreign_hotels(data_dir, database, clock, monkeypatch):
    """Existing data: a cloud of schema 7 holding k2's remembered FORBIDDEN_HOTEL refusal of
    demo's key (and another refusal of an entry naming demo) answers demo's real entry after
    the upgrade; applied keys and a device's own refusals stay remembered."""
    st = storage.open_storage(data_dir, database)
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:7])
    st.prepare()
    d = st.connect()
    devices.add_device(d, "k1", ["demo"], clock.now())
    devices.add_device(d, "k2", ["harbor"], clock.now())
    rows = [("poisoned", "k2", "demo", '{"status": "rejected", "reason": "FORBIDDEN_HOTEL: device k2 may not'
                                       ' write for hotel demo"}'),
            ("poisoned-2", "k2", "demo", '{"status": "rejected", "reason": "INVALID_ENTRY: hlc: bad"}'),
            ("kept", "k1", "demo", '{"status": "applied"}'),
            ("own-refusal", "k1", "demo", '{"status": "rejected", "reason": "UNKNOWN_KIND: x.y"}')]
    with storage.transaction(d):
        for key, dev, h, result in rows:
            d.execute("INSERT INTO applied_entries (key, device_id, hotel_id, kind, entity_type, entity_id, hlc,"
                      " result, applied_at) VALUES (?, ?, ?, 'pms.update', 'pms', 'x', 'h', ?, ?)",
                      [key, dev, h, result, clock.now()])
    monkeypatch.undo()
    st.prepare()  # migration 8
    kept = {r[0] for r in d.execute("SELECT key FROM applied_entries").fetchall()}
    assert kept == {"kept", "own-refusal"}
    creds = {"k1": devices.add_device(d, "k1", ["demo"], clock.now(), rotate=True)}  # its credential, again
    st.close()
    app = create_app(data_dir, clock=clock, database=database)
    c = app.test_client()
    r = c.post("/sync/v1/push", headers={"Authorization": f"Bearer {creds['k1']}"},
               json={"deviceId": "k1", "entries": [offer_entry(k) for k in ("poisoned", "poisoned-2", "kept")]})
    assert statuses(r) == ["applied", "applied", "duplicate"]
    app.config["CLOUD_STORAGE"].close()


def test_the_agent_dead_letters_a_key_conflict_and_delivers_the_rest(tmp_path, clock, db, creds):
    """Per-entry KEY_CONFLICT is a permanent refusal: a dead letter at once, never delivered."""
    from sync.transport import InMemoryTransport

    apply.apply_push(db, devices.Device("k2", ("harbor",)), [offer_entry("taken", hotel="harbor")], clock.now())
    kiosk = store.connect(tmp_path / "kiosk.db")
    with store.transaction(kiosk):
        for key in ("taken", "free"):
            outbox.enqueue(kiosk, hotel_id="demo", kind="pms.update", entity_type="pms", entity_id=f"reservation:{key}",
                           payload={"entity": "reservation", "id": key}, node="k1", now=clock.now(),
                           idempotency_key=key)
    p = delivery.Pusher(kiosk, InMemoryTransport(db, devices.Device("k1", ("demo",)), clock), device_id="k1",
                        clock=clock, rng=random.Random(1))
    report = p.push_once()
    assert (report.applied, report.rejected) == (1, 1)
    states = dict(kiosk.execute("SELECT idempotency_key, state FROM outbox").fetchall())
    assert states == {"taken": "dead", "free": "delivered"}
    assert kiosk.execute("SELECT last_error FROM outbox WHERE idempotency_key = 'taken'").fetchone()[0].startswith(
        "KEY_CONFLICT: ")


def test_an_offer_key_names_the_kiosk_and_cannot_be_guessed_and_is_taken_once(instance, hotel):
    """kiosk/guest.py keyed the purchase offer-accepted:<hotel>:<confirmation>:<offer>: anyone
    who knew a confirmation number could push that key first.  Once per stay and offer is kept
    by the kiosk's own table, not by the key."""
    from types import SimpleNamespace

    from kiosk import guest

    db, now = instance.db(), FakeClock().now()
    kiosk_id = instance.config.property.kiosk_id
    first, created = guest.accept_offer(db, "demo", SimpleNamespace(user_id="R-1", id="S-1"), "LATE",
                                        currency="EUR", now=now, node=kiosk_id)
    key = first["outboxKey"]
    assert created and key.startswith(f"offer-accepted:{kiosk_id}:") and "R-1" not in key
    assert len(key.rsplit(":", 1)[1]) == 32
    again, created = guest.accept_offer(db, "demo", SimpleNamespace(user_id="R-1", id="S-2"), "LATE",
                                        currency="EUR", now=now + 5, node=kiosk_id)
    assert not created and again["outboxKey"] == key and again["syncStatus"] == "unchanged"
    assert count(instance, "outbox", "kind = 'pms.update' AND entity_id = 'reservation:R-1'") == 1
    other, _ = guest.accept_offer(db, "demo", SimpleNamespace(user_id="R-2", id="S-3"), "LATE",
                                  currency="EUR", now=now, node=kiosk_id)
    assert other["outboxKey"] != key


# --- 2. NUL and lone surrogates -------------------------------------------------------------------

def _raw_push(client, creds, entries, device="k1"):
    body = json.dumps({"deviceId": device, "entries": entries})  # ensure_ascii: \u0000, \ud800 escapes
    return client.post("/sync/v1/push", data=body, content_type="application/json",
                       headers={"Authorization": f"Bearer {creds[device]}"})


def test_nul_and_lone_surrogates_are_a_per_entry_validation_error_the_rest_applies(client, creds, db):
    """A NUL typed by a guest made every push holding it a 500 on PostgreSQL (the agent retried
    for ever); a lone surrogate was a 500 on both storages."""
    good1, good2 = ticket("T-1"), ticket("T-2", title="fresh towels")
    bad = [ticket("T-3", title="towels\x00please"), ticket("T-4", title="\ud800"),
           {**ticket("T-5"), "key": "key-\x00"}, {**ticket("T-6"), "hotelId": "demo\x00"},
           {**ticket("T-7"), "payload": {**ticket("T-7")["payload"], "x\ud800": 1}},
           wo_created("WO-\udfff"), {**ticket("T-8"), "kind": "ticket.created\x00"}]
    for _ in range(2):  # the same answers again (worked out afresh: such entries are never stored)
        r = _raw_push(client, creds, [good1, *bad, good2])
        assert r.status_code == 200, r.get_json()
        got = r.get_json()["results"]
        assert [x["status"] for x in got[1:-1]] == ["rejected"] * len(bad)
        assert got[0]["status"] in ("applied", "duplicate") and got[-1]["status"] in ("applied", "duplicate")
        assert all(x["reason"].startswith("VALIDATION_ERROR: ") for x in got[1:-1]), got
        assert got[3]["key"] == "key-\x00"  # the answer names the key it was given
    assert sorted(t["ticketId"] for t in read(client, creds, "tickets").get_json()["tickets"]) == ["T-1", "T-2"]


def test_a_body_that_is_not_json_stays_a_400_and_no_route_500s_on_surrogate_escapes(client, creds):
    auth = {"Authorization": f"Bearer {creds['k1']}"}
    for body in (b"{not json", b'{"deviceId": "k1", "entries": [}', b"\xff\xfe{}", b'"\\ud800'):
        r = client.post("/sync/v1/push", data=body, content_type="application/json", headers=auth)
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR"), body
    r = client.post("/sync/v1/push", data='{"deviceId": "\\ud800", "entries": []}', content_type="application/json",
                    headers=auth)
    assert r.status_code == 403
    r = client.post("/sync/v1/push", data='{"deviceId": "k1", "entries": [], "\\ud800": "\\u0000"}',
                    content_type="application/json", headers=auth)
    assert r.status_code == 200
    r = client.post("/sync/v1/push", data='{"deviceId": "k1", "entries": [{"key": "\\ud800"}]}',
                    content_type="application/json", headers=auth)
    assert r.status_code == 200 and r.get_json()["results"][0]["reason"].startswith("VALIDATION_ERROR")
    r = client.post("/sync/v1/push", data='{"deviceId": "k1", "entries": []}', content_type="application/json",
                    headers={**auth, "Idempotency-Key": "a\x01b"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR")


# --- 3. page tokens and cursors -------------------------------------------------------------------

def _token(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("query", [
    "page=" + _token(0, 6, ["¹²"]),             # superscript digits: isdigit() says yes, int() says no
    "page=" + _token(0, 6, ["9" * 25]),         # past PostgreSQL's bigint
    "page=" + _token(10**20, 0, None),
    "page=" + _token(0, 3, ["T-\x00"]),         # NUL: PostgreSQL refuses it
    "page=" + _token(0, 3, ["\ud800"]),
    "page=é" + _token(0, 0, None),
    "limit=" + "9" * 25, "limit=١٢", "limit=¹²", "limit=+5", "limit= 5",
])
def test_bad_snapshot_page_tokens_and_limits_are_400(client, creds, query):
    r = client.get(f"/sync/v1/snapshot?hotel=demo&{query}", headers={"Authorization": f"Bearer {creds['k1']}"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR"), r.get_json()


@pytest.mark.parametrize("query", ["after=١٢", "after=¹²", "after=" + "1" * 20, "after=-1", "limit=" + "9" * 25,
                                   "after=12%0a", "limit=0"])
def test_bad_pull_cursors_are_400(client, creds, query):
    r = client.get(f"/sync/v1/pull?hotel=demo&{query}", headers={"Authorization": f"Bearer {creds['k1']}"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR"), r.get_json()


def test_good_page_tokens_still_page_through(client, creds, push):
    assert statuses(push([ticket(f"T-{i}") for i in range(5)])) == ["applied"] * 5
    auth = {"Authorization": f"Bearer {creds['k1']}"}
    seen, page = [], None
    while True:
        r = client.get("/sync/v1/snapshot?hotel=demo&limit=2" + (f"&page={page}" if page else ""), headers=auth)
        assert r.status_code == 200
        seen += [c["entityId"] for c in r.get_json()["changes"]]
        page = r.get_json()["next"]
        if not page:
            break
    assert [s for s in seen if s.startswith("T-")] == [f"T-{i}" for i in range(5)]


# --- 4. a push locks only the hotels its device serves (PostgreSQL) ------------------------------

def test_a_push_naming_a_foreign_hotel_does_not_wait_for_that_hotels_lock(tmp_path, pg):
    """On PostgreSQL a push took the lock of every hotel its entries named: another device's
    refused pushes for hotel A queued behind (and held up) A's real pushes."""
    st = storage.open_storage(tmp_path / "cloud", pg.new_database(f"lock{time.monotonic_ns()}"))
    st.prepare()
    holder, other = st.acquire(), st.acquire()
    now = FakeClock().now()
    done, failures, answer = threading.Event(), [], []

    def foreign_push() -> None:
        try:
            answer.extend(apply.apply_push(other, devices.Device("evil-b", ("harbor",)),
                                           [offer_entry("x", hotel="demo"), offer_entry("y", hotel="harbor")], now))
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            failures.append(e)
        done.set()

    with storage.transaction(holder):
        storage.lock_hotels(holder, ["demo"])  # a push of hotel demo, still open
        t = threading.Thread(target=foreign_push, daemon=True)
        t.start()
        finished = done.wait(60)  # before: waits until demo's push commits
    t.join(60)
    st.release(holder)
    st.release(other)
    st.close()
    assert not failures, failures
    assert finished, "a device of harbor waited for hotel demo's lock"
    assert [r["status"] for r in answer] == ["rejected", "applied"]


# --- 5. a per-device push quota ------------------------------------------------------------------

def test_a_device_over_its_push_quota_gets_429_with_retry_after_and_nothing_applies(data_dir, database, clock, db,
                                                                                     creds):
    app = create_app(data_dir, clock=clock, database=database, push_quota=quota.Quota(entries=5, bytes=None,
                                                                                      window=60))
    c = app.test_client()

    def send(entries, device="k1"):
        return c.post("/sync/v1/push", headers={"Authorization": f"Bearer {creds[device]}"},
                      json={"deviceId": device, "entries": entries})

    assert statuses(send([ticket("T-1"), ticket("T-2"), ticket("T-3")])) == ["applied"] * 3
    r = send([ticket("T-4"), ticket("T-5"), ticket("T-6")])
    assert (r.status_code, r.get_json()["error"]["code"]) == (429, "RATE_LIMITED")
    assert r.headers["Retry-After"] == "60" and r.get_json()["error"]["details"]["retryAfter"] == 60
    assert statuses(send([ticket("T-9", hotel="harbor")], device="k2")) == ["applied"]  # per device
    clock.advance(30)
    assert send([ticket("T-4")]).headers["Retry-After"] == "30"
    clock.advance(31)
    assert statuses(send([ticket("T-4"), ticket("T-5")])) == ["applied"] * 2
    tickets = sorted(t["ticketId"] for t in read(c, creds, "tickets").get_json()["tickets"])
    assert tickets == ["T-1", "T-2", "T-3", "T-4", "T-5"]
    byte_app = create_app(data_dir, clock=clock, database=database,
                          push_quota=quota.Quota(entries=None, bytes=3000, window=60))
    bc = byte_app.test_client()
    big = [ticket(f"B-{i}") for i in range(4)]
    r = bc.post("/sync/v1/push", headers={"Authorization": f"Bearer {creds['hq']}"},
                json={"deviceId": "hq", "entries": big})
    assert r.status_code == 200
    r = bc.post("/sync/v1/push", headers={"Authorization": f"Bearer {creds['hq']}"},
                json={"deviceId": "hq", "entries": big})
    assert r.status_code == 429 and "bytes" in r.get_json()["error"]["message"]
    for a in (app, byte_app):
        a.config["CLOUD_STORAGE"].close()


def test_the_agent_waits_out_retry_after_and_dead_letters_nothing(tmp_path):
    """A 429 is transient: the batch stays pending and is not tried again before Retry-After."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"error": {"code": "RATE_LIMITED", "message": "over quota", "details": {"retryAfter": 120}}}'
            self.send_response(429)
            self.send_header("Retry-After", "120")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        transport = HttpTransport(f"http://127.0.0.1:{server.server_address[1]}", "cred")
        with pytest.raises(TransportError) as err:
            transport.push("k1", [offer_entry("a")], "batch")
        assert err.value.retry_after == 120.0
        clock = FakeClock(1_000.0)
        kiosk = store.connect(tmp_path / "kiosk.db")
        with store.transaction(kiosk):
            outbox.enqueue(kiosk, hotel_id="demo", kind="pms.update", entity_type="pms", entity_id="reservation:R-1",
                           payload={"x": 1}, node="k1", now=clock.now())
        p = delivery.Pusher(kiosk, transport, device_id="k1", clock=clock, rng=random.Random(1), backoff_base=1.0)
        report = p.push_once()
        assert report.error.startswith("HTTP 429") and report.retried == 1
        state, next_at = kiosk.execute("SELECT state, next_attempt_at FROM outbox").fetchone()
        assert state == "pending" and next_at >= clock.now() + 120
        clock.advance(60)
        assert p.push_once().sent == 0  # not due before Retry-After
    finally:
        server.shutdown()


def test_serve_refuses_a_push_quota_below_one_push(tmp_path):
    r = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path / "c"), "--push-quota-entries", "10",
                                 "--port", "0"])
    assert r.exit_code != 0 and "--push-quota-entries" in r.output and "at least 1000" in r.output
    r = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path / "c"), "--push-quota-bytes", "1MiB",
                                 "--port", "0"])
    assert r.exit_code != 0 and "--push-quota-bytes" in r.output and "at least 4194304" in r.output


# --- 6. terminal escapes in kiosk-cloud's human-readable output -----------------------------------

def test_cli_listings_escape_terminal_control_characters(push, data_dir, database):
    title = "towels\x1b]0;pwned\x07\x1b[2J\x9b31m\u202egnp.exe"
    assert statuses(push([ticket("T-\x1b[31m", title=title)])) == ["applied"]
    args = ["--data-dir", str(data_dir)] + (["--database", database] if database else [])
    out = CliRunner().invoke(cli, ["tickets", "--hotel", "demo", *args])
    assert out.exit_code == 0, out.output
    assert "\x1b" not in out.output and "\x07" not in out.output and "\x9b" not in out.output
    assert "\u202e" not in out.output
    assert "T-\\x1b[31m" in out.output and "towels\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202egnp.exe" in out.output
    as_json = CliRunner().invoke(cli, ["tickets", "--hotel", "demo", "--json", *args])
    assert json.loads(as_json.output)[0]["title"] == title  # JSON keeps the text as it is
