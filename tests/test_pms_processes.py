"""The PMS outbox with real processes: a `kiosk-cloud serve` (its PmsRunner thread) delivering
into a fake OPERA Cloud that runs in the test process (and validates every request against
the published specs), with entries pushed over HTTP like a kiosk's agent pushes them.

* one offer taken -> exactly one charge; `pms status` says so; the secrets stay in their
  0600 file (never in the status, the logs or the database);
* the cloud SIGKILLed while OPERA holds the charge's answer: restarted, it looks the charge
  up (GET folios) and does not post it again;
* two gunicorn workers on PostgreSQL, both running the connector: the lease keeps it to
  one, and every offer and guest request arrives exactly once.

Every wait is for a state (a generous deadline, tests/harness.py), never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import stat
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
from harness import MIN_DEADLINE_SECONDS, Cloud, wait_for

from kiosk.clock import SystemClock
from sync.cloud import pms_outbox
from tests.fakepms.opera import SPEC_DIR, FakeOpera

pytestmark = pytest.mark.skipif(not (SPEC_DIR / "csh.json").exists(), reason="OPERA Cloud specs not available")

HOTEL = "demo"
PMS_HOTEL = "HOTEL1"
CHARGE_CODE = "2010"


def fresh_credentials() -> dict:
    """OPERA's five secrets, each a value found nowhere else (so a leak is unmistakable)."""
    return {"app_key": str(uuid.uuid4()), "client_id": f"cid-{secrets.token_hex(8)}",
            "client_secret": f"csec-{secrets.token_hex(12)}", "username": f"usr-{secrets.token_hex(6)}",
            "password": f"pwd-{secrets.token_hex(12)}"}


def start_opera(cls, creds: dict, **kw) -> FakeOpera:
    fake = cls(SystemClock(), app_key=creds["app_key"], client_id=creds["client_id"],
               client_secret=creds["client_secret"], username=creds["username"], password=creds["password"],
               hotel_id=PMS_HOTEL, **kw)
    fake.base_url = fake.start()
    return fake


def check_clean(fake: FakeOpera) -> None:
    assert fake.violations == [], fake.violations
    assert fake.response_violations == [], fake.response_violations


def link(cloud: Cloud, fake: FakeOpera, creds: dict, tmp_path: Path) -> str:
    """`kiosk-cloud pms link` with the secrets in a file (as an operator would); its output."""
    path = tmp_path / "opera-credentials.json"
    path.write_text(json.dumps(creds))
    out = cloud.cli("pms", "link", "--hotel", HOTEL, "--kind", "opera", "--url", fake.base_url,
                    "--pms-hotel", PMS_HOTEL, "--credentials", str(path), "--charge-code", CHARGE_CODE).stdout
    path.unlink()  # the cloud keeps its own copy
    assert json.loads(out)["linked"] is True
    return out


def status(cloud: Cloud) -> dict:
    return json.loads(cloud.cli("pms", "status", "--hotel", HOTEL, "--json").stdout)


def settled(cloud: Cloud, want: int):
    """The status once ``want`` actions are delivered and none waits (else None)."""
    s = status(cloud)
    return s if s["delivered"] == want and s["waiting"] == 0 else None


# ---- entries, pushed over HTTP as a kiosk's agent pushes them ------------------------------

_seq = iter(range(1, 10**6))


def entry(kind: str, entity_type: str, entity_id: str, payload: dict, device: str = "k1") -> dict:
    n = next(_seq)
    now = time.time()
    return {"key": f"{device}-{uuid.uuid4().hex}", "hotelId": HOTEL, "kind": kind, "entityType": entity_type,
            "entityId": entity_id, "hlc": f"{int(now * 1000):015d}-{n % 100000:05d}-{device}", "createdAt": now,
            "payload": payload}


def offer_taken(conf: str, offer: str = "BREAKFAST", price: float = 22.0, device: str = "k1") -> dict:
    return entry("pms.update", "pms", f"reservation:{conf}", {
        "entity": "reservation", "id": conf, "changes": {"addOffer": {
            "offerId": offer, "name": f"Offer {offer}", "type": "addon", "price": price, "currency": "EUR"}},
        "reason": "the guest took the offer at the kiosk", "by": conf, "requiresApproval": False}, device)


def guest_request(ticket: str, room: str, title: str, device: str = "k1") -> dict:
    return entry("ticket.created", "ticket", ticket, {
        "ticketId": ticket, "type": "request", "title": title, "description": "", "roomNumber": room,
        "priority": "normal", "status": "open"}, device)


def push(cloud: Cloud, credential: str, entries: list[dict], device: str = "k1") -> None:
    batch = hashlib.sha256("|".join(e["key"] for e in entries).encode()).hexdigest()[:32]
    r = requests.post(cloud.url + "/sync/v1/push", json={"deviceId": device, "entries": entries},
                      headers={"Authorization": f"Bearer {credential}", "Idempotency-Key": batch}, timeout=60)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["applied"] * len(entries), r.text


def charge_ref(e: dict) -> str:
    return pms_outbox.reference(HOTEL, f"charge:{e['key']}")


def all_charges(fake: FakeOpera) -> list[dict]:
    with fake._lock:
        return [c for rows in fake.charges.values() for c in rows]


def count(fake: FakeOpera, method: str, suffix: str, since: int = 0) -> int:
    with fake._lock:
        return sum(1 for m, p in fake.requests[since:] if m == method and p.endswith(suffix))


# ---- (a) one offer taken, one charge; the secrets stay secret ------------------------------

def test_an_offer_pushed_to_a_serving_cloud_is_charged_once_and_the_secrets_stay_in_their_file(tmp_path):
    creds = fresh_credentials()
    opera = start_opera(FakeOpera, creds)
    opera.add_reservation(pms_id="50001", confirmation="C1001", given="Ada", surname="Lovelace", room="204",
                          arrival="2026-12-05", departure="2026-12-09", status="InHouse")
    cloud = Cloud(tmp_path)
    if cloud.database:
        pytest.skip("this test reads the SQLite database's bytes; the PostgreSQL runs are below")
    env = {"KIOSK_CLOUD_PMS_POLL": "1s"}  # a read every pass: passes after the delivery are seen
    cloud.start(env)
    try:
        linked = link(cloud, opera, creds, tmp_path)
        credential = cloud.device("k1", HOTEL)
        e = offer_taken("C1001")
        push(cloud, credential, [e])
        s = wait_for(lambda: settled(cloud, 1), interval=0.3, what="the charge delivered")
        assert (s["linked"], s["kind"], s["waiting"], s["delivered"], s["dead"]) == (True, "opera", 0, 1, 0)
        assert s["lastReadCount"] == 1 and s["lastError"] is None
        [charge] = all_charges(opera)
        assert (charge["transactionCode"], charge["price"], charge["reference"]) == (
            CHARGE_CODE, {"amount": 22.0, "currencyCode": "EUR"}, charge_ref(e))
        # later passes (each reads the reservations again) send nothing more
        reads = count(opera, "GET", "/reservations")
        wait_for(lambda: count(opera, "GET", "/reservations") >= reads + 2, what="two more passes")
        assert len(all_charges(opera)) == 1 and count(opera, "POST", "/charges") == 1
        assert count(opera, "GET", "/folios") == 0  # the answer came: nothing to look up
        plain = cloud.cli("pms", "status", "--hotel", HOTEL).stdout
        assert "1 delivered" in plain and "0 waiting" in plain
    finally:
        cloud.stop()
        opera.stop()
    check_clean(opera)

    stored = cloud.dir / "pms" / f"{HOTEL}.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text()) == creds
    # nowhere else: not in what the commands print, the cloud's logs or its database
    texts = {"pms link": linked, "pms status --json": json.dumps(s), "pms status": plain,
             "cloud.log": (tmp_path / "cloud.log").read_text(errors="replace")}
    for f in sorted((cloud.dir / "logs").rglob("*")):
        if f.is_file():
            texts[str(f.relative_to(cloud.dir))] = f.read_text(errors="replace")
    for f in sorted(cloud.dir.glob("cloud.db*")):
        texts[f.name] = f.read_bytes().decode("latin-1")
    assert "serving" in texts["cloud.log"] and "logs/kiosk.jsonl" in texts  # the logs were there to read
    for name, secret in creds.items():
        leaks = [where for where, text in texts.items() if secret in text]
        assert leaks == [], f"the {name} is in {leaks}"


# ---- (b) SIGKILL while OPERA holds the charge's answer -------------------------------------

class SlowOpera(FakeOpera):
    """An OPERA that posts a charge and then holds its answer until ``release`` is set."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.applied = threading.Event()
        self.release = threading.Event()

    def _op_postBillingCharges(self, op, args):
        resp = super()._op_postBillingCharges(op, args)
        self.applied.set()
        self.release.wait(MIN_DEADLINE_SECONDS)  # the handler holds the fake's lock meanwhile
        return resp


def test_a_cloud_killed_while_the_charge_was_in_flight_looks_it_up_after_restart(tmp_path):
    creds = fresh_credentials()
    opera = start_opera(SlowOpera, creds)
    opera.add_reservation(pms_id="50001", confirmation="C1001", given="Ada", surname="Lovelace", room="204",
                          arrival="2026-12-05", departure="2026-12-09", status="InHouse")
    cloud = Cloud(tmp_path)
    if cloud.database:
        pytest.skip("the restart below edits the cloud's SQLite database")
    try:
        cloud.start()
        link(cloud, opera, creds, tmp_path)
        e = offer_taken("C1001")
        push(cloud, cloud.device("k1", HOTEL), [e])
        assert opera.applied.wait(MIN_DEADLINE_SECONDS), "the charge never reached OPERA"
        cloud.proc.kill()  # SIGKILL: the charge is posted in OPERA, its answer never heard
    finally:
        opera.release.set()  # lets the fake's handler answer a socket nobody reads any more

    db = sqlite3.connect(cloud.dir / "cloud.db")
    try:
        row = db.execute("SELECT status, attempts, maybe_sent, next_at FROM pms_actions").fetchall()
        [(state, attempts, maybe_sent, next_at)] = row
        assert (state, attempts, maybe_sent) == ("pending", 1, 1)  # claimed and committed before the send
        assert next_at > time.time() + 60  # hidden from every runner for HOLD (120 s)
        # Stands for the two minutes passing: the claim's HOLD and the dead runner's lease
        # (both 120 s) run out.  They cannot be shortened in another process, so the test
        # moves the database to where it would be two minutes later.
        with db:
            db.execute("UPDATE pms_actions SET next_at = 0")
            db.execute("UPDATE pms_links SET lease_until = 0")
    finally:
        db.close()

    mark = len(opera.requests)
    try:
        cloud.start()
        wait_for(lambda: settled(cloud, 1), interval=0.3, what="the charge delivered after the restart")
        assert len(all_charges(opera)) == 1, all_charges(opera)
        assert all_charges(opera)[0]["reference"] == charge_ref(e)
        assert count(opera, "GET", "/folios", since=mark) >= 1  # looked up first ...
        assert count(opera, "POST", "/charges", since=mark) == 0  # ... found, and not posted again
        assert count(opera, "POST", "/charges") == 1
    finally:
        cloud.stop()
        opera.stop()
    check_clean(opera)


# ---- (c) two workers on PostgreSQL ---------------------------------------------------------

def test_two_workers_on_postgresql_deliver_every_action_exactly_once(tmp_path, pg):
    creds = fresh_credentials()
    opera = start_opera(FakeOpera, creds)
    reservations = [(f"C2{i:03d}", f"6{i:04d}", str(300 + i)) for i in range(10)]  # (confirmation, id, room)
    for conf, pms_id, room in reservations:
        opera.add_reservation(pms_id=pms_id, confirmation=conf, given="Guest", surname=conf, room=room,
                              arrival="2026-12-05", departure="2026-12-09", status="InHouse")
    cloud = Cloud(tmp_path, database=pg.new_database(f"pms{time.monotonic_ns()}"), workers=2)
    try:
        cloud.start({"KIOSK_CLOUD_PMS_POLL": "5s"})
        link(cloud, opera, creds, tmp_path)
        creds_k = {k: cloud.device(k, HOTEL) for k in ("k1", "k2")}
        offers = [offer_taken(conf, offer=offer, price=10.0 + n, device=("k1", "k2")[n % 2])
                  for n, (conf, offer) in enumerate((c[0], o) for c in reservations for o in ("BREAKFAST", "SPA"))]
        requests_ = [guest_request(f"T-{n}", room, f"Request {n}: two more towels", device=("k2", "k1")[n % 2])
                     for n, (_, _, room) in enumerate(reservations)]
        # two kiosks push at once, in batches, through both workers
        failures: list[BaseException] = []

        def pusher(device: str) -> None:
            mine = [e for e in offers + requests_ if e["key"].startswith(device + "-")]
            try:
                for i in range(0, len(mine), 4):
                    push(cloud, creds_k[device], mine[i:i + 4], device)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=pusher, args=(k,)) for k in creds_k]
        for t in threads:
            t.start()
        for t in threads:
            t.join(MIN_DEADLINE_SECONDS)
        assert failures == []
        s = wait_for(lambda: settled(cloud, 30), interval=0.5, what="30 actions delivered")
        assert s["dead"] == 0

        by_ref = Counter(c["reference"] for c in all_charges(opera))
        assert by_ref == Counter({charge_ref(e): 1 for e in offers})
        for conf, pms_id, _ in reservations:
            assert len(opera.charges[pms_id]) == 2, (conf, opera.charges[pms_id])
        with opera._lock:
            srs = list(opera.service_requests.values())
        assert len(srs) == 10
        tags = Counter(sr["comment"].rsplit("[ref:", 1)[1].rstrip("]") for sr in srs)
        assert tags == Counter({pms_outbox.reference(HOTEL, f"service_request:{e['key']}"): 1 for e in requests_})
        assert sorted(sr["room"] for sr in srs) == sorted(room for _, _, room in reservations)
        assert all(sr["reservationIdList"][0]["id"] == f"6{int(sr['room']) - 300:04d}" for sr in srs)
        assert count(opera, "POST", "/charges") == 20 and count(opera, "POST", "/serviceRequests") == 10
        # one runner held the hotel (the lease): OPERA gave out one token, where a second
        # runner that sent anything would have fetched its own
        assert opera.tokens_issued == 1
    finally:
        cloud.stop()
        opera.stop()
    check_clean(opera)
