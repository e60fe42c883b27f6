"""The cloud's guest keys (sync/cloud/guest_vault.py): what is sealed, that reads are plain,
that a key destroyed by another process is forgotten by every connection, and that a guest
erased at the cloud gets no new key."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from kiosk import erased
from sync.cloud import devices, erasure, guest_vault, refdata, storage
from sync.cloud.apply import apply_push

NOW = time.time()


@pytest.fixture
def cloud(tmp_path):
    st = storage.open_storage(tmp_path / "cloud")
    st.prepare()
    db = st.connect()
    db.tmp = tmp_path
    yield db
    db.conn.close()


def stays(*rows: tuple[str, str]) -> dict:
    return {"reservations": [{"confirmation": c, "guest_name": n, "room_number": "101", "arrival": "2026-12-06",
                              "departure": "2026-12-08", "status": "InHouse", "email": f"{c}@example.org",
                              "special_requests": "a quiet room"} for c, n in rows]}


def raw(db, sql: str, params=()) -> list[tuple]:
    """Rows as they are on disk: a plain SQLite connection, no opening."""
    conn = sqlite3.connect(db.tmp / "cloud" / "cloud.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_a_reservation_is_sealed_on_disk_plain_to_read_and_unchanged_on_reimport(cloud):
    out = refdata.import_tables(cloud, "demo", stays(("R-1", "Zoë Müller"), ("R-2", "Bob")), NOW)
    assert out["reservations"]["added"] == 2
    [(data,)] = raw(cloud, "SELECT data FROM ref_data WHERE entity_id = 'R-1'")
    stored = json.loads(data)
    for field in ("guest_name", "email", "special_requests"):
        assert stored[field].startswith("pii1."), field
    assert (stored["room_number"], stored["arrival"], stored["status"]) == ("101", "2026-12-06", "InHouse")
    [(change,)] = raw(cloud, "SELECT data FROM changes WHERE entity_id = 'R-1'")
    assert "Zo\\u00eb" not in change and "Zoë" not in change and json.loads(change)["guest_name"].startswith("pii1.")
    # through the storage: plain text, non-ASCII kept, in the JSON text as json.dumps writes it
    [(text,)] = cloud.execute("SELECT data FROM ref_data WHERE entity_id = 'R-1'").fetchall()
    assert json.loads(text)["guest_name"] == "Zoë Müller" and "Zo\\u00eb" in text
    # the same export again: nothing changed, nothing logged
    again = refdata.import_tables(cloud, "demo", stays(("R-1", "Zoë Müller"), ("R-2", "Bob")), NOW + 1)
    assert again["reservations"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": 2}
    # two guests, two keys
    vault = sqlite3.connect(cloud.tmp / "cloud" / guest_vault.FILENAME)
    assert sorted(r[0] for r in vault.execute("SELECT subject FROM guest_keys")) == ["R-1", "R-2"]
    vault.close()


def test_a_key_destroyed_by_another_process_is_forgotten_by_every_connection(cloud, tmp_path):
    refdata.import_tables(cloud, "demo", stays(("R-1", "Ada"), ("R-2", "Bob")), NOW)
    read = "SELECT data FROM ref_data WHERE entity_type = 'reservation' ORDER BY entity_id"
    assert [json.loads(d)["guest_name"] for (d,) in cloud.execute(read).fetchall()] == ["Ada", "Bob"]
    other = storage.open_storage(tmp_path / "cloud")  # another process's storage: its own caches
    db2 = other.connect()
    try:
        guest_vault.destroy(db2, "demo", "R-1")
    finally:
        db2.conn.close()
    assert [json.loads(d)["guest_name"] for (d,) in cloud.execute(read).fetchall()] == [erased.NAME, "Bob"]
    assert [json.loads(d).get("email") for (d,) in cloud.execute(read).fetchall()] == [None, "R-2@example.org"]
    # the key's bytes are gone from the vault's files, and only its id is logged
    vault = (tmp_path / "cloud" / guest_vault.FILENAME).read_bytes()
    conn = sqlite3.connect(tmp_path / "cloud" / guest_vault.FILENAME)
    assert conn.execute("SELECT subject FROM guest_keys").fetchall() == [("R-2",)]
    assert conn.execute("SELECT COUNT(*) FROM destroyed_keys").fetchone()[0] == 1
    conn.close()
    assert b"R-1" not in vault


def test_a_guest_erased_at_the_cloud_gets_no_new_key(cloud):
    refdata.import_tables(cloud, "demo", stays(("R-1", "Ada")), NOW)
    with storage.transaction(cloud):
        assert erasure.apply(cloud, "demo", "R-1", NOW, by="test", require=True)["keys"] == 1
    device = devices.authenticate(cloud, devices.add_device(cloud, "kiosk-1", ["demo"], NOW))
    late = {"key": "late-1", "hotelId": "demo", "kind": "message.send", "entityType": "message",
            "entityId": "R-1:late", "hlc": f"{int(NOW * 1000):015d}-00000-kiosk-1", "createdAt": NOW,
            "payload": {"confirmation": "R-1", "text": "Ada, your taxi is here"}, "subject": "R-1"}
    assert apply_push(cloud, device, [late], NOW)[0]["status"] == "applied"
    [(payload,)] = raw(cloud, "SELECT payload FROM events WHERE key = 'late-1'")
    assert json.loads(payload) == {"confirmation": "R-1", "text": erased.TEXT}
    assert not guest_vault.has_key(cloud, "demo", "R-1")


def test_an_entry_naming_its_guest_is_sealed_one_naming_none_is_stored_as_it_came(cloud):
    device = devices.authenticate(cloud, devices.add_device(cloud, "kiosk-1", ["demo"], NOW))

    def message(key: str, text: str, subject: str | None) -> dict:
        return {"key": key, "hotelId": "demo", "kind": "message.send", "entityType": "message",
                "entityId": f"R-9:{key}", "hlc": f"{int(NOW * 1000):015d}-00000-kiosk-1", "createdAt": NOW,
                "payload": {"confirmation": "R-9", "text": text}, **({"subject": subject} if subject else {})}

    results = apply_push(cloud, device, [message("m1", "Hello Quentin", "R-9"), message("m2", "Hello all", None)], NOW)
    assert [r["status"] for r in results] == ["applied", "applied"]
    stored = dict(raw(cloud, "SELECT key, payload FROM events"))
    assert "Quentin" not in stored["m1"] and json.loads(stored["m1"])["text"].startswith("pii1.t.")
    assert json.loads(stored["m2"])["text"] == "Hello all"
    assert dict(cloud.execute("SELECT key, payload FROM events").fetchall())["m1"] == stored["m1"].replace(
        json.loads(stored["m1"])["text"], "Hello Quentin")


def test_rows_an_earlier_version_stored_in_clear_are_sealed_by_the_purge(cloud, tmp_path):
    from click.testing import CliRunner

    from sync.cloud.cli import main as cloud_cli

    vault, cloud.vault = cloud.vault, None  # an earlier version: no keys, everything in clear
    refdata.import_tables(cloud, "demo", stays(("R-1", "Quintessa Vale"), ("R-2", "Bob")), NOW)
    device = devices.authenticate(cloud, devices.add_device(cloud, "kiosk-1", ["demo"], NOW))
    guest_ticket = {"key": "t-1", "hotelId": "demo", "kind": "ticket.created", "entityType": "ticket",
                    "entityId": "T-1", "hlc": f"{int(NOW * 1000):015d}-00000-kiosk-1", "createdAt": NOW,
                    "payload": {"ticketId": "T-1", "type": "housekeeping", "title": "Quintessa needs towels",
                                "description": "towels for Quintessa", "roomNumber": "101", "priority": "normal",
                                "queue": "housekeeping", "status": "received", "createdAt": "2026-12-06T10:00:00Z",
                                "createdBy": "R-1"}}
    staff_ticket = guest_ticket | {"key": "t-2", "entityId": "T-2", "payload": guest_ticket["payload"] | {
        "ticketId": "T-2", "title": "Lamp broken in 102", "description": "", "createdBy": "staff-7"}}
    assert {r["status"] for r in apply_push(cloud, device, [guest_ticket, staff_ticket], NOW)} == {"applied"}
    cloud.vault = vault
    on_disk = "SELECT data FROM ref_data UNION ALL SELECT data FROM changes UNION ALL SELECT title FROM tickets"
    assert any("Quintessa" in (d or "") for (d,) in raw(cloud, on_disk))

    r = CliRunner().invoke(cloud_cli, ["--data-dir", str(tmp_path / "cloud"), "purge"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sealed"] == {"reservations": 2, "changes": 3, "requests": 1}
    assert not any("Quintessa" in (d or "") for (d,) in raw(cloud, on_disk))
    assert raw(cloud, "SELECT title FROM tickets WHERE ticket_id = 'T-2'") == [("Lamp broken in 102",)]  # staff's
    # read through the storage as before, and a second pass has nothing left to do
    assert cloud.execute("SELECT title FROM tickets WHERE ticket_id = 'T-1'").fetchone()[0] == "Quintessa needs towels"
    r = CliRunner().invoke(cloud_cli, ["--data-dir", str(tmp_path / "cloud"), "purge"])
    assert json.loads(r.stdout)["sealed"] == {"reservations": 0, "changes": 0, "requests": 0}


def test_a_hotels_backup_key_lives_in_the_key_file_and_an_older_one_moves_there(cloud):
    import base64

    from sync.cloud import backup_keys

    kid, key = backup_keys.key(cloud, "demo", NOW)
    assert backup_keys.key(cloud, "demo", NOW + 1) == (kid, key) and len(key) == 32
    assert raw(cloud, "SELECT COUNT(*) FROM hotel_backup_keys") == [(0,)]  # never in the database
    # an earlier version kept harbor's in the database: the same key is moved to the key file
    old = base64.b64encode(bytes(range(32))).decode()
    with storage.transaction(cloud):
        cloud.execute("INSERT INTO hotel_backup_keys (hotel_id, kid, key, created_at) VALUES (?, ?, ?, ?)",
                      ["harbor", "0123456789abcdef", old, NOW])
    assert backup_keys.key(cloud, "harbor", NOW) == ("0123456789abcdef", bytes(range(32)))
    assert raw(cloud, "SELECT COUNT(*) FROM hotel_backup_keys") == [(0,)]
    vault = sqlite3.connect(cloud.tmp / "cloud" / guest_vault.FILENAME)
    assert sorted(r[0] for r in vault.execute("SELECT hotel_id FROM hotel_backup_keys")) == ["demo", "harbor"]
    vault.close()
    for name in ("cloud.db", "cloud.db-wal"):  # zeroed where it was, the write-ahead log emptied
        path = cloud.tmp / "cloud" / name
        assert not path.exists() or old.encode() not in path.read_bytes(), name
