"""A guest's right of access at the kiosk: ``kiosk guest export`` (kiosk/guest_export.py).

In-process on a real SQLite file (the ``instance`` fixture): two guests of one hotel with
sealed reservations (as the importer writes them) and a guest of the other hotel; Quillon
signs in, asks for something, a staff member replies, a model hands a question of theirs to
staff and sends them a message, they take an offer.  The export of Quillon holds their stay,
words and the reply, and nothing of the other guests or of staff; an unknown confirmation and
another hotel's are NOT_FOUND; once their key is destroyed the export reads as erased.  The
command itself (CliRunner) writes the document 0600 with ``--output``, and says NOT_FOUND in
one line with exit status 1.
"""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from kiosk import guest_export, guest_keys, store
from kiosk.cli import main as kiosk_cli
from kiosk.errors import NotFound, ValidationError
from kiosk.models import actions
from kiosk.models.base import Action
from kiosk.property import tables

QUILLON = "Quillon Ashcombe"
WORDS = "Quillon would like a hypoallergenic pillow"
REPLY = "A hypoallergenic pillow is on its way to 412"
QUESTION = "Can Quillon's parrot stay in the room?"
MESSAGE = "Welcome to the Harbour, Quillon"
#: what the export of Quillon (demo, R-1) must never show: the other guests', staff's
FOREIGN = ("Brunhilde", "Okonkwo", "brunhilde@example.org", "R-2", "a spare blanket for Brunhilde",
           "Zebedee", "zebedee@example.org", "s-ana", "Ana Weber")


def stay(conf, name, room, email):
    return {"confirmation": conf, "guest_name": name, "room_number": room, "room_type": "KING",
            "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse", "language": "en",
            "email": email, "phone": "+44 20 7946 0001"}


@pytest.fixture
def stays(instance, client, login, clock):
    """Quillon (demo R-1) and Brunhilde (demo R-2), Zebedee (harbor R-9), sealed as imported; what
    Quillon did at this kiosk.  Returns the ids of Quillon's request and question."""
    db = instance.db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": n, "room_type": "KING", "floor": 4,
                             "status": "Inspected", "occupied": 1} for n in ("412", "413")])
    db["staff"].insert({"hotel_id": "demo", "staff_id": "s-ana", "name": "Ana Weber", "role": "front_office",
                        "skills": "", "shift_start": "00:00", "shift_end": "23:59"})
    db["offers"].insert({"hotel_id": "demo", "offer_id": "LATE", "name": "Late checkout until 14:00",
                         "type": "addon", "price": 25.0, "margin": 22.0, "inventory": 10})
    with store.transaction(db):
        tables.upsert(db, "demo", "reservations", stay("R-1", QUILLON, "412", "quillon@example.org"))
        tables.upsert(db, "demo", "reservations", stay("R-2", "Brunhilde Okonkwo", "413", "brunhilde@example.org"))
        tables.upsert(db, "harbor", "reservations", stay("R-9", "Zebedee Marsh", "101", "zebedee@example.org"))
    # sealed as stored, plain as read
    assert db.execute("SELECT count(*) FROM reservations WHERE guest_name LIKE 'pii1.%'").fetchone() == (3,)
    assert db.execute("SELECT guest_name FROM reservations WHERE confirmation = 'R-1'").fetchone() == (QUILLON,)

    quillon = login("guest", user="R-1", name=QUILLON)
    brunhilde = login("guest", user="R-2", name="Brunhilde Okonkwo")
    login("guest", hotel="harbor", user="R-9", name="Zebedee Marsh")
    staff = login("staff", user="s-ana", name="Ana Weber")
    r = client.post("/api/guest/requests", headers=quillon, json={"text": WORDS})
    assert r.status_code == 201, r.get_json()
    tid = r.get_json()["ticket"]["ticketId"]
    r = client.post("/api/guest/requests", headers=brunhilde, json={"text": "a spare blanket for Brunhilde"})
    assert r.status_code == 201, r.get_json()
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "reply", "text": REPLY})
    assert r.status_code == 200, r.get_json()
    r = client.post("/api/guest/offers/LATE/accept", headers=quillon)
    assert r.status_code == 201, r.get_json()
    # what guest-messaging does for a question it cannot answer, and the message for the moment
    done = actions.apply(db, "demo", [
        Action("CREATE_TASK", {"type": "guest_question", "priority": "normal", "requiredSkill": "front_office",
                               "roomNumber": "412", "description": f"R-1: {QUESTION}"},
               subject="question R-1 can quillon's parrot stay on 2026-05-28"),
        Action("SEND_MESSAGE", {"confirmation": "R-1", "channel": "guest", "language": "en",
                                "templateId": "in_stay", "text": MESSAGE}, subject="R-1:in_stay"),
        Action("SEND_MESSAGE", {"confirmation": "R-2", "channel": "guest", "language": "en",
                                "templateId": "in_stay", "text": "Welcome, Brunhilde"}, subject="R-2:in_stay"),
    ], model_id="guest-messaging", by="R-1", now=clock.now(), node="kiosk-test")
    return {"ticketId": tid, "taskId": done[0]["taskId"]}


def export(instance, hotel="demo", conf="R-1"):
    return guest_export.export(instance.connect(), hotel, conf, instance.clock.now())


def test_the_export_holds_the_guests_stay_and_nothing_of_anyone_else(instance, stays):
    doc = export(instance)
    text = json.dumps(doc, ensure_ascii=False)
    assert doc["format"] == "kiosk-guest-export/1" and (doc["hotelId"], doc["confirmation"]) == ("demo", "R-1")
    [res] = doc["reservations"]
    assert res["details"]["guest_name"] == QUILLON and res["details"]["email"] == "quillon@example.org"
    assert [s["displayName"] for s in doc["sessions"]] == [QUILLON]
    assert [c["displayName"] for c in doc["codes"]] == [QUILLON]
    assert doc["tokenUses"] and {u["sessionId"] for u in doc["tokenUses"]} == {doc["sessions"][0]["sessionId"]}
    [req] = doc["requests"]
    assert req["requestId"] == stays["ticketId"] and req["description"] == WORDS and req["reply"] == REPLY
    assert {(h["field"], h["by"]) for h in req["history"]} >= {("reply", "hotel"), ("status", "hotel")}
    assert [q["question"] for q in doc["questions"]] == [f"R-1: {QUESTION}"]
    assert [o["offerId"] for o in doc["offersTaken"]] == ["LATE"] and doc["offersTaken"][0]["name"]
    assert [(o["offerId"], o["accepted"]) for o in doc["offersShown"]] == [("LATE", True)]
    assert {a["type"] for a in doc["modelActions"]} == {"CREATE_TASK", "SEND_MESSAGE"}
    assert any(a["result"] and a["result"].get("content") == MESSAGE for a in doc["modelActions"])
    events = {a["event"] for a in doc["audit"]}
    assert {"scan", "ticket.created", "offer.accepted", "model.actions"} <= events
    kinds = {(e["kind"], e["entityType"]) for e in doc["outbox"]}
    assert {("ticket.created", "ticket"), ("ticket.updated", "ticket"), ("session.opened", "session"),
            ("token.issued", "qr_token"), ("token.used", "qr_token"), ("task.created", "task"),
            ("message.send", "message"), ("pms.update", "pms")} <= kinds
    # the outbox's payloads opened: the guest's words, the reply and the message read plain
    for words in (WORDS, REPLY, MESSAGE, QUESTION):
        assert any(words in json.dumps(e["payload"], ensure_ascii=False) for e in doc["outbox"]), words
    # nothing sealed, nothing of the other guests, of the other hotel or of staff; no secrets
    assert "pii1." not in text
    for foreign in FOREIGN:
        assert foreign not in text, foreign
    for secret in ("sessionJWT", "signature", "idempotency", "outboxKey", "fingerprint", "terms"):
        assert secret not in text, secret
    assert "harbor" not in text


def test_unknown_and_another_hotels_confirmation_are_not_found(instance, stays):
    for hotel, conf in (("demo", "R-404"), ("demo", "R-9"), ("harbor", "R-1"), ("elsewhere", "R-1"),
                        ("demo", "s-ana")):
        with pytest.raises(NotFound) as e:
            export(instance, hotel, conf)
        assert e.value.code == "NOT_FOUND"
    with pytest.raises(ValidationError):
        export(instance, "demo", "R-1\x00")
    # the other hotel's guest is exported from their own hotel, and only there
    assert export(instance, "harbor", "R-9")["reservations"][0]["details"]["guest_name"] == "Zebedee Marsh"
    # typed in lower case, as at the sign-in
    assert export(instance, "demo", "r-1")["confirmation"] == "R-1"


def test_the_export_reads_one_snapshot_and_writes_nothing(instance, stays):
    db = instance.connect()
    before = db.execute("PRAGMA data_version").fetchone()[0], db.conn.total_changes
    guest_export.export(db, "demo", "R-1", instance.clock.now())
    assert not db.conn.in_transaction
    assert (db.execute("PRAGMA data_version").fetchone()[0], db.conn.total_changes) == before


def test_after_the_key_is_destroyed_the_export_reads_as_erased(instance, stays):
    db = instance.connect()
    with store.transaction(db):
        assert guest_keys.destroy(db, "demo", "R-1") == 1
    doc = export(instance)
    text = json.dumps(doc, ensure_ascii=False)
    assert doc["reservations"][0]["details"]["guest_name"] == "Erased guest"
    assert doc["reservations"][0]["details"]["email"] is None
    assert [s["displayName"] for s in doc["sessions"]] == ["Erased guest"]
    [req] = doc["requests"]
    assert (req["title"], req["description"], req["reply"]) == ("(erased)", "(erased)", "(erased)")
    assert "(erased)" in text and "Erased guest" in text
    for old in (QUILLON, "Quillon", "quillon@example.org", WORDS, REPLY, MESSAGE, QUESTION, "hypoallergenic"):
        assert old not in text, old
    # the other guest is untouched
    assert export(instance, "demo", "R-2")["reservations"][0]["details"]["guest_name"] == "Brunhilde Okonkwo"


def test_the_command_writes_a_private_file(instance, stays, tmp_path):
    where = ["--data-dir", str(instance.root)]
    out = tmp_path / "exports" / "R-1.json"
    r = CliRunner().invoke(kiosk_cli, [*where, "guest", "export", "--hotel", "demo", "--confirmation", "R-1",
                                       "--output", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["output"] == str(out) and summary["requests"] == 1 and summary["sessions"] == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["reservations"][0]["details"]["guest_name"] == QUILLON
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temporary file left

    r = CliRunner().invoke(kiosk_cli, [*where, "guest", "export", "--hotel", "demo", "--confirmation", "R-1"])
    assert r.exit_code == 0 and json.loads(r.stdout)["requests"][0]["reply"] == REPLY

    r = CliRunner().invoke(kiosk_cli, [*where, "guest", "export", "--hotel", "harbor", "--confirmation", "R-1"])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("error: NOT_FOUND: ") and r.stderr.count("\n") == 1, r.stderr
    r = CliRunner().invoke(kiosk_cli, [*where, "guest", "export", "--hotel", "demo"])
    assert r.exit_code == 2 and r.stderr.startswith("error: VALIDATION_ERROR: ") and "--confirmation" in r.stderr
