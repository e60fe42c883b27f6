"""`kiosk-cloud pms link|status|unlink`, and the fake OPERA the demo runs as its hotel's PMS."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from harness import free_port, wait_http

from sync.cloud.cli import main

ROOT = Path(__file__).resolve().parents[1]
SECRET = "very-secret-password-1"
OPERA = {"app_key": "k", "client_id": "c", "client_secret": "cs", "username": "u", "password": SECRET}


def cli(data_dir, *args):
    return CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)])


def test_link_keeps_the_secrets_in_a_private_file_and_status_says_what_waits(tmp_path):
    creds = tmp_path / "opera.json"
    creds.write_text(json.dumps(OPERA | {"extra": "ignored"}))
    data = tmp_path / "cloud"
    r = cli(data, "pms", "link", "--hotel", "demo", "--kind", "opera", "--url", "https://ohip.example.com/",
            "--pms-hotel", "HOTEL1", "--credentials", str(creds))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"hotel": "demo", "kind": "opera", "url": "https://ohip.example.com",
                                    "pmsHotel": "HOTEL1", "chargeCode": "KIOSK", "maintenanceCode": "KIOSK",
                                    "linked": True}
    stored = data / "pms" / "demo.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text()) == OPERA  # only the fields OPERA needs
    assert SECRET not in (data / "cloud.db").read_bytes().decode("latin-1")
    r = cli(data, "pms", "status", "--hotel", "demo", "--json")
    status = json.loads(r.output)
    assert status["linked"] and status["kind"] == "opera" and status["waiting"] == 0 and status["lastReadAt"] is None
    assert SECRET not in r.output
    r = cli(data, "pms", "status", "--hotel", "demo")
    assert "linked to OPERA Cloud at https://ohip.example.com (hotel HOTEL1)" in r.output and "last read: never" in r.output
    r = cli(data, "pms", "unlink", "--hotel", "demo")
    assert r.exit_code == 0 and not stored.exists()
    assert json.loads(cli(data, "pms", "status", "--hotel", "demo", "--json").output)["linked"] is False
    r = cli(data, "pms", "unlink", "--hotel", "demo")
    assert r.exit_code != 0 and "NOT_FOUND" in r.output


@pytest.mark.parametrize("content, words", [
    ({"app_key": "k"}, "lacks client_id, client_secret, username, password"),
    ("not json", "is not JSON"),
    (None, "no credentials file"),
])
def test_a_bad_credentials_file_is_refused_naming_what_is_missing_never_a_value(tmp_path, content, words):
    creds = tmp_path / "c.json"
    if content is not None:
        creds.write_text(content if isinstance(content, str) else json.dumps(content))
    r = cli(tmp_path / "cloud", "pms", "link", "--hotel", "demo", "--kind", "opera", "--url", "https://x.example",
            "--pms-hotel", "H", "--credentials", str(creds))
    assert r.exit_code != 0 and "VALIDATION_ERROR" in r.output and words in r.output
    assert not (tmp_path / "cloud" / "pms" / "demo.json").exists()


def test_a_bad_url_or_hotel_is_refused(tmp_path):
    creds = tmp_path / "c.json"
    creds.write_text(json.dumps({"api_key": "abc"}))
    r = cli(tmp_path / "cloud", "pms", "link", "--hotel", "demo", "--kind", "cloudbeds", "--url", "ftp://x",
            "--pms-hotel", "4242", "--credentials", str(creds))
    assert r.exit_code != 0 and "VALIDATION_ERROR" in r.output and "http" in r.output
    r = cli(tmp_path / "cloud", "pms", "link", "--hotel", "../etc", "--kind", "cloudbeds", "--url", "https://x",
            "--pms-hotel", "4242", "--credentials", str(creds))
    assert r.exit_code != 0 and "VALIDATION_ERROR" in r.output


def test_the_demo_pms_serves_the_kiosks_stays_and_writes_its_credentials_private(tmp_path):
    kiosk_db = tmp_path / "kiosk.db"
    con = sqlite3.connect(kiosk_db)
    con.execute("CREATE TABLE reservations (hotel_id, confirmation, guest_name, room_number, arrival, departure,"
                " status)")
    import datetime as dt
    today = dt.date.today()
    rows = [("demo", "D1", "Rosa Benz", "204", today.isoformat(), (today + dt.timedelta(days=2)).isoformat(),
             "InHouse"),
            ("demo", "HB-1", "History", "101", "2015-07-01", "2015-07-03", "CheckedOut"),
            ("demo", "D2", "Old Stay", "305", "2020-01-01", "2020-01-03", "CheckedOut")]
    con.executemany("INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    port, creds = free_port(), tmp_path / "creds.json"
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakepms.opera_demo", "--port", str(port), "--kiosk-db",
                             str(kiosk_db), "--credentials", str(creds)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/oauth/v1/tokens")
        assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
        from sync.cloud.connectors.opera import OperaConnector
        got = list(OperaConnector(f"http://127.0.0.1:{port}", "DEMO", json.loads(creds.read_text()),
                                  session=requests.Session()).read_reservations())
        assert [(r["confirmation"], r["guest_name"], r["room_number"], r["status"]) for r in got] == [
            ("D1", "Rosa Benz", "204", "InHouse")]  # today's stays, not the history
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "hotel DEMO with 1 stays" in out


def test_a_stay_the_pms_cancelled_opens_no_new_session_and_a_pulled_row_keeps_other_fields(client, issue, instance):
    from kiosk import store
    from kiosk.property import tables

    db = instance.db()
    with store.transaction(db):  # the stay as a PMS export gave it, with its rate
        tables.upsert(db, "demo", "reservations", {"confirmation": "R-9", "guest_name": "Ada Lovelace",
                                                   "room_number": "204", "arrival": "2026-01-01",
                                                   "departure": "2026-01-05", "status": "InHouse",
                                                   "nightly_rate": 180.0, "currency": "EUR"})
    tok = issue("guest", user="R-9", reusable=True)
    assert client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"}).status_code == 200
    with store.transaction(db):  # the PMS cancelled it, read through a connector and pulled
        tables.upsert(db, "demo", "reservations", {"confirmation": "R-9", "status": "Canceled"})
    row = db.execute("SELECT status, nightly_rate, guest_name FROM reservations WHERE confirmation = 'R-9'").fetchone()
    assert tuple(row) == ("Canceled", 180.0, "Ada Lovelace")  # the fields the PMS did not send stay
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "TOKEN_REVOKED", r.get_json()
    assert r.get_json()["error"]["details"]["reason"] == "reservation"
