"""A guest's right to be forgotten: ``kiosk-cloud guest erase`` (sync/cloud/erasure.py) and the
``guest_erasure`` change every kiosk and hub applies by pull (sync/kinds/guest_erasure.py).

Unit level (the command in-process, on SQLite and on PostgreSQL): without ``--yes`` nothing
changes; an unknown confirmation or another hotel's is NOT_FOUND and nothing changes; an
erasure takes the guest's name, contact details and words out of every table and keeps the
rest (the other guest's data, dates, rooms, amounts, counts).

With real processes on 127.0.0.1 (SQLite, whose files are read byte by byte): a guest with a
unique name is imported at the cloud and pulled by two kiosks; the guest signs in at both
and asks for something at one; the other kiosk's agent is stopped; the guest is erased;
the first kiosk pulls it, then the second once its agent runs again.  The name and e-mail
are then in no file of the cloud's or either kiosk's data directory (databases, their -wal
and -shm, logs), and everything else is where it was.  The same through a property hub.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path

import cloud_cli as cloud_cli_helper
import pytest
from harness import Cloud, Kiosk, wait_for

from kiosk import guest_keys
from kiosk.clock import iso
from sync.cloud import devices, guest_vault, storage
from sync.cloud.apply import apply_push

NOW = time.time()
_seq = iter(range(1, 10**9))

ROOMS = "room_number,room_type,floor,status\n101,KING,1,Clean\n102,TWIN,1,Clean\n"
HEADER = "confirmation,guest_name,room_number,arrival,departure,status,adults,children,email,phone,nightly_rate\n"
DEMO = HEADER + ("R-1042,Ada Lovelace,101,2026-11-24,2026-11-26,InHouse,2,0,ada@example.org,+44 20 7946 0001,180\n"
                 "R-1043,Bob Brown,102,2026-11-24,2026-11-27,InHouse,1,0,bob@example.org,+44 20 7946 0002,120\n")
HARBOR = HEADER + "R-1042,Carl Clark,101,2026-11-20,2026-11-22,CheckedOut,1,0,carl@example.org,+1 555 0100,90\n"
#: Ada's, which the erasure must take out of everything (her words, and words written to her)
ADA = ("Ada Lovelace", "Lovelace", "ada@example.org", "7946 0001", "Ada needs towels", "Towels are on their way",
       "Welcome, Ada", "Ada asks about the spa")


def entry(kind: str, etype: str, eid: str, payload: dict, hotel: str = "demo") -> dict:
    n = next(_seq)
    return {"key": f"{hotel}-{kind}-{eid}-{n}", "hotelId": hotel, "kind": kind, "entityType": etype,
            "entityId": eid, "hlc": f"{int(NOW * 1000) + n:015d}-00000-lobby-1", "createdAt": NOW,
            "payload": payload}


def ticket(tid: str, by: str, title: str, room: str, hotel: str = "demo") -> dict:
    return entry("ticket.created", "ticket", tid, {
        "ticketId": tid, "type": "housekeeping", "title": title, "description": f"{title}, please",
        "roomNumber": room, "priority": "normal", "queue": "housekeeping", "status": "received",
        "fingerprint": f"fp-{tid}", "createdAt": iso(NOW), "createdBy": by}, hotel)


def history(hotel: str) -> list[dict]:
    if hotel == "harbor":
        return [ticket("T-H1", "R-1042", "Carl wants a taxi", "101", hotel)]
    return [
        ticket("T-A1", "R-1042", "Ada needs towels", "101"),
        ticket("T-B1", "R-1043", "Bob wants a pillow", "102"),
        entry("ticket.updated", "ticket", "T-A1", {"ticketId": "T-A1", "by": "s-7", "at": iso(NOW),
                                                   "changes": {"reply": {"new": "Towels are on their way"}}}),
        entry("ticket.updated", "ticket", "T-A1", {"ticketId": "T-A1", "by": "s-7", "at": iso(NOW),
                                                   "changes": {"status": {"old": "received", "new": "done"}}}),
        entry("token.issued", "qr_token", "jti-ada", {"jti": "jti-ada", "subject": "R-1042", "role": "guest",
                                                       "reusable": False, "expiresAt": int(NOW) + 86400}),
        entry("session.opened", "session", "sess-ada", {"sessionId": "sess-ada", "userId": "R-1042", "role": "guest",
                                                        "jti": "jti-ada", "kioskId": "lobby-1", "openedAt": NOW}),
        entry("message.send", "message", "R-1042:arrival", {"confirmation": "R-1042", "templateId": "arrival",
                                                             "text": "Welcome, Ada", "language": "en"}),
        entry("message.send", "message", "R-1043", {"confirmation": "R-1043", "text": "Hello Bob"}),
        entry("task.created", "task", "T-q1", {"task_id": "T-q1", "type": "guest_question", "priority": "normal",
                                               "description": "R-1042: Ada asks about the spa", "status": "open"}),
        entry("pms.update", "pms", "reservation:R-1042", {
            "entity": "reservation", "id": "R-1042", "reason": "the guest took the offer at the kiosk",
            "by": "R-1042", "at": iso(NOW), "requiresApproval": False,
            "changes": {"addOffer": {"offerId": "late-checkout", "name": "Late checkout", "type": "addon",
                                     "price": 25.0, "currency": "EUR"}}}),
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request, tmp_path):
    """A cloud holding two hotels' stays; ``cloud(*args)`` runs ``kiosk-cloud`` on it (CliRunner),
    ``cloud.dump()`` reads every table."""
    url = None if request.param == "sqlite" else request.getfixturevalue("pg").new_database(f"er{next(_seq)}")
    run, data_dir = cloud_cli_helper.imported(tmp_path, url, ROOMS, {"demo": DEMO, "harbor": HARBOR})
    st = storage.open_storage(data_dir, url)
    st.prepare()
    db = st.connect()
    try:
        for hotel in ("demo", "harbor"):
            device = devices.authenticate(db, devices.add_device(db, f"kiosk-{hotel}", [hotel], NOW))
            results = apply_push(db, device, history(hotel), NOW)
            assert {r["status"] for r in results} == {"applied"}, results

        def dump() -> dict[str, list]:
            names = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                if url is None else "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()]
            return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}").fetchall())) for t in names}

        run.db, run.dump, run.data_dir, run.sqlite = db, dump, data_dir, url is None
        yield run
    finally:
        st.close()


def test_without_yes_nothing_is_changed(cloud):
    before = cloud.dump()
    r = cloud("guest", "erase", "--hotel", "demo", "--confirmation", "R-1042")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("error: VALIDATION_ERROR: ") and "--yes" in r.stderr and r.stderr.count("\n") == 1
    assert cloud.dump() == before


@pytest.mark.parametrize("hotel, confirmation", [("demo", "R-9999"), ("harbor", "R-1043"), ("nowhere", "R-1042")])
def test_an_unknown_confirmation_or_another_hotels_is_not_found(cloud, hotel, confirmation):
    before = cloud.dump()
    r = cloud("guest", "erase", "--hotel", hotel, "--confirmation", confirmation, "--yes")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("error: NOT_FOUND: ") and confirmation in r.stderr and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr
    assert cloud.dump() == before


def test_the_erasure_takes_the_guest_out_and_keeps_everything_else(cloud, tmp_path):
    before = cloud.dump()
    r = cloud("guest", "erase", "--hotel", "demo", "--confirmation", "r-1042", "--yes")  # typed as at the kiosk
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {k: out[k] for k in ("hotelId", "confirmation", "reservations", "requests", "events", "pmsActions")} == {
        "hotelId": "demo", "confirmation": "R-1042", "reservations": 1, "requests": 1, "events": 2, "pmsActions": 0}
    assert "Ada" not in r.stdout
    after = cloud.dump()
    text = json.dumps(after)
    for word in ADA:
        assert word not in text, word
    for kept in ("Bob Brown", "bob@example.org", "Bob wants a pillow", "Hello Bob", "Carl Clark", "Carl wants a taxi",
                 "Late checkout"):
        assert kept in text, kept
    # every row is still there: counts, analytics and the night audit are unchanged
    kept = ("ref_data", "tickets", "events", "consumptions", "pms_actions", "applied_entries", "devices")
    assert {t: len(after[t]) for t in kept} == {t: len(before[t]) for t in kept}
    assert len(after["guest_erasures"]) == 1 and not before["guest_erasures"]
    [erasure] = cloud.db.execute("SELECT hotel_id, confirmation, erased_by FROM guest_erasures").fetchall()
    assert tuple(erasure) == ("demo", "R-1042", "cli")

    doc = json.loads(cloud("guest", "export", "--hotel", "demo", "--confirmation", "R-1042").stdout)
    details = doc["reservations"][0]["details"]
    assert (details["guest_name"], details["email"], details["phone"]) == ("Erased guest", None, None)
    assert (details["arrival"], details["departure"], details["room_number"], details["nightly_rate"],
            details["adults"], details["status"]) == ("2026-11-24", "2026-11-26", "101", 180.0, 2, "InHouse")
    [req] = doc["requests"]
    assert (req["requestId"], req["title"], req["description"], req["reply"], req["status"], req["roomNumber"]) == (
        "T-A1", "(erased)", "(erased)", "(erased)", "done", "101")
    texts = {e["entityId"]: e["details"].get("text") or e["details"].get("description") for e in doc["events"]}
    assert texts["R-1042:arrival"] == "(erased)"
    assert [o["name"] for o in doc["offersTaken"]] == ["Late checkout"]
    # what kiosks pull: the erased reservation and request, and the erasure; the old copies are gone
    logged = {(h["entityType"], h["entityId"]): h["data"] for h in doc["history"]}
    assert logged[("reservation", "R-1042")]["guest_name"] == "Erased guest"
    assert logged[("ticket", "T-A1")]["title"] == "(erased)"
    rows = cloud.db.execute("SELECT entity_type, entity_id, data FROM changes WHERE hotel_id = 'demo'"
                            " AND entity_type IN ('reservation', 'ticket', 'guest_erasure')"
                            " AND entity_id IN ('R-1042', 'T-A1')").fetchall()
    assert sorted((r[0], r[1]) for r in rows) == [("guest_erasure", "R-1042"), ("reservation", "R-1042"),
                                                 ("ticket", "T-A1")]
    assert set(json.loads([r[2] for r in rows if r[0] == "guest_erasure"][0])) == {"confirmation", "erasedAt"}
    # the other hotel's guest with the same confirmation is untouched
    carl = json.loads(cloud("guest", "export", "--hotel", "harbor", "--confirmation", "R-1042").stdout)
    assert carl["reservations"][0]["details"]["guest_name"] == "Carl Clark"
    if cloud.sqlite:  # the old bytes are gone from the files, not only from the rows
        for f in sorted(cloud.data_dir.rglob("*")):
            if f.is_file():
                data = f.read_bytes().lower()
                for word in ADA:
                    assert word.lower().encode() not in data, (word, f.name)

    # again: nothing more to erase, still fine; an import of the PMS's export keeps her erased
    r = cloud("guest", "erase", "--hotel", "demo", "--confirmation", "R-1042", "--yes")
    assert r.exit_code == 0 and json.loads(r.stdout)["reservations"] == 0, r.output
    export = tmp_path / "again"
    export.mkdir()
    (export / "rooms.csv").write_text(ROOMS)
    (export / "reservations.csv").write_text(DEMO)
    r = cloud("data", "import", str(export), "--hotel", "demo")
    assert r.exit_code == 0 and json.loads(r.stdout)["reservations"]["unchanged"] == 2, r.output
    assert "Ada" not in json.dumps(cloud.dump())


def test_postgresql_files_hold_a_guest_only_sealed(pg, tmp_path):
    """The cloud on PostgreSQL: the guest's name, e-mail and words are in no file of the cluster
    (tables, WAL) as plain bytes, but read as plain through the cloud; an entry whose kiosk
    names no guest is stored as it came (and the search finds it: the control)."""
    url = pg.new_database(f"sealed{next(_seq)}")
    stays = HEADER + "R-5001,Quillibrand Zotz,101,2026-11-24,2026-11-26,InHouse,1,0,zotz@example.org,+44 1,99\n"
    run, data_dir = cloud_cli_helper.imported(tmp_path, url, ROOMS, {"demo": stays})
    st = storage.open_storage(data_dir, url)
    st.prepare()
    db = st.connect()
    try:
        device = devices.authenticate(db, devices.add_device(db, "kiosk-demo", ["demo"], NOW))
        named = ticket("T-Z1", "R-5001", "Quillibrand needs a Frobnitzel", "101") | {"subject": "R-5001"}
        plain = entry("message.send", "message", "R-5001:x", {"confirmation": "R-5001", "text": "Plonkwhistle"})
        assert {r["status"] for r in apply_push(db, device, [named, plain], NOW)} == {"applied"}
        assert db.execute("SELECT title FROM tickets WHERE ticket_id = 'T-Z1'").fetchone()[0] == (
            "Quillibrand needs a Frobnitzel")
        assert db.execute("SELECT data FROM ref_data WHERE entity_id = 'R-5001'").fetchone()[0].count("Zotz") == 1
        db.execute("CHECKPOINT")  # the pages written to the table files, not only to the WAL
    finally:
        st.close()
    found: set[bytes] = set()
    for f in (pg.dir / "data").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            found |= {n for n in (b"Quillibrand", b"Zotz", b"zotz@example", b"Frobnitzel", b"Plonkwhistle")
                      if n in data}
    assert found == {b"Plonkwhistle"}, found
    assert (data_dir / guest_vault.FILENAME).stat().st_mode & 0o777 == 0o600


# --- real processes --------------------------------------------------------------------------

NAME = "Zyxquorra Vendelbrook"
EMAIL = "zyxquorra.vendelbrook@example.org"
#: what may be in no file after the erasure (compared case-insensitively: a request's content
#: terms are kept in lower case)
NEEDLES = (b"zyxquorra", b"vendelbrook", EMAIL.encode())
CONF = "R-7001"


def export_dir(tmp_path: Path) -> Path:
    today = date.today()
    folder = tmp_path / "pms-export"
    folder.mkdir(exist_ok=True)
    (folder / "rooms.csv").write_text(ROOMS)
    (folder / "reservations.csv").write_text(
        HEADER + f"{CONF},{NAME},101,{today - timedelta(days=1)},{today + timedelta(days=2)},InHouse,2,0,{EMAIL},"
                 f"+44 20 7946 0999,150\n"
                 f"R-7002,Bob Brown,102,{today - timedelta(days=1)},{today + timedelta(days=1)},InHouse,1,0,"
                 f"bob@example.org,+44 20 7946 0002,120\n")
    return folder


def rows(db_file: Path, sql: str, params=()) -> list[tuple]:
    """Rows of a database file read from outside; a kiosk's sealed personal fields opened with
    its keys, as the kiosk reads them (kiosk/guest_keys.py)."""
    con = guest_keys.reader(str(db_file))
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def kiosk_rows(k: Kiosk, sql: str, params=()) -> list[tuple]:
    return rows(k.dir / "kiosk.db", sql, params)


def reservation(k: Kiosk, conf: str = CONF):
    got = kiosk_rows(k, "SELECT guest_name, email, phone, room_number, nightly_rate FROM reservations"
                        " WHERE hotel_id = 'demo' AND confirmation = ?", [conf])
    return got[0] if got else None


def where_found(*dirs: Path) -> list[tuple[str, bytes]]:
    """(file, needle) for every file under ``dirs`` whose bytes hold one of :data:`NEEDLES`."""
    found = []
    for d in dirs:
        for f in sorted(d.rglob("*")):
            if f.is_file():
                data = f.read_bytes().lower()
                found += [(str(f), n) for n in NEEDLES if n in data]
    return found


def sign_in(k: Kiosk):
    import requests

    s = requests.Session()
    r = s.post(k.url + "/api/lobby/sign-in", json={"confirmation": CONF, "lastName": "Vendelbrook"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["name"] == NAME
    s.headers["Authorization"] = "Bearer " + r.json()["sessionJWT"]
    return s


@pytest.fixture
def site(tmp_path):
    made: list = []
    yield made
    for m in made:
        (m.stop_all if isinstance(m, Kiosk) else m.stop)()


def linked(site: list, tmp_path: Path, *names: str) -> tuple[Cloud, list[Kiosk]]:
    """A cloud (SQLite: its files are what is searched) holding :func:`export_dir`'s stays, and
    kiosks of those names linked to it, serving, their agents running, each holding the
    guest's stay; all stopped by ``site``."""
    cloud = Cloud(tmp_path)
    site.append(cloud.start())
    r = cloud.cli("data", "import", str(export_dir(tmp_path)), "--hotel", "demo")
    assert json.loads(r.stdout)["reservations"]["added"] == 2, r.stdout
    kiosks = [Kiosk(tmp_path, name) for name in names]
    for k in kiosks:
        site.append(k)
        k.link(cloud.url, cloud.device(k.name, "demo"))
        k.serve()
        k.start_agent()
    for k in kiosks:
        wait_for(lambda k=k: (reservation(k) or (None,))[0] == NAME, timeout=60, what=f"the stay at {k.name}")
    return cloud, kiosks


def test_an_erased_guest_is_in_no_file_of_the_cloud_or_of_either_kiosk(site, tmp_path):
    cloud, (a, b) = linked(site, tmp_path, "kiosk-a", "kiosk-b")
    sign_in(b)  # a session at B too: its display name is the guest's
    guest = sign_in(a)
    r = guest.post(a.url + "/api/guest/requests", timeout=60,
                   json={"text": f"{NAME} here: two more towels please, and write to {EMAIL}"})
    assert r.status_code == 201, r.text
    tid = r.json()["ticket"]["ticketId"]
    wait_for(lambda: any(t["ticketId"] == tid for t in cloud.list("tickets", "demo")), timeout=60,
             what="the request at the cloud")
    wait_for(lambda: kiosk_rows(b, "SELECT 1 FROM tickets WHERE ticket_id = ?", [tid]), timeout=60,
             what="the request at kiosk B")
    wait_for(lambda: a.status()["pending"] == 0, timeout=60, what="kiosk A to deliver its outbox")
    b.agent.stop()  # B goes offline before the erasure
    # the search finds the guest where they are in clear: the PMS export they were imported from
    assert {n for _, n in where_found(tmp_path / "pms-export")} == set(NEEDLES)
    # the cloud and the kiosks keep them sealed under the guest's key: in none of their files
    assert where_found(cloud.dir, a.dir, b.dir) == [], where_found(cloud.dir, a.dir, b.dir)
    backup = cloud_backup(cloud.dir, tmp_path / "cloud-backup")  # the cloud's database, backed up
    assert where_found(backup) == []
    counts_before = {k.name: kiosk_rows(k, "SELECT COUNT(*) FROM tickets")[0][0] for k in (a, b)}

    r = cloud.cli("guest", "erase", "--hotel", "demo", "--confirmation", CONF, "--yes")
    out = json.loads(r.stdout)
    assert (out["reservations"], out["requests"], out["filesCheckpointed"]) == (1, 1, True), out
    wait_for(lambda: (reservation(a) or (None,))[0] == "Erased guest", timeout=60, what="the erasure at kiosk A")
    wait_for(lambda: kiosk_rows(a, "SELECT COUNT(*) FROM audit_log WHERE event = 'guest.erased'")[0][0] == 1,
             timeout=60, what="kiosk A to apply the erasure")
    assert (reservation(b) or (None,))[0] == NAME  # still offline: not yet
    b.start_agent()
    wait_for(lambda: kiosk_rows(b, "SELECT COUNT(*) FROM audit_log WHERE event = 'guest.erased'")[0][0] == 1,
             timeout=60, what="kiosk B to apply the erasure once back")

    for k in (a, b):
        assert reservation(k) == ("Erased guest", None, None, "101", 150.0), k.name
        assert reservation(k, "R-7002")[:2] == ("Bob Brown", "bob@example.org")
        assert kiosk_rows(k, "SELECT COUNT(*) FROM tickets")[0][0] == counts_before[k.name]
        assert kiosk_rows(k, "SELECT title, description, terms, created_by FROM tickets WHERE ticket_id = ?",
                          [tid]) == [("(erased)", "(erased)", "[]", CONF)]
        assert {n for (n,) in kiosk_rows(k, "SELECT display_name FROM sessions WHERE user_id = ?", [CONF])} == {
            "Erased guest"}
        # the audit log is a hash chain, not rewritten (it never held the name): it still verifies
        assert k.cli("kiosk", "audit", "verify", check=False).returncode == 0
    doc = json.loads(cloud.cli("guest", "export", "--hotel", "demo", "--confirmation", CONF).stdout)
    assert doc["reservations"][0]["details"]["guest_name"] == "Erased guest"
    assert doc["reservations"][0]["details"]["email"] is None
    assert [(q["requestId"], q["title"], q["description"]) for q in doc["requests"]] == [(tid, "(erased)", "(erased)")]
    erasures = rows(cloud.dir / "cloud.db", "SELECT * FROM guest_erasures")
    assert [e[:2] for e in erasures] == [("demo", CONF)] and not any(
        n in repr(erasures).lower().encode() for n in NEEDLES)
    assert len(cloud.list("tickets", "demo")) == 1
    # the bytes: in no file of any data directory (databases, -wal, -shm, logs, keys)
    assert where_found(cloud.dir, a.dir, b.dir, backup) == []
    # the backup made before, restored beside the live keys: the guest reads as erased, Bob as he is
    restored = tmp_path / "cloud-restored"
    restored.mkdir()
    shutil.copy(backup / "cloud.db", restored / "cloud.db")
    shutil.copy(cloud.dir / guest_vault.FILENAME, restored / guest_vault.FILENAME)
    st = storage.open_storage(restored)
    db = st.connect()
    try:
        names = {eid: json.loads(data)["guest_name"] for eid, data in db.execute(
            "SELECT entity_id, data FROM ref_data WHERE entity_type = 'reservation'").fetchall()}
        assert names == {CONF: "Erased guest", "R-7002": "Bob Brown"}
        assert db.execute("SELECT title FROM tickets WHERE ticket_id = ?", [tid]).fetchone()[0] == "(erased)"
    finally:
        db.conn.close()


def cloud_backup(data_dir: Path, to: Path) -> Path:
    """The cloud's database backed up as docs/operations.md says (SQLite's online backup of
    ``cloud.db``; the guests' keys, ``guest-keys.db``, are not part of it)."""
    to.mkdir()
    src = sqlite3.connect(data_dir / "cloud.db")
    dst = sqlite3.connect(to / "cloud.db")
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return to


def test_an_erasure_at_the_chain_reaches_a_hub_and_its_kiosk(site, tmp_path):
    (tmp_path / "chain").mkdir()
    (tmp_path / "hub").mkdir()
    chain, hub = Cloud(tmp_path / "chain"), Cloud(tmp_path / "hub")
    site.append(chain.start())
    r = hub.cli("link", "--cloud", chain.url, "--device-id", "hub-1", "--credential", chain.device("hub-1", "demo"))
    assert json.loads(r.stdout)["linked"] is True
    site.append(hub.start())
    chain.cli("data", "import", str(export_dir(tmp_path)), "--hotel", "demo")
    k = Kiosk(tmp_path, "lobby")
    site.append(k)
    k.serve()
    k.link(hub.url, hub.device("lobby", "demo"))
    k.start_agent()
    wait_for(lambda: (reservation(k) or (None,))[0] == NAME, timeout=90, what="the stay at the kiosk, via the hub")
    guest = sign_in(k)
    r = guest.post(k.url + "/api/guest/requests", timeout=60, json={"text": f"{NAME}: a late checkout, {EMAIL}"})
    assert r.status_code == 201, r.text
    tid = r.json()["ticket"]["ticketId"]
    wait_for(lambda: rows(chain.dir / "cloud.db", "SELECT 1 FROM tickets WHERE ticket_id = ?", [tid]), timeout=90,
             what="the request at the chain, relayed by the hub")

    wait_for(lambda: rows(hub.dir / "cloud.db", "SELECT 1 FROM tickets WHERE ticket_id = ?", [tid]), timeout=90,
             what="the request at the hub")
    # the chain, the hub and the kiosk each keep the guest sealed under a key of their own
    assert where_found(chain.dir, hub.dir, k.dir) == [], where_found(chain.dir, hub.dir, k.dir)
    assert {n for _, n in where_found(tmp_path / "pms-export")} == set(NEEDLES)  # the search does find them

    r = chain.cli("guest", "erase", "--hotel", "demo", "--confirmation", CONF, "--yes")
    assert json.loads(r.stdout)["requests"] == 1
    wait_for(lambda: kiosk_rows(k, "SELECT COUNT(*) FROM audit_log WHERE event = 'guest.erased'")[0][0] == 1,
             timeout=90, what="the erasure at the kiosk, via the hub")
    assert rows(hub.dir / "cloud.db", "SELECT hotel_id, confirmation, erased_by FROM guest_erasures") == [
        ("demo", CONF, "chain")]
    assert rows(hub.dir / "cloud.db", "SELECT title FROM tickets WHERE ticket_id = ?", [tid]) == [("(erased)",)]
    assert reservation(k)[0] == "Erased guest"
    assert kiosk_rows(k, "SELECT title FROM tickets WHERE ticket_id = ?", [tid]) == [("(erased)",)]
    assert where_found(chain.dir, hub.dir, k.dir) == []


def test_a_copy_freed_before_the_erasure_is_not_left_in_the_file(tmp_path):
    """Every store connection zeroes what it frees (``secure_delete`` at least FAST, whatever the
    SQLite build's default), so an erasure leaves no older copy of the words in a page's free
    space: an outbox entry moved by its delivery (the row grew), then erased as a pull does."""
    from kiosk import store

    db = store.connect(tmp_path / "kiosk.db")
    assert db.conn.execute("PRAGMA secure_delete").fetchone()[0] in (1, 2)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT, state TEXT, at REAL)")
    db.execute("INSERT INTO t (payload, state) VALUES (?, 'pending')", [f"{NAME} wants towels"])
    for i in range(3):
        db.execute("INSERT INTO t (payload, state) VALUES (?, 'pending')", [f"someone else {i}"])
    db.execute("UPDATE t SET state = 'delivered', at = 1.5 WHERE id = 1")  # the row grows: it moves
    with store.secure_delete(db), store.transaction(db):
        db.execute("UPDATE t SET payload = '(erased)' WHERE id = 1")
    assert db.conn.execute("PRAGMA secure_delete").fetchone()[0] in (1, 2)  # as it was
    assert store.checkpoint_truncate(db)
    assert (tmp_path / "kiosk.db-wal").stat().st_size == 0
    assert where_found(tmp_path) == []
