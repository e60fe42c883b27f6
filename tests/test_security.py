"""Regression tests for what an attacker's probe found: each finding through the public
interface, asserting the exact answer and that nothing else changed.

Threat model and defences: docs/security.md.
"""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import wave
import zlib

import numpy as np
import pytest
import requests
from harness import Kiosk

from kiosk.models import registry


def wav(rate: int, frames: int, channels: int = 1, noise: bool = False) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        x = np.random.default_rng(0).normal(0, 3000, frames * channels) if noise else np.zeros(frames * channels)
        w.writeframes(x.astype("<i2").tobytes())
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height (a decompression bomb needs no more to be refused)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- a hostile payload costs at most its budget ---------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    k = Kiosk(tmp_path_factory.mktemp("sec"), "lobby")
    k.serve()
    yield k
    k.stop_all()


def trigger(s: requests.Session, model: str, payload: dict, timeout: float = 120) -> requests.Response:
    sid = s.get(s.base_url + "/api/session", timeout=60).json()["sessionId"]
    return s.post(s.base_url + "/api/ai/trigger", json={"sessionId": sid, "modelId": model, "requestPayload": payload},
                  timeout=timeout)


def session(k: Kiosk, role: str) -> requests.Session:
    s = k.session(role)
    s.base_url = k.url
    return s


@pytest.mark.parametrize("frames", [700, 2000])
def test_a_wav_at_1_hz_is_refused_before_any_work(served, frames):
    s = session(served, "guest")
    r = trigger(s, "voice-ai", {"audio": b64(wav(1, frames))})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and err["details"] == {"field": "audio", "sampleRate": 1, "min": 8000,
                                                                    "max": 48000}


def test_audio_longer_than_30_s_and_images_past_25_megapixels_are_refused(served):
    s = session(served, "staff")
    r = trigger(s, "voice-ai", {"audio": b64(wav(8000, 8000 * 31))})
    assert r.status_code == 400 and r.json()["error"]["details"]["max"] == 30.0
    r = trigger(s, "room-status", {"roomNumber": "101", "image": b64(png_header(18000, 18000))})
    assert r.status_code == 400
    assert r.json()["error"]["details"] == {"field": "image", "width": 18000, "height": 18000, "maxPixels": 25_000_000}


def test_the_kiosk_answers_health_checks_while_models_chew_on_the_longest_allowed_audio(served):
    """Four 30-second noise clips (the most voice-ai accepts) keep both model workers busy; the
    web server answers /healthz throughout about as fast as when idle, and the clips get their
    answers.  "As fast" is a ratio to the idle answers measured in the same run (at least 1 s
    allowed): a machine busy with other work slows both alike, a server blocked by the models
    would take the clips' seconds."""
    # four guests, one clip each (one guest's second clip would be 429 BUSY: test_capacity.py)
    guests = [session(served, "guest") for _ in range(4)]
    clip = b64(wav(8000, 8000 * 30, noise=True))
    answers: list[int] = []

    def probe() -> float:
        t0 = time.monotonic()
        assert requests.get(served.url + "/healthz", timeout=60).status_code == 200
        return time.monotonic() - t0

    idle = max(probe() for _ in range(10))

    def hostile(s):
        answers.append(trigger(s, "voice-ai", {"audio": clip}).status_code)

    threads = [threading.Thread(target=hostile, args=(g,)) for g in guests]
    for t in threads:
        t.start()
    worst = 0.0
    probes = 0
    while any(t.is_alive() for t in threads):
        worst = max(worst, probe())
        probes += 1
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 200, 200, 200]
    assert probes >= 3 and worst < max(1.0, 20 * idle), (probes, worst, idle)


# --- a guest sees only their own stay --------------------------------------------------------

@pytest.fixture
def stay(instance):
    db = instance.db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": n, "room_type": "KING", "floor": 4,
                             "status": st, "occupied": occ} for n, st, occ in
                            (("401", "Inspected", 0), ("402", "Dirty", 1))])
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "C-1", "guest_name": "Ada Lovelace", "room_number": "401",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse",
         "language": "en"},
        {"hotel_id": "demo", "confirmation": "C-2", "guest_name": "Grace Hopper", "room_number": "402",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse",
         "language": "en"}])
    return db


def run_model(client, headers, model, payload):
    sid = client.get("/api/session", headers=headers).get_json()["sessionId"]
    return client.post("/api/ai/trigger", headers=headers,
                       json={"sessionId": sid, "modelId": model, "requestPayload": payload})


def counts(db) -> tuple:
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("tasks", "outbox", "tickets"))


@pytest.mark.parametrize("model,payload,field", [
    ("guest-messaging", {"confirmation": "C-2"}, "confirmation"),
    ("guest-messaging", {"userId": "C-2", "context": "guest just checked in"}, "confirmation"),
    ("guest-messaging", {"confirmation": "C-2", "question": "when is breakfast"}, "confirmation"),
    ("upsell-engine", {"confirmation": "C-2"}, "confirmation"),
    ("room-status", {"roomNumber": "402"}, "roomNumber"),
    ("voice-ai", {"text": "bring two towels", "roomNumber": "402"}, "roomNumber"),
])
def test_a_guest_cannot_name_another_guests_stay_or_room(client, login, stay, model, payload, field):
    guest = login("guest", user="C-1")
    before = counts(stay)
    r = run_model(client, guest, model, payload)
    assert r.status_code == 403, r.get_json()
    body = r.get_json()
    assert body["error"]["code"] == "FORBIDDEN" and field in body["error"]["details"]
    assert "Grace" not in r.get_data(as_text=True) and "402" not in body["error"]["message"]
    assert counts(stay) == before  # nothing filed, nothing queued


def test_a_guest_gets_their_own_stay_from_every_guest_model(client, login, stay):
    guest = login("guest", user="C-1")
    r = run_model(client, guest, "guest-messaging", {"userId": "C-1", "context": "guest just checked in"})
    assert r.status_code == 200 and "Ada" in r.get_json()["outputs"]["message"]
    assert r.get_json()["status"] == "success"
    r = run_model(client, guest, "room-status", {})
    assert r.get_json()["outputs"]["roomNumber"] == "401" and r.get_json()["outputs"]["ready"] is True
    r = run_model(client, guest, "upsell-engine", {})
    assert r.status_code == 200 and r.get_json()["outputs"]["confirmation"] == "C-1"


def test_a_spoken_room_number_files_the_task_for_the_guests_own_room(client, login, stay):
    guest = login("guest", user="C-1")
    r = run_model(client, guest, "voice-ai", {"text": "bring me two towels to room four zero two"})
    out = r.get_json()
    assert out["outputs"]["slots"]["room"] == "401" and out["outputs"]["slots"]["spokenRoom"] == "402"
    rooms = [x[0] for x in stay.execute("SELECT room_number FROM tasks")]
    assert rooms == ["401"]


def test_staff_may_name_any_guest_and_room(client, login, stay):
    staff = login("staff")
    r = run_model(client, staff, "guest-messaging", {"confirmation": "C-2"})
    assert r.status_code == 200 and "Grace" in r.get_json()["outputs"]["message"]
    r = run_model(client, staff, "room-status", {"roomNumber": "402"})
    assert r.get_json()["outputs"] == {"roomNumber": "402", "ready": False, "status": "Dirty", "reason": "occupied"}


def test_the_guest_models_are_the_only_ones_a_guest_may_run():
    guest_models = sorted(m for m, s in registry.specs().items() if "guest" in s.roles)
    # each of these is scoped to the session's own stay above; a new one must be added there
    assert guest_models == ["guest-messaging", "room-status", "upsell-engine", "voice-ai"]


# --- the cloud trusts no device's clock, and no reused idempotency key -----------------------

@pytest.fixture
def cloud(tmp_path):
    from kiosk.clock import FakeClock
    from sync.cloud import db as cloud_db
    from sync.cloud import devices
    from sync.cloud.app import create_app

    clock = FakeClock()
    db = cloud_db.open_data_dir(tmp_path / "cloud")
    cred = devices.add_device(db, "k1", ["demo"])
    app = create_app(tmp_path / "cloud", clock=clock)
    c = app.test_client()

    def push(entries, key=None):
        headers = {"Authorization": f"Bearer {cred}"} | ({"Idempotency-Key": key} if key else {})
        return c.post("/sync/v1/push", headers=headers, json={"deviceId": "k1", "entries": entries})
    return push, db, clock


def ticket_entry(n: int, hlc: str) -> dict:
    return {"key": f"key-{n}", "hotelId": "demo", "kind": "ticket.created", "entityType": "ticket",
            "entityId": f"T-{n}", "hlc": hlc, "createdAt": 1_780_000_000.0,
            "payload": {"ticketId": f"T-{n}", "type": "housekeeping", "title": f"towels {n}", "description": "",
                        "roomNumber": "12", "priority": "normal", "queue": "housekeeping", "status": "open",
                        "fingerprint": f"{n:020d}", "createdAt": "2026-06-01T10:00:00.000Z", "createdBy": "s-1"}}


def test_the_cloud_refuses_malformed_and_far_future_clock_stamps(cloud):
    push, db, clock = cloud
    now_ms = int(clock.now() * 1000)
    century = now_ms + 100 * 365 * 86400 * 1000
    entries = [ticket_entry(1, "zzz"), ticket_entry(2, f"{century:015d}-00000-k1"),
               ticket_entry(3, f"{now_ms:015d}-999999-k1"),                       # a sixth counter digit
               ticket_entry(4, f"{now_ms + 2 * 3600 * 1000:015d}-00000-k1"),      # 2 h ahead: past 1 h
               ticket_entry(5, f"{now_ms + 30 * 60 * 1000:015d}-00000-k1")]       # 30 min ahead: fine
    before = db.execute("SELECT wall_ms, counter FROM hlc_state").fetchall()
    r = push(entries)
    assert r.status_code == 200
    res = r.get_json()["results"]
    assert [x["status"] for x in res] == ["rejected", "rejected", "rejected", "rejected", "applied"]
    assert [x["reason"].split(":")[0] for x in res[:4]] == ["INVALID_ENTRY", "HLC_AHEAD", "INVALID_ENTRY", "HLC_AHEAD"]
    assert "ahead of the cloud's clock" in res[1]["reason"]
    assert [t for (t,) in db.execute("SELECT ticket_id FROM tickets")] == ["T-5"]
    (wall, _), = db.execute("SELECT wall_ms, counter FROM hlc_state").fetchall() or before
    assert wall <= now_ms + 30 * 60 * 1000  # the refused stamps did not move the cloud's clock


def test_an_idempotency_key_reused_for_another_body_is_422_and_applies_nothing(cloud):
    push, db, clock = cloud
    hlc = f"{int(clock.now() * 1000):015d}-00000-k1"
    first = push([ticket_entry(1, hlc)], key="batch-1")
    assert first.status_code == 200
    again = push([ticket_entry(1, hlc)], key="batch-1")
    assert again.get_json() == first.get_json()  # the same push: its first answer, replayed
    other = push([ticket_entry(2, hlc)], key="batch-1")
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert [t for (t,) in db.execute("SELECT ticket_id FROM tickets ORDER BY ticket_id")] == ["T-1"]


def test_the_hlc_counter_keeps_five_digits(tmp_path):
    from kiosk import hlc, store

    db = store.connect(tmp_path / "k.db")
    with store.transaction(db):
        db.execute("INSERT INTO hlc_state (node, wall_ms, counter) VALUES ('k1', 5000, 99998)")
        a, b, c = (hlc.tick(db, "k1", 1.0) for _ in range(3))  # the wall clock is behind the state
    assert (a.wall_ms, a.counter) == (5000, 99999)
    assert (b.wall_ms, b.counter) == (5001, 0) and (c.wall_ms, c.counter) == (5001, 1)
    assert str(a) < str(b) < str(c) and len(str(a)) == len(str(b))
    with store.transaction(db):
        hlc.receive(db, "k1", "000000000009000-99999-k2", 1.0)
    assert db.execute("SELECT wall_ms, counter FROM hlc_state WHERE node = 'k1'").fetchone() == (9001, 0)


def test_the_clouds_data_is_readable_by_its_owner_only(tmp_path):
    import stat

    from sync.cloud import db as cloud_db

    root = tmp_path / "cloud"
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # as an older version (or a careless mkdir) left it
    cloud_db.open_data_dir(root).conn.close()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for f in root.iterdir():
        if f.name.startswith("cloud.db"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


# --- the lobby's camera feed is the kiosk's own screen's ------------------------------------

def as_user(uid: int, code: str) -> tuple[int, str]:
    """Run ``code`` (Python, printing a result) as another local user; (returncode, stdout)."""
    import subprocess

    # Debian's python3 (scripts/setup.sh installs it): the venv may sit where that user can't read
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=60, user=uid,
                       env={"PATH": "/usr/bin:/bin"}, cwd="/")
    return p.returncode, p.stdout.strip() + p.stderr.strip()[-300:]


@pytest.mark.skipif(__import__("os").getuid() != 0 or not __import__("os").path.exists("/usr/bin/python3"),
                    reason="needs root (to act as another local user) and /usr/bin/python3")
def test_a_camera_scan_reaches_the_screen_as_a_one_time_claim_that_no_other_local_user_can_take(tmp_path):
    import json as json_mod
    import subprocess

    from harness import BIN

    k = Kiosk(tmp_path, "lobby")
    folder = tmp_path / "camera"
    folder.mkdir()
    k.env |= {"KIOSK__CAMERA__ENABLED": "true", "KIOSK__CAMERA__SOURCE": "folder", "KIOSK__CAMERA__URI": str(folder)}
    k.serve()
    try:
        nobody = 65534
        probe = (f"import urllib.request, urllib.error\n"
                 f"try:\n    urllib.request.urlopen({k.url + '/screen/events'!r}, timeout=5); print(200)\n"
                 f"except urllib.error.HTTPError as e:\n    print(e.code)")
        rc, out = as_user(nobody, probe)
        assert (rc, out) == (0, "403"), out  # another local user gets no feed
        feed = requests.get(k.url + "/screen/events", stream=True, timeout=30)
        assert feed.status_code == 200
        lines = feed.iter_lines()
        assert next(lines) == b"retry: 2000"
        subprocess.run([str(BIN / "kiosk"), "token", "create", "--role", "staff", "--hotel", "demo",
                        "--png", str(tmp_path / "badge.png")], env={**__import__("os").environ, **k.env},
                       check=True, capture_output=True)
        (tmp_path / "badge.png").rename(folder / "badge.png")  # held up to the camera
        event = None
        for line in lines:
            if line.startswith(b"data: "):
                event = json_mod.loads(line[6:])
                break
        feed.close()
        assert set(event) == {"type", "ok", "claim", "role"} and event["role"] == "staff"
        assert "eyJ" not in json_mod.dumps(event)  # no session JWT crosses the feed
        steal = (f"import json, urllib.request, urllib.error\n"
                 f"req = urllib.request.Request({k.url + '/screen/claim'!r}, method='POST', "
                 f"data=json.dumps({{'claim': {event['claim']!r}}}).encode(), "
                 f"headers={{'Content-Type': 'application/json'}})\n"
                 f"try:\n    urllib.request.urlopen(req, timeout=5); print(200)\n"
                 f"except urllib.error.HTTPError as e:\n    print(e.code)")
        rc, out = as_user(nobody, steal)
        assert (rc, out) == (0, "403"), out
        lobby = requests.Session()
        r = lobby.post(k.url + "/screen/claim", json={"claim": event["claim"]}, timeout=60)
        assert r.status_code == 200 and r.json()["user"]["role"] == "staff" and "sessionJWT" not in r.json()
        assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
        # the cookie counts with the claim's screen key only
        cookie = {"kiosk_session": lobby.cookies["kiosk_session"]}
        assert requests.get(k.url + "/api/session", cookies=cookie, timeout=60).status_code == 401
        lobby.headers["X-Kiosk-Key"] = r.json()["screenKey"]
        assert lobby.get(k.url + "/api/session", timeout=60).json()["user"]["role"] == "staff"
        again = requests.post(k.url + "/screen/claim", json={"claim": event["claim"]}, timeout=60)
        assert again.status_code == 401 and again.json()["error"]["code"] == "SESSION_EXPIRED"
    finally:
        k.stop_all()


# --- the low findings ------------------------------------------------------------------------

@pytest.mark.parametrize("path,needs", [("/api/qr/scan", None), ("/api/ai/trigger", "staff"),
                                        ("/api/pms/update", "staff"), ("/api/tickets/auto", "staff"),
                                        ("/api/admin?endpoint=tokens", "admin")])
@pytest.mark.parametrize("body", ["[" * 30_000 + "]" * 30_000,
                                  '{"a":' * 70 + "1" + "}" * 70])
def test_deeply_nested_json_is_a_validation_error_not_a_500(client, login, path, needs, body):
    headers = {"Content-Type": "application/json"} | (login(needs) if needs else {})
    r = client.post(path, data=body, headers=headers)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_integers_past_64_bits_are_validation_errors(client, login, tmp_path):
    admin = login("admin")
    r = client.put("/api/admin?endpoint=outbox", json={"id": 2**70, "action": "retry"}, headers=admin)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"
    r = client.post("/api/pms/update", headers=login("staff"),
                    json={"workOrderId": "WO-1", "changes": {"notes": "x"}, "expectedVersion": 2**64})
    assert r.status_code == 400


def test_the_cloud_refuses_a_cursor_past_64_bits(cloud):
    push, db, clock = cloud
    from sync.cloud import devices

    cred = devices.add_device(db, "k2", ["demo"])
    from sync.cloud.app import create_app

    c = create_app(db.conn.execute("PRAGMA database_list").fetchone()[2].rsplit("/", 1)[0]).test_client()
    r = c.get(f"/sync/v1/pull?hotel=demo&after={2**70}", headers={"Authorization": f"Bearer {cred}"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_screens_may_not_be_framed_and_run_only_their_own_scripts(client):
    for path in ("/", "/staff"):
        r = client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"


def test_405_says_which_methods_are_allowed(client):
    r = client.get("/api/qr/scan")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in r.headers["Allow"]


def test_a_room_reference_cannot_write_outside_the_data_directory(tmp_path):
    import cv2
    from procs import kiosk

    d = tmp_path / "kiosk"
    assert kiosk("--data-dir", str(d), "init").returncode == 0
    img = tmp_path / "room.png"
    cv2.imwrite(str(img), np.full((40, 40, 3), 128, np.uint8))
    for args in (["../../escaped", str(img)], ["101", str(img), "--hotel", "../../escaped"]):
        p = kiosk("--data-dir", str(d), "room", "reference", *args)
        assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert not list(tmp_path.rglob("escaped*"))
    p = kiosk("--data-dir", str(d), "room", "reference", "101", str(img))
    assert p.returncode == 0 and (d / "rooms" / "demo" / "101.png").exists()


def test_a_non_utf8_export_is_one_clear_line(tmp_path):
    from procs import kiosk

    d = tmp_path / "kiosk"
    assert kiosk("--data-dir", str(d), "init").returncode == 0
    export = tmp_path / "export"
    export.mkdir()
    (export / "rooms.csv").write_bytes("room_number,room_type,floor\n101,KING,1\n102,Zwölf,1\n".encode("latin-1"))
    p = kiosk("--data-dir", str(d), "data", "import", str(export), "--hotel", "demo")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "rooms.csv line 3" in p.stderr and "UTF-8" in p.stderr


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}])
def test_a_cross_site_request_riding_on_the_cookie_is_refused(client, issue, headers):
    tok = issue("guest")
    screen = {"X-Kiosk-Screen": "1"}  # a screen's scan: the answer sets the (bound) session cookie
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"}, headers={**screen, **headers})
    assert r.status_code == 403 and r.get_json()["error"]["details"] == {"reason": "cross-site"}
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"},
                    headers={**screen, "Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"})
    assert r.status_code == 200  # the kiosk's own page
    # even with the screen key (a hostile page could not read it), the cookie does not help
    client.environ_base["HTTP_X_KIOSK_KEY"] = r.get_json()["screenKey"]
    r = client.post("/api/guest/requests", json={"text": "two towels please"}, headers=headers)
    assert r.status_code == 403  # the session cookie from that scan does not help a cross-site page
