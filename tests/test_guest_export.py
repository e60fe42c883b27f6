"""A guest's right of access at the cloud: ``kiosk-cloud guest export`` (sync/cloud/guest_data.py).

A real cloud (SQLite in tmp_path, then a fresh PostgreSQL database) holds two guests of one
hotel and a guest of another hotel with the same confirmation number: reservations imported
with ``kiosk-cloud data import``, the hotel linked to its PMS with ``kiosk-cloud pms link``,
and what kiosks did pushed through the real apply path (requests, a staff reply, sessions,
a code used at two kiosks, an offer taken, a message).  The export of one guest holds their
stay and nothing of the other guest, of staff or of the other hotel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import cloud_cli as cloud_cli_helper
import pytest

from kiosk.clock import iso
from sync.cloud import devices, pms_links, storage
from sync.cloud.apply import apply_push

REPO = Path(__file__).resolve().parents[1]
NOW = time.time()
_seq = iter(range(1, 10**9))

ROOMS = "room_number,room_type,floor,status\n101,KING,1,Clean\n102,TWIN,1,Clean\n"
HEADER = "confirmation,guest_name,room_number,arrival,departure,status,adults,children,email,phone\n"
DEMO = HEADER + ("R-1042,Ada Lovelace,101,2026-11-24,2026-11-26,InHouse,2,0,ada@example.org,+44 20 7946 0001\n"
                 "R-1043,Bob Brown,102,2026-11-24,2026-11-27,InHouse,1,0,bob@example.org,+44 20 7946 0002\n")
HARBOR = HEADER + ("R-1042,Carl Clark,101,2026-11-20,2026-11-22,CheckedOut,1,0,carl@example.org,+1 555 0100\n"
                   "R-2001,Dee Dunn,102,2026-11-24,2026-11-25,Confirmed,1,0,dee@example.org,+1 555 0101\n")
OPERA_SECRETS = {"app_key": "app-key-secret", "client_id": "client-id-secret", "client_secret": "client-sekrit",
                 "username": "opera-user", "password": "opera-password-secret"}
#: what the export of Ada (demo, R-1042) must never show: the other guest's, staff's, the other
#: hotel's, the PMS's secrets
FOREIGN = ("Bob", "bob@example.org", "R-1043", "T-B1", "T-B2", "sess-bob", "jti-bob", "Carl", "carl@",
           "T-H1", "sess-carl", "jti-carl", "harbor", "Dee", "R-2001", "T-S1", "s-7", "Grace",
           *OPERA_SECRETS.values())


def entry(kind: str, etype: str, eid: str, payload: dict, hotel: str = "demo") -> dict:
    n = next(_seq)
    return {"key": f"{hotel}-{kind}-{eid}-{n}", "hotelId": hotel, "kind": kind, "entityType": etype,
            "entityId": eid, "hlc": f"{int(NOW * 1000) + n:015d}-00000-lobby-1", "createdAt": NOW,
            "payload": payload}


def ticket(tid: str, by: str, title: str, room: str, fingerprint: str, hotel: str = "demo") -> dict:
    """A ticket as a kiosk pushes it (kiosk/tickets.py: to_json without hotelId)."""
    return entry("ticket.created", "ticket", tid, {
        "ticketId": tid, "type": "housekeeping", "title": title, "description": f"{title}, please",
        "roomNumber": room, "priority": "normal", "queue": "housekeeping", "status": "received",
        "fingerprint": fingerprint, "createdAt": iso(NOW), "createdBy": by}, hotel)


def session_opened(sid: str, user: str, jti: str, kiosk: str = "lobby-1", hotel: str = "demo",
                   role: str = "guest") -> dict:
    return entry("session.opened", "session", sid, {
        "sessionId": sid, "userId": user, "role": role, "jti": jti, "kioskId": kiosk, "openedAt": NOW,
        "triggeredAIModels": ["upsell"]}, hotel)


def token_used(jti: str, sid: str, kiosk: str, hotel: str = "demo") -> dict:
    return entry("token.used", "qr_token", jti, {"jti": jti, "sessionId": sid, "kioskId": kiosk,
                                                  "consumedAt": NOW}, hotel)


def history(hotel: str) -> list[dict]:
    """What the hotel's kiosks did (pushed in one batch, in order)."""
    if hotel == "harbor":
        return [ticket("T-H1", "R-1042", "Carl wants a taxi", "101", "fp-carl", hotel),
                session_opened("sess-carl", "R-1042", "jti-carl", hotel=hotel),
                token_used("jti-carl", "sess-carl", "lobby-9", hotel)]
    return [
        ticket("T-A1", "R-1042", "Ada needs towels", "101", "fp-towels-101"),
        ticket("T-B1", "R-1043", "Bob wants a pillow", "102", "fp-pillow-102"),
        # Bob's twin of Ada's request: merged into hers (a conflict on T-B2, Bob's)
        ticket("T-B2", "R-1043", "Bob Brown also needs towels", "101", "fp-towels-101"),
        ticket("T-S1", "s-7", "Grace: minibar in 101 is empty", "101", "fp-minibar-101"),  # staff's, for the room
        entry("ticket.updated", "ticket", "T-A1", {"ticketId": "T-A1", "by": "s-7", "at": iso(NOW),
                                                   "changes": {"reply": {"new": "Towels are on their way"}}}),
        entry("token.issued", "qr_token", "jti-ada", {"jti": "jti-ada", "subject": "R-1042", "role": "guest",
                                                       "reusable": False, "expiresAt": int(NOW) + 86400}),
        session_opened("sess-ada", "R-1042", "jti-ada"),
        token_used("jti-ada", "sess-ada", "lobby-1"),
        token_used("jti-ada", "sess-ada-2", "lobby-2"),  # the same one-time code at a second kiosk: a replay
        entry("session.ended", "session", "sess-ada", {"sessionId": "sess-ada", "reason": "logout",
                                                       "endedAt": NOW + 60}),
        entry("token.issued", "qr_token", "jti-bob", {"jti": "jti-bob", "subject": "R-1043", "role": "guest",
                                                       "reusable": False, "expiresAt": int(NOW) + 86400}),
        session_opened("sess-bob", "R-1043", "jti-bob"),
        token_used("jti-bob", "sess-bob", "lobby-1"),
        session_opened("sess-staff", "R-1042", "jti-staff", role="staff"),  # not a guest's, whatever its user
        entry("pms.update", "pms", "reservation:R-1042", {
            "entity": "reservation", "id": "R-1042", "reason": "the guest took the offer at the kiosk",
            "by": "R-1042", "at": iso(NOW), "requiresApproval": False,
            "changes": {"addOffer": {"offerId": "late-checkout", "name": "Late checkout", "type": "service",
                                     "price": 25.0, "currency": "EUR"}}}),
        entry("pms.update", "pms", "reservation:R-1043", {
            "entity": "reservation", "id": "R-1043", "reason": "the guest took the offer at the kiosk",
            "by": "R-1043", "at": iso(NOW), "requiresApproval": False,
            "changes": {"addOffer": {"offerId": "breakfast", "name": "Breakfast", "type": "food",
                                     "price": 18.0, "currency": "EUR"}}}),
        entry("message.send", "message", "R-1042:welcome", {"confirmation": "R-1042", "templateId": "welcome",
                                                             "text": "Welcome, Ada"}),
        entry("message.send", "message", "R-1043", {"confirmation": "R-1043", "text": "Hello Bob"}),
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request, tmp_path):
    """A cloud holding both hotels' stays; ``cloud(*args)`` runs ``kiosk-cloud`` on it (CliRunner)."""
    url = None if request.param == "sqlite" else request.getfixturevalue("pg").new_database(f"ge{next(_seq)}")
    run, data_dir = cloud_cli_helper.imported(tmp_path, url, ROOMS, {"demo": DEMO, "harbor": HARBOR})
    creds = tmp_path / "opera.json"
    creds.write_text(json.dumps(OPERA_SECRETS))
    r = run("pms", "link", "--hotel", "demo", "--kind", "opera", "--url", "https://opera.example",
            "--pms-hotel", "HOTEL1", "--credentials", str(creds))
    assert r.exit_code == 0, r.output
    st = storage.open_storage(data_dir, url)
    st.prepare()
    db = st.connect()
    try:
        for hotel in ("demo", "harbor"):
            device = devices.authenticate(db, devices.add_device(db, f"kiosk-{hotel}", [hotel], NOW))
            results = apply_push(db, device, history(hotel), NOW)
            assert {r["status"] for r in results} == {"applied"}, results
        with storage.transaction(db):  # what the OPERA connector keeps of the reservations it read
            pms_links.remember_reservations(db, "demo", [
                {"confirmation": "R-1042", "pms_id": "OP-77", "status": "InHouse", "room_number": "101"},
                {"confirmation": "R-1043", "pms_id": "OP-78", "status": "InHouse", "room_number": "102"}])
        run.db = db
        yield run
    finally:
        st.close()


def test_the_export_holds_the_guests_stay_and_nothing_of_anyone_else(cloud, tmp_path):
    out = tmp_path / "exports" / "ada.json"
    r = cloud("guest", "export", "--hotel", "demo", "--confirmation", "R-1042", "--output", str(out))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary == {"output": str(out), "hotelId": "demo", "confirmation": "R-1042", "reservations": 1,
                       "requests": 1, "events": 7}
    assert "Ada" not in r.stdout  # the terminal shows counts, not the guest's data
    assert out.stat().st_mode & 0o777 == 0o600
    assert not [p for p in out.parent.iterdir() if p != out]  # atomic: no temporary file left
    text = out.read_text(encoding="utf-8")
    doc = json.loads(text)

    assert (doc["format"], doc["hotelId"], doc["confirmation"]) == ("kiosk-guest-export/1", "demo", "R-1042")
    assert doc["exportedAt"].endswith("Z")
    assert abs(datetime.fromisoformat(doc["exportedAt"]).timestamp() - time.time()) < 120
    [res] = doc["reservations"]
    assert res["confirmation"] == "R-1042"
    assert {k: res["details"][k] for k in ("guest_name", "email", "phone", "room_number", "arrival")} == {
        "guest_name": "Ada Lovelace", "email": "ada@example.org", "phone": "+44 20 7946 0001",
        "room_number": "101", "arrival": "2026-11-24"}
    assert doc["pmsReservations"] == [{"pmsId": "OP-77", "status": "InHouse", "room": "101"}]

    [req] = doc["requests"]
    assert (req["requestId"], req["title"], req["roomNumber"], req["reply"]) == (
        "T-A1", "Ada needs towels", "101", "Towels are on their way")
    assert req["mergedInto"] is None

    assert sorted((e["kind"], e["entityId"]) for e in doc["events"]) == [
        ("message.send", "R-1042:welcome"), ("pms.update", "reservation:R-1042"), ("session.ended", "sess-ada"),
        ("session.opened", "sess-ada"), ("token.issued", "jti-ada"), ("token.used", "jti-ada"),
        ("token.used", "jti-ada")]
    opened = next(e for e in doc["events"] if e["kind"] == "session.opened")
    assert opened["details"]["openedAt"].endswith("Z") and opened["details"]["triggeredAIModels"] == ["upsell"]
    assert doc["offersTaken"] == [{"offerId": "late-checkout", "name": "Late checkout", "type": "service",
                                   "price": 25.0, "currency": "EUR", "at": iso(NOW),
                                   "receivedAt": doc["offersTaken"][0]["receivedAt"]}]
    assert sorted(u["kioskId"] for u in doc["tokenUses"]) == ["lobby-1", "lobby-2"]
    assert {u["tokenId"] for u in doc["tokenUses"]} == {"jti-ada"}
    [replay] = doc["securityEvents"]
    assert (replay["kind"], replay["tokenId"]) == ("TOKEN_REPLAY", "jti-ada")
    assert [(c["entityType"], c["entityId"], c["rule"]) for c in doc["conflicts"]] == [
        ("qr_token", "jti-ada", "token-replay")]
    assert sorted((a["action"], a["entity"]) for a in doc["pmsActions"]) == [
        ("charge", "reservation:R-1042"), ("service_request", "ticket:T-A1")]
    assert doc["tokenRevocations"] == [] and doc["relayQueue"] == []
    changed = {(h["entityType"], h["entityId"]) for h in doc["history"]}
    assert changed == {("reservation", "R-1042"), ("ticket", "T-A1")}

    for foreign in FOREIGN:
        assert foreign not in text, foreign


def test_stdout_is_the_same_document_and_a_lower_case_confirmation_is_the_stay(cloud, tmp_path):
    out = tmp_path / "bob.json"
    assert cloud("guest", "export", "--hotel", "demo", "--confirmation", "R-1043", "--output", str(out)).exit_code == 0
    r = cloud("guest", "export", "--hotel", "demo", "--confirmation", "r-1043")
    assert r.exit_code == 0, r.output
    doc, saved = json.loads(r.stdout), json.loads(out.read_text(encoding="utf-8"))
    assert doc.pop("exportedAt") and saved.pop("exportedAt")
    assert doc == saved
    assert doc["confirmation"] == "R-1043"
    # Bob's two requests: his own, and the twin merged into Ada's (which he still asked for)
    assert sorted((q["requestId"], q["mergedInto"]) for q in doc["requests"]) == [("T-B1", None), ("T-B2", "T-A1")]
    assert [c["entityId"] for c in doc["conflicts"]] == ["T-B2"]
    assert [o["offerId"] for o in doc["offersTaken"]] == ["breakfast"]
    assert "Ada" not in r.stdout and "ada@" not in r.stdout and "sess-ada" not in r.stdout


def test_the_same_confirmation_at_another_hotel_is_that_hotels_guest(cloud):
    r = cloud("guest", "export", "--hotel", "harbor", "--confirmation", "R-1042")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["reservations"][0]["details"]["guest_name"] == "Carl Clark"
    assert [q["requestId"] for q in doc["requests"]] == ["T-H1"]
    assert {e["entityId"] for e in doc["events"]} == {"sess-carl", "jti-carl"}
    assert doc["pmsReservations"] == [] and doc["pmsActions"] == []  # harbor is not linked to a PMS
    for word in ("Ada", "T-A1", "sess-ada", "jti-ada", "OP-77", "late-checkout"):
        assert word not in r.stdout, word


@pytest.mark.parametrize("hotel, confirmation", [("demo", "R-9999"), ("demo", "R-2001"), ("harbor", "R-1043"),
                                                 ("nowhere", "R-1042")])
def test_an_unknown_confirmation_or_another_hotels_is_not_found(cloud, tmp_path, hotel, confirmation):
    out = tmp_path / "none.json"
    r = cloud("guest", "export", "--hotel", hotel, "--confirmation", confirmation, "--output", str(out))
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith("error: NOT_FOUND: ") and r.stderr.count("\n") == 1, r.stderr
    assert confirmation in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_bad_input_is_a_validation_error(cloud, tmp_path):
    r = cloud("guest", "export", "--hotel", "demo", "--confirmation", "R-1042\x00")
    assert r.exit_code == 1 and r.stderr.startswith("error: VALIDATION_ERROR: "), r.stderr
    r = cloud("guest", "export", "--hotel", "demo")
    assert r.exit_code != 0 and r.stderr.startswith("error: VALIDATION_ERROR: ") and "--confirmation" in r.stderr
    r = cloud("guest", "export", "--hotel", "demo", "--confirmation", "R-1042", "--output", str(tmp_path))
    assert r.exit_code != 0 and r.stderr.startswith("error: VALIDATION_ERROR: ")


def test_the_command_as_a_process(tmp_path):
    """``kiosk-cloud guest export`` as scripts run it: the document on stdout; an unknown stay one
    line on stderr and exit status 1."""
    data_dir = tmp_path / "cloud"
    export = tmp_path / "export"
    export.mkdir()
    (export / "rooms.csv").write_text(ROOMS)
    (export / "reservations.csv").write_text(DEMO)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "sync.cloud.cli", "--data-dir", str(data_dir), *args],
                              capture_output=True, text=True, cwd=REPO, timeout=120)

    assert run("data", "import", str(export), "--hotel", "demo").returncode == 0
    p = run("guest", "export", "--hotel", "demo", "--confirmation", "R-1042")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["reservations"][0]["details"]["guest_name"] == "Ada Lovelace"
    p = run("guest", "export", "--hotel", "demo", "--confirmation", "R-404")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("error: NOT_FOUND: ") and p.stderr.count("\n") == 1, p.stderr
