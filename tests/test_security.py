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
    sid = s.get(s.base_url + "/api/session", timeout=10).json()["sessionId"]
    return s.post(s.base_url + "/api/ai/trigger", json={"sessionId": sid, "modelId": model, "requestPayload": payload},
                  timeout=timeout)


def session(k: Kiosk, role: str) -> requests.Session:
    s = k.session(role)
    s.base_url = k.url
    return s


@pytest.mark.parametrize("frames", [700, 2000])
def test_a_wav_at_1_hz_is_refused_before_any_work(served, frames):
    s = session(served, "guest")
    r = trigger(s, "voice-ai", {"audio": b64(wav(1, frames))}, timeout=10)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and err["details"] == {"field": "audio", "sampleRate": 1, "min": 8000,
                                                                    "max": 48000}


def test_audio_longer_than_30_s_and_images_past_25_megapixels_are_refused(served):
    s = session(served, "staff")
    r = trigger(s, "voice-ai", {"audio": b64(wav(8000, 8000 * 31))}, timeout=20)
    assert r.status_code == 400 and r.json()["error"]["details"]["max"] == 30.0
    r = trigger(s, "room-status", {"roomNumber": "101", "image": b64(png_header(18000, 18000))}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["details"] == {"field": "image", "width": 18000, "height": 18000, "maxPixels": 25_000_000}


def test_the_kiosk_answers_health_checks_while_models_chew_on_the_longest_allowed_audio(served):
    """Four 30-second noise clips (the most voice-ai accepts) keep both model workers busy; the
    web server answers /healthz within a second throughout, and the clips get their answers."""
    s = session(served, "guest")
    clip = b64(wav(8000, 8000 * 30, noise=True))
    answers: list[int] = []

    def hostile():
        answers.append(trigger(s, "voice-ai", {"audio": clip}).status_code)

    threads = [threading.Thread(target=hostile) for _ in range(4)]
    for t in threads:
        t.start()
    worst = 0.0
    probes = 0
    while any(t.is_alive() for t in threads):
        t0 = time.monotonic()
        assert requests.get(served.url + "/healthz", timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - t0)
        probes += 1
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 200, 200, 200]
    assert probes >= 3 and worst < 1.0, (probes, worst)


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
