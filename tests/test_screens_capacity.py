"""The staff screen when the kiosk refuses it a live feed (429 BUSY): it says so, keeps its
list fresh by polling, and goes live again once a place is free — in a real Chromium
against a real kiosk whose feeds' gate holds one feed."""

from __future__ import annotations

import pytest
import requests
from browser import needs_chromium
from harness import Kiosk
from test_capacity import bench_capacity
from test_screens import open_screen, page, shot  # noqa: F401  (fixtures)

from kiosk import config as config_mod
from kiosk.instance import Instance

pytestmark = needs_chromium


@pytest.fixture
def busy_kiosk(tmp_path):
    k = Kiosk(tmp_path, "busy")
    k.env.update({"KIOSK__CAPACITY__STREAMS": "1", "KIOSK__CAPACITY__STREAMS_PER_SESSION": "1"})
    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir),
                                                           "property": {"hotels": ["demo"], "kiosk_id": "busy"}})).db()
    db["rooms"].insert({"hotel_id": "demo", "room_number": "412", "room_type": "KING", "floor": 4,
                        "status": "Inspected", "occupied": 1})
    db["reservations"].insert({"hotel_id": "demo", "confirmation": "R-1042", "guest_name": "Ada Lovelace",
                               "room_number": "412", "room_type": "KING", "arrival": "2026-11-24",
                               "departure": "2030-11-27", "status": "InHouse", "language": "en"})
    db["staff"].insert({"hotel_id": "demo", "staff_id": "s-ana", "name": "Ana", "role": "housekeeping",
                        "skills": "cleaning", "shift_start": "00:00", "shift_end": "23:59"})
    db.conn.close()
    k.serve()
    yield k
    k.stop_all()


def test_a_staff_screen_refused_a_feed_polls_and_goes_live_when_a_place_is_free(busy_kiosk, page):  # noqa: F811
    k = busy_kiosk
    other = k.session("staff")  # another terminal holds the kiosk's one feed
    held, status, _ = bench_capacity().open_stream(k.url, other.headers["Authorization"].split()[1])
    assert status == 200
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_screen(page, k.url + "/staff")
    page.get_by_label("Scan your badge or type your code").fill(k.token("staff", user="s-ana", name="Ana"))
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('live').textContent.includes('Refreshing every')",
                           timeout=60_000)
    # a guest asks for something: the polling list shows it without a reload
    guest = k.session("guest", token=k.token("guest", user="R-1042"))
    r = guest.post(k.url + "/api/guest/requests", json={"text": "Two more towels please", "kind": "housekeeping"},
                   timeout=60)
    assert r.status_code in (200, 201), r.text
    page.wait_for_function("() => document.getElementById('queue').textContent.includes('Two more towels')",
                           timeout=60_000)
    shot(page, "staff-polling-1920")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "staff-polling-390")
    # the other terminal goes away: this one goes live again by itself
    held.close()
    page.wait_for_function("() => document.getElementById('live').textContent.startsWith('Live')",
                           timeout=90_000)
    assert requests.get(k.url + "/healthz", timeout=30).status_code == 200
