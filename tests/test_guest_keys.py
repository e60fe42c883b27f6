"""A key per guest at the kiosk (kiosk/guest_keys.py): personal fields sealed at rest, never in
a backup in clear, and unreadable everywhere — backups made before included — once the guest is
erased and their key destroyed.

In-process on a real SQLite file: what a field reads as and what its file holds; a key
destroyed by another connection; a tampered or moved value; the outbox sealed and opened for
the push; content terms kept as a blind index that still finds a twin request.

With real processes: a guest with a unique name imported at the cloud, pulled by two kiosks,
one of them backed up and then offline at the moment of the erasure; the name is in no backup
file before, in no file of any kiosk or backup after, a restore of the old backup shows an
erased guest (with the live keys taken over, and without them), and `kiosk audit verify`
passes after the erasure and names the row edited with the sqlite3 shell.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from harness import Cloud, Kiosk, Proc, run, wait_for
from test_guest_erasure import (
    CONF,
    EMAIL,
    NAME,
    kiosk_rows,
    linked,
    reservation,
    sign_in,
    where_found,
)

from kiosk import erased, guest_keys, outbox, store, tickets
from kiosk.property import tables

SECRET = "Quillon Marrowgate"
NOW = time.time()


def stay(conf: str = "R-1", name: str = SECRET, email: str | None = "quillon@example.org") -> dict:
    return {"confirmation": conf, "guest_name": name, "email": email, "phone": "+44 20 7946 0777",
            "room_number": "101", "arrival": "2026-12-05", "departure": "2026-12-08", "status": "InHouse"}


@pytest.fixture
def db(tmp_path):
    d = store.connect(tmp_path / "kiosk.db")
    yield d
    d.conn.close()


def file_bytes(folder: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file())


def raw(path: Path, sql: str, params=()) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_a_sealed_field_reads_plain_and_is_in_no_file_in_clear(db, tmp_path):
    with store.transaction(db):
        tables.upsert(db, "demo", "reservations", stay())
    assert db.execute("SELECT guest_name, email, phone, room_number FROM reservations").fetchone() == (
        SECRET, "quillon@example.org", "+44 20 7946 0777", "101")
    assert list(db.query("SELECT guest_name FROM reservations")) == [{"guest_name": SECRET}]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = raw(tmp_path / "kiosk.db", "SELECT guest_name, email, room_number FROM reservations")[0]
    assert stored[0].startswith("pii1.n.") and stored[1].startswith("pii1.c.") and stored[2] == "101"
    assert b"Marrowgate" not in file_bytes(tmp_path) and b"quillon@" not in file_bytes(tmp_path)
    # the same text sealed twice is two different values (a fresh nonce each time)
    with store.transaction(db):
        assert guest_keys.seal(db, "demo", "R-1", SECRET, "n") != guest_keys.seal(db, "demo", "R-1", SECRET, "n")


def test_a_destroyed_key_reads_as_erased_at_every_connection(db, tmp_path):
    with store.transaction(db):
        tables.upsert(db, "demo", "reservations", stay())
        tables.upsert(db, "demo", "reservations", stay("R-2", "Other Person", "other@example.org"))
        words = guest_keys.seal(db, "demo", "R-1", "Quillon asks for a crib")
    other = store.connect(tmp_path / "kiosk.db")
    try:
        assert other.execute("SELECT guest_name FROM reservations WHERE confirmation = 'R-1'").fetchone()[0] == SECRET
        with store.transaction(db):
            assert guest_keys.destroy(db, "demo", "R-1") == 1
            assert guest_keys.destroy(db, "demo", "R-1") == 0
        # the other connection had the key cached: it must not read the guest any more
        for conn in (db, other):
            assert conn.execute("SELECT guest_name, email, phone FROM reservations WHERE confirmation = 'R-1'"
                                ).fetchone() == (erased.NAME, None, None)
            assert guest_keys.open_value(conn, words) == erased.TEXT
            assert conn.execute("SELECT guest_name FROM reservations WHERE confirmation = 'R-2'").fetchone() == (
                "Other Person",)
    finally:
        other.conn.close()


def test_a_tampered_or_moved_value_reads_as_erased_never_as_an_error(db):
    with store.transaction(db):
        name = guest_keys.seal(db, "demo", "R-1", SECRET, "n")
        other = guest_keys.seal(db, "demo", "R-2", "Other Person", "n")
    assert guest_keys.open_value(db, name) == SECRET
    flipped = name[:-6] + ("A" if name[-6] != "A" else "B") + name[-5:]
    assert guest_keys.open_value(db, flipped) == erased.NAME
    as_words = name.replace("pii1.n.", "pii1.t.", 1)  # the tag is bound to the value
    assert guest_keys.open_value(db, as_words) == erased.TEXT
    kid_other = other.split(".")[2]
    moved = ".".join([*name.split(".")[:2], kid_other, name.split(".")[3]])  # under another guest's key
    assert guest_keys.open_value(db, moved) == erased.NAME
    assert guest_keys.open_value(db, "pii1.n.nokey.@@@") == erased.NAME
    assert guest_keys.open_value(db, "pii1 is just words") == "pii1 is just words"


def test_the_outbox_holds_a_guests_words_sealed_and_pushes_them_plain(db, tmp_path):
    body = {"type": "housekeeping", "title": "Quillon needs two towels", "description": "write to quillon@example.org",
            "roomNumber": "101"}
    made = tickets.create(db, body, hotel_id="demo", by="R-1", now=NOW, node="k", window=600, guest=True)
    staff = tickets.create(db, {"type": "maintenance", "title": "Lamp broken in 101", "roomNumber": "101"},
                           hotel_id="demo", by="s-7", now=NOW, node="k", window=600)
    assert made["ticket"]["title"] == "Quillon needs two towels"  # the answer is plain
    entries = {r["entity_id"]: r for r in outbox.pending(db, "demo")}
    sealed = json.loads(entries[made["ticket"]["ticketId"]]["payload"])
    assert sealed["title"].startswith("pii1.t.") and sealed["roomNumber"] == "101"
    assert guest_keys.open_tree(db, sealed)["title"] == "Quillon needs two towels"
    # a staff member's words are not a guest's: plain, and readable on any machine
    assert json.loads(entries[staff["ticket"]["ticketId"]]["payload"])["title"] == "Lamp broken in 101"
    assert tickets.get(db, "demo", made["ticket"]["ticketId"])["title"] == "Quillon needs two towels"
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"Quillon" not in file_bytes(tmp_path) and b"quillon@" not in file_bytes(tmp_path)
    assert b"Lamp broken" in file_bytes(tmp_path)
    # the staff member's reply is written to the guest: sealed too
    tickets.reply(db, "demo", made["ticket"]["ticketId"], "Quillon, they are on their way", by="s-7", now=NOW + 1,
                  node="k")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"on their way" not in file_bytes(tmp_path)
    replies = [json.loads(r["payload"]) for r in outbox.pending(db, "demo") if "reply" in r["payload"]]
    assert [guest_keys.open_tree(db, p)["changes"]["reply"]["new"] for p in replies] == [
        "Quillon, they are on their way"]


def test_content_terms_are_a_blind_index_that_still_finds_the_twin_request(db, tmp_path):
    first = tickets.create(db, {"type": "housekeeping", "title": "two more towels please", "roomNumber": "101"},
                           hotel_id="demo", by="R-1", now=NOW, node="k", window=600, guest=True)
    twin = tickets.create(db, {"type": "housekeeping", "title": "please bring two more towels", "roomNumber": "101"},
                          hotel_id="demo", by="R-1", now=NOW + 5, node="k", window=600, guest=True)
    assert twin["duplicateOf"] == first["ticket"]["ticketId"]
    other = tickets.create(db, {"type": "housekeeping", "title": "an ironing board", "roomNumber": "101"},
                           hotel_id="demo", by="R-1", now=NOW + 9, node="k", window=600, guest=True)
    assert other["duplicateOf"] is None
    terms = json.loads(db.execute("SELECT terms FROM tickets WHERE ticket_id = ?",
                                  [first["ticket"]["ticketId"]]).fetchone()[0])
    assert terms and all(len(t) == 16 and t not in ("towel", "towels") for t in terms)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"towel" not in file_bytes(tmp_path)


# --- real processes: erasure, backup and restore ----------------------------------------------------

@pytest.fixture
def site(tmp_path):
    made: list = []
    yield made
    for m in made:
        (m.stop_all if isinstance(m, Kiosk) else m.kill if isinstance(m, Proc) else m.stop)()


def restored(k: Kiosk, backup: Path, target: Path, *extra: str) -> dict:
    return json.loads(run("kiosk", "restore", str(backup), *extra,
                          env={**k.agent_env, "KIOSK_DATA_DIR": str(target)}).stdout)


def read(db_file: Path, sql: str, params=()) -> list[tuple]:
    con = guest_keys.reader(str(db_file))
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_an_erased_guest_is_gone_from_every_kiosk_and_every_backup_made_before(site, tmp_path):
    cloud, (a, b) = linked(site, tmp_path, "kiosk-a", "kiosk-b")
    sign_in(b)
    guest = sign_in(a)
    r = guest.post(a.url + "/api/guest/requests", timeout=60,
                   json={"text": f"{NAME} here: two more towels please, and write to {EMAIL}"})
    assert r.status_code == 201, r.text
    tid = r.json()["ticket"]["ticketId"]
    wait_for(lambda: kiosk_rows(b, "SELECT title FROM tickets WHERE ticket_id = ?", [tid]), timeout=60,
             what="the request at kiosk B")
    assert NAME in kiosk_rows(b, "SELECT description FROM tickets WHERE ticket_id = ?", [tid])[0][0]

    # B's agent has the hotel's backup key from the cloud (asked for at its start)
    wait_for(lambda: raw(b.dir / "kiosk.db", "SELECT count(*) FROM guest_keys WHERE hotel_id = 'demo'"
                                             " AND subject = ''") == [(1,)], timeout=60, what="the backup key at B")
    usb = tmp_path / "usb" / "kiosk-b"
    made = json.loads(b.cli("kiosk", "backup", str(usb)).stdout)
    assert made["files"] > 0
    # before the erasure: the backup holds the guest only sealed, and their key only wrapped
    # under the hotel's backup key, which it does not hold
    assert where_found(usb) == []
    assert raw(usb / "kiosk.db", "SELECT count(*) FROM guest_keys") == [(0,)]
    assert raw(usb / "kiosk.db", "SELECT count(*) FROM guest_keys_wrapped WHERE subject = ?", [CONF]) == [(1,)]
    manifest = json.loads((usb / "backup.json").read_text())
    assert manifest["guestKeys"]["wrapped"] >= 2 and manifest["guestKeys"]["leftOut"] == 0, manifest
    assert b.dir.joinpath("kiosk.db").exists() and where_found(a.dir, b.dir) == []

    b.agent.stop()  # B is offline at the moment of the erasure
    out = json.loads(cloud.cli("guest", "erase", "--hotel", "demo", "--confirmation", CONF, "--yes").stdout)
    assert out["reservations"] == 1, out
    wait_for(lambda: (reservation(a) or (None,))[0] == erased.NAME, timeout=60, what="the erasure at kiosk A")
    assert (reservation(b) or (None,))[0] == NAME  # B still has the key: offline, not yet
    b.start_agent()
    wait_for(lambda: kiosk_rows(b, "SELECT COUNT(*) FROM audit_log WHERE event = 'guest.erased'")[0][0] == 1,
             timeout=60, what="kiosk B to apply the erasure once back")
    for k in (a, b):
        assert raw(k.dir / "kiosk.db", "SELECT count(*) FROM guest_keys WHERE hotel_id = 'demo' AND subject = ?",
                   [CONF]) == [(0,)]
        assert reservation(k, "R-7002")[:2] == ("Bob Brown", "bob@example.org")
    assert where_found(cloud.dir, a.dir, b.dir, usb) == []

    # the old backup restored: once with this box's keys taken over (the guest has none any more),
    # once on "new hardware" without them; the guest is erased in both, Bob only in the first
    b.stop_all()
    aside = tmp_path / "kiosk-b.old"
    shutil.move(b.dir, aside)
    got = restored(b, usb, b.dir, "--keys-from", str(aside))
    assert got["guestKeys"]["takenOver"] >= 1, got
    db_file = b.dir / "kiosk.db"
    assert read(db_file, "SELECT guest_name, email FROM reservations WHERE confirmation = ?", [CONF]) == [
        (erased.NAME, None)]
    assert read(db_file, "SELECT guest_name FROM reservations WHERE confirmation = 'R-7002'") == [("Bob Brown",)]
    assert read(db_file, "SELECT title, description FROM tickets WHERE ticket_id = ?", [tid]) == [
        (erased.TEXT, erased.TEXT)]
    assert read(db_file, "SELECT DISTINCT display_name FROM sessions WHERE user_id = ?", [CONF]) == [(erased.NAME,)]
    assert raw(db_file, "SELECT count(*) FROM guest_keys_wrapped") == [(0,)]
    # on new hardware: the keys come back from the cloud (the backup key), the erased guest's not
    fresh = tmp_path / "new-machine" / "kiosk-b"
    got = restored(b, usb, fresh)
    assert got["guestKeys"]["takenOver"] == 0 and got["guestKeys"]["pullAgain"] is False, got
    assert read(fresh / "kiosk.db", "SELECT guest_name FROM reservations WHERE confirmation = 'R-7002'") == [
        (erased.NAME,)]  # nothing readable until the agent has the key
    agent = Proc(["kiosk-agent", "run"], tmp_path / "fresh-agent.log",
                 env={**b.agent_env, "KIOSK_DATA_DIR": str(fresh)}).start()
    site.append(agent)
    wait_for(lambda: read(fresh / "kiosk.db", "SELECT guest_name FROM reservations WHERE confirmation = 'R-7002'")
             == [("Bob Brown",)], timeout=60, what="the restored kiosk's keys from the cloud")
    assert read(fresh / "kiosk.db", "SELECT guest_name, email FROM reservations WHERE confirmation = ?", [CONF]) == [
        (erased.NAME, None)]
    assert read(fresh / "kiosk.db", "SELECT title FROM tickets WHERE ticket_id = ?", [tid]) == [(erased.TEXT,)]
    assert raw(fresh / "kiosk.db", "SELECT count(*) FROM guest_keys_wrapped") == [(0,)]
    assert raw(fresh / "kiosk.db", "SELECT count(*) FROM guest_keys WHERE subject = ?", [CONF]) == [(0,)]
    assert where_found(fresh, usb) == []

    # no process ever logged the guest (logs are not erased: they must never hold a name or words)
    logs = sorted(tmp_path.glob("*.log")) + sorted(tmp_path.rglob("logs/*"))
    assert len(logs) >= 4 and not [f for f in logs if f.is_file() and any(
        n in f.read_bytes().lower() for n in (b"zyxquorra", b"vendelbrook", EMAIL.encode()))]
    # the audit chain survives the erasure, and still names a row edited behind its back
    assert a.cli("kiosk", "audit", "verify", check=False).returncode == 0
    seq = raw(a.dir / "kiosk.db", "SELECT max(seq) FROM audit_log")[0][0]
    target = raw(a.dir / "kiosk.db", "SELECT id FROM audit_log WHERE seq = ?", [max(1, seq - 1)])[0][0]
    subprocess.run(["sqlite3", str(a.dir / "kiosk.db"),
                    f"UPDATE audit_log SET outcome = 'failure' WHERE id = {int(target)}"], check=True, timeout=60)
    bad = a.cli("kiosk", "audit", "verify", check=False)
    assert bad.returncode == 1 and f"first row that does not fit is {target}" in bad.stdout, bad.stdout + bad.stderr


# --- the hotels' backup keys: wrapping, unwrapping, and the cloud's endpoint -----------------------

def test_a_backup_copy_holds_the_keys_only_wrapped_and_a_restore_unwraps_all_but_the_erased(db, tmp_path):
    hotel_key = bytes(range(32))
    with store.transaction(db):
        guest_keys.keep_hotel_key(db, "demo", "hk1", hotel_key)
        tables.upsert(db, "demo", "reservations", stay("R-1"))
        tables.upsert(db, "demo", "reservations", stay("R-2", "Other Person", "other@example.org"))
    copy = tmp_path / "copy.db"
    db.conn.backup(sqlite3.connect(copy))
    assert guest_keys.for_backup(str(copy)) == {"wrapped": 2, "leftOut": 0}
    assert raw(copy, "SELECT count(*) FROM guest_keys") == [(0,)]
    assert hotel_key not in copy.read_bytes()
    assert all(bytes(k) not in copy.read_bytes() for (k,) in raw(tmp_path / "kiosk.db",
                                                                  "SELECT key FROM guest_keys"))
    restored = store.connect(copy)
    try:
        assert restored.execute("SELECT guest_name FROM reservations ORDER BY confirmation").fetchall() == [
            (erased.NAME,), (erased.NAME,)]  # nothing readable without the keys
        with store.transaction(restored):
            wrong = guest_keys.unwrap(restored, "demo", "hk0", bytes(32), set())
        assert wrong == {"unwrapped": 0, "erased": 0, "unreadable": 2}
    finally:
        restored.conn.close()
    copy = tmp_path / "copy-2.db"  # again, and now with the right key
    db.conn.backup(sqlite3.connect(copy))
    guest_keys.for_backup(str(copy))
    restored = store.connect(copy)
    try:
        with store.transaction(restored):
            done = guest_keys.unwrap(restored, "demo", "hk1", hotel_key, {"R-1"})
        assert done == {"unwrapped": 1, "erased": 1, "unreadable": 0}
        assert restored.execute("SELECT confirmation, guest_name FROM reservations ORDER BY confirmation").fetchall(
        ) == [("R-1", erased.NAME), ("R-2", "Other Person")]
        assert restored.execute("SELECT count(*) FROM guest_keys_wrapped").fetchone() == (0,)
    finally:
        restored.conn.close()


def test_a_kiosk_never_linked_leaves_its_keys_out_of_a_backup(db, tmp_path):
    with store.transaction(db):
        tables.upsert(db, "demo", "reservations", stay())
    copy = tmp_path / "copy.db"
    db.conn.backup(sqlite3.connect(copy))
    assert guest_keys.for_backup(str(copy)) == {"wrapped": 0, "leftOut": 1}
    assert raw(copy, "SELECT count(*) FROM guest_keys") == [(0,)] == raw(copy, "SELECT count(*) FROM guest_keys_wrapped")


@pytest.fixture(scope="module")
def backup_cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("backup-keys")).start()
    yield c
    c.stop()


def test_the_cloud_gives_a_hotels_kiosks_its_backup_key_and_erasures(backup_cloud):
    import requests

    demo, harbor = backup_cloud.device("k-demo", "demo"), backup_cloud.device("k-harbor", "harbor")

    def ask(credential, body):
        return requests.post(backup_cloud.url + "/sync/v1/backup-key", json=body, timeout=60,
                             headers={"Authorization": f"Bearer {credential}"} if credential else {})

    first, again = ask(demo, {"hotelId": "demo"}), ask(demo, {"hotelId": "demo"})
    assert first.status_code == 200 and first.json() == again.json(), first.text
    assert len(__import__("base64").b64decode(first.json()["key"])) == 32 and first.json()["erased"] == []
    assert ask(harbor, {"hotelId": "harbor"}).json()["key"] != first.json()["key"]  # a key per hotel
    assert ask(harbor, {"hotelId": "demo"}).status_code == 403  # another hotel's device
    assert ask(None, {"hotelId": "demo"}).status_code == 401
    for bad in ({}, {"hotelId": ""}, {"hotelId": 7}, ["demo"]):
        r = ask(demo, bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR", (bad, r.text)


def test_personal_fields_an_older_version_wrote_in_clear_are_sealed_by_the_agents_housekeeping(db, tmp_path):
    from agent import housekeeping

    # rows as a version before the keys wrote them: in clear
    plain = sqlite3.connect(tmp_path / "kiosk.db", isolation_level=None)
    plain.execute("INSERT INTO reservations (hotel_id, confirmation, guest_name, email, phone, arrival, departure,"
                  " status) VALUES ('demo', 'R-1', ?, 'quillon@example.org', '', '2026-12-05', '2026-12-08',"
                  " 'InHouse')", [SECRET])
    plain.execute("INSERT INTO reservations (hotel_id, confirmation, guest_name, arrival, departure, status)"
                  " VALUES ('demo', 'R-0', '', '2026-12-05', '2026-12-08', 'InHouse')")  # no name: nothing to seal
    plain.execute("INSERT INTO sessions (id, hotel_id, user_id, role, display_name, jti, scan_method, created_at,"
                  " expires_at, last_seen_at) VALUES ('s1', 'demo', 'R-1', 'guest', ?, 'j1', 'qr', 1, 2, 1)", [SECRET])
    plain.execute("INSERT INTO sessions (id, hotel_id, user_id, role, display_name, jti, scan_method, created_at,"
                  " expires_at, last_seen_at) VALUES ('s2', 'demo', 's-ana', 'staff', 'Ana Weber', 'j2', 'qr', 1, 2, 1)")
    plain.execute("INSERT INTO qr_tokens (jti, hotel_id, kid, subject, role, display_name, issued_at, expires_at)"
                  " VALUES ('j1', 'demo', 'k', 'R-1', 'guest', ?, 1, 2)", [SECRET])
    plain.execute("INSERT INTO tickets (hotel_id, ticket_id, type, title, description, priority, queue, status,"
                  " fingerprint, terms, created_at, created_by) VALUES ('demo', 'T-1', 'housekeeping',"
                  " 'Quillon wants towels', 'towels for Quillon', 'normal', 'housekeeping', 'received', 'f',"
                  " '[\"quillon\", \"towel\"]', 1, 'R-1')")
    plain.execute("INSERT INTO tasks (hotel_id, task_id, type, created_at, description) VALUES"
                  " ('demo', 'Q-1', 'guest_question', '2026-12-06', 'R-1: may Quillon bring a dog?')")
    plain.close()

    sealed = housekeeping.seal_existing(db, batch=2)  # batches smaller than the work: it goes on to the end
    assert sealed == 5, sealed  # the reservation, the guest's session and code, the request, the question
    assert housekeeping.seal_existing(db) == 0  # nothing left: the next run does nothing
    assert db.execute("SELECT guest_name, email FROM reservations WHERE confirmation = 'R-1'").fetchone() == (
        SECRET, "quillon@example.org")
    assert db.execute("SELECT display_name FROM sessions ORDER BY id").fetchall() == [(SECRET,), ("Ana Weber",)]
    assert db.execute("SELECT title, description FROM tickets").fetchone() == ("Quillon wants towels",
                                                                               "towels for Quillon")
    assert db.execute("SELECT description FROM tasks").fetchone() == ("R-1: may Quillon bring a dog?",)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    held = file_bytes(tmp_path).lower()
    assert b"quillon" not in held and b"marrowgate" not in held
    assert b"Ana Weber" in file_bytes(tmp_path)  # staff's names are not sealed
    # and the guest's erasure now reaches them through the key
    with store.transaction(db):
        guest_keys.destroy(db, "demo", "R-1")
    assert db.execute("SELECT title FROM tickets").fetchone() == (erased.TEXT,)
    assert db.execute("SELECT display_name FROM qr_tokens").fetchone() == (erased.NAME,)


def test_an_admins_erasure_at_a_kiosk_leaves_the_guest_in_no_file_of_the_cloud(site, tmp_path):
    cloud, (k,) = linked(site, tmp_path, "kiosk-a")
    r = sign_in(k).post(k.url + "/api/guest/requests", timeout=60, json={"text": f"{NAME} needs a crib"})
    assert r.status_code == 201, r.text
    tid = r.json()["ticket"]["ticketId"]
    wait_for(lambda: any(t["ticketId"] == tid for t in cloud.list("tickets", "demo")), timeout=60,
             what="the request at the cloud")
    assert where_found(cloud.dir) == []  # the cloud keeps the guest sealed under a key of its own
    assert where_found(tmp_path / "pms-export")  # where they are in clear, the search finds them

    admin = k.session("admin")
    r = admin.post(k.url + "/api/admin/guests/erase", timeout=60,
                   json={"hotelId": "demo", "confirmation": CONF, "confirm": CONF})
    assert r.status_code == 200, r.text
    wait_for(lambda: raw(cloud.dir / "cloud.db", "SELECT erased_by FROM guest_erasures"), timeout=60,
             what="the erasure at the cloud")
    assert raw(cloud.dir / "cloud.db", "SELECT erased_by FROM guest_erasures")[0][0].startswith("admin ")
    # applied by push, with secure_delete on and the WAL truncated after: no old bytes anywhere
    wait_for(lambda: where_found(cloud.dir, k.dir) == [], timeout=60, what="no file holding the guest")
