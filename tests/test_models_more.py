"""The other hotel models on planted data where the right answer is known."""

from __future__ import annotations

import base64
import math

import cv2
import numpy as np
import pytest
from test_models import D, ctx, plant_folio

from kiosk.models import registry
from kiosk.models.base import Context

TODAY = "2026-05-28"  # the FakeClock's date (1_780_000_000)


def test_billing_detection_proposes_a_correction_per_finding_and_flags_outliers(instance, clock):
    db = instance.db()
    plant_folio(db)
    rng = np.random.default_rng(0)
    db["charges"].insert_all([{"hotel_id": "demo", "charge_id": f"H{i}", "confirmation": "R-OK",
                               "posted_at": f"2026-10-{1 + i % 28:02d}T20:00:00", "code": "MINIBAR",
                               "amount": float(round(rng.normal(12, 2), 2)), "quantity": 1} for i in range(60)])
    db["charges"].insert({"hotel_id": "demo", "charge_id": "MB-BIG", "confirmation": "R-OK", "code": "MINIBAR",
                          "posted_at": f"{D}T21:00:00", "amount": 240.0, "quantity": 1})
    r = registry.get("billing-detection").run(ctx(instance, clock), {"businessDate": D})
    by_type = {f["type"]: f for f in r.findings}
    assert by_type["DUPLICATE_CHARGE"]["correction"]["changes"] == {"reverse": True, "amount": -42.5}
    assert by_type["MISSING_ROOM_CHARGE"]["correction"]["changes"] == {"post": "ROOM", "amount": 150.0}
    assert by_type["OUTLIER_CHARGE"]["chargeIds"] == ["MB-BIG"] and by_type["OUTLIER_CHARGE"]["score"] > 3.5
    assert all(a.type == "UPDATE_PMS" and a.payload["requiresApproval"] for a in r.actions)
    assert len(r.actions) == 6  # one per night-audit finding; outliers are for review only


def rooms_and_stays(db):
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": str(n), "room_type": "SUITE" if n == 301 else "KING",
                             "floor": n // 100, "status": st, "occupied": occ}
                            for n, st, occ in ((101, "Dirty", 0), (102, "Dirty", 1), (103, "Clean", 0),
                                               (201, "Dirty", 0), (202, "Dirty", 1), (203, "Dirty", 0),
                                               (301, "Dirty", 0), (302, "Inspected", 0))])
    stays = [("A1", "101", "2026-05-28", "2026-05-30", "Confirmed", 0),   # arrival into a dirty room
             ("V1", "201", "2026-05-28", "2026-05-29", "Confirmed", 1),   # VIP arrival into a dirty room
             ("S1", "102", "2026-05-26", "2026-05-30", "InHouse", 0),     # stayover
             ("D1", "202", "2026-05-25", "2026-05-28", "InHouse", 0),     # departure today
             ("D2", "301", "2026-05-25", "2026-05-28", "InHouse", 0)]     # departure from a suite
    db["reservations"].insert_all([{"hotel_id": "demo", "confirmation": c, "room_number": r, "arrival": a,
                                    "departure": dd, "status": st, "vip": vip, "guest_name": c, "room_type": "KING",
                                    "adults": 2, "children": 0, "currency": "EUR", "language": "en"}
                                   for c, r, a, dd, st, vip in stays])


def test_housekeeping_plans_priorities_credits_and_a_balanced_floor_grouped_split(instance, clock):
    db = instance.db()
    rooms_and_stays(db)
    db["staff"].insert_all([{"hotel_id": "demo", "staff_id": s, "name": s, "role": "housekeeping",
                             "skills": "cleaning", "shift_start": "06:00", "shift_end": "14:00", "max_credits": 12}
                            for s in ("hk1", "hk2")] +
                           [{"hotel_id": "demo", "staff_id": "night", "name": "n", "role": "housekeeping",
                             "skills": "cleaning", "shift_start": "22:00", "shift_end": "06:00", "max_credits": 12}])
    out = registry.get("housekeeping").run(ctx(instance, clock), {"at": "08:00"}).outputs
    plan = {a["staffId"]: a for a in out["assignments"]}
    assert set(plan) == {"hk1", "hk2"}  # the night attendant is off shift
    rooms = {r["roomNumber"]: r for a in out["assignments"] for r in a["rooms"]}
    assert set(rooms) == {"101", "102", "201", "202", "203", "301"}   # 103 and 302 are clean and empty
    assert rooms["301"]["credits"] == 1.5 and rooms["102"]["credits"] == 0.5 and rooms["203"]["credits"] == 0.75
    assert out["totalCredits"] == 1.0 + 0.5 + 1.0 + 1.0 + 0.75 + 1.5
    for a in out["assignments"]:
        kinds = [r["kind"] for r in a["rooms"]]
        order = ["arrival_vip", "arrival", "departure", "stayover", "vacant"]
        assert kinds == sorted(kinds, key=order.index)  # arrivals waiting first
        assert len(a["floors"]) <= 2
    assert out["balance"]["maxCredits"] - out["balance"]["minCredits"] <= 1.5


def test_staff_agent_puts_the_arrival_blocking_room_first(instance, clock):
    db = instance.db()
    rooms_and_stays(db)
    db["tasks"].insert_all([
        {"hotel_id": "demo", "task_id": "T-urgent", "type": "fix", "room_number": "203", "priority": "urgent",
         "created_at": "x", "status": "assigned", "assignee": "ana", "due_at": "2026-05-28T09:00"},
        {"hotel_id": "demo", "task_id": "T-arrival", "type": "clean", "room_number": "101", "priority": "normal",
         "created_at": "x", "status": "assigned", "assignee": "ana", "due_at": "2026-05-28T15:00"},
        {"hotel_id": "demo", "task_id": "T-low", "type": "clean", "room_number": "103", "priority": "low",
         "created_at": "x", "status": "assigned", "assignee": "ana"},
        {"hotel_id": "demo", "task_id": "T-ben", "type": "clean", "room_number": "201", "priority": "high",
         "created_at": "x", "status": "assigned", "assignee": "ben"}])
    out = registry.get("staff-agent").run(ctx(instance, clock), {"staffId": "ana"}).outputs
    assert [w["id"] for w in out["worklist"]] == ["T-arrival", "T-urgent", "T-low"]
    assert out["nextBestAction"]["id"] == "T-arrival" and "arrives today" in out["nextBestAction"]["why"]


def test_upsell_ranks_by_smoothed_probability_times_margin_and_respects_availability(instance, clock):
    db = instance.db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": f"S{i}", "room_type": "SUITE", "floor": 5,
                             "status": "Clean"} for i in range(2)])
    res = [{"hotel_id": "demo", "confirmation": "G1", "room_type": "KING", "arrival": "2026-06-01",
            "departure": "2026-06-04", "status": "Confirmed", "segment": "Corporate", "guest_name": "G"}]
    # both suites are taken on the night of 06-02 only: no suite upgrade for G1
    res += [{"hotel_id": "demo", "confirmation": f"X{i}", "room_type": "SUITE", "arrival": "2026-06-02",
             "departure": "2026-06-03", "status": "Confirmed", "segment": "Leisure", "guest_name": "X"} for i in range(2)]
    res += [{"hotel_id": "demo", "confirmation": f"H{i}", "room_type": "KING", "arrival": "2026-01-01",
             "departure": "2026-01-02", "status": "CheckedOut", "segment": "Corporate" if i < 40 else "Leisure",
             "guest_name": "H"} for i in range(80)]
    db["reservations"].insert_all(res)
    db["offers"].insert_all([
        {"hotel_id": "demo", "offer_id": "SUITE", "name": "Suite", "type": "upgrade", "price": 150, "margin": 120,
         "room_type_from": "KING", "room_type_to": "SUITE", "inventory": 5},
        {"hotel_id": "demo", "offer_id": "BREAKFAST", "name": "Breakfast", "type": "addon", "price": 20, "margin": 12,
         "inventory": None},
        {"hotel_id": "demo", "offer_id": "SPA", "name": "Spa", "type": "addon", "price": 60, "margin": 30,
         "inventory": 3},
        {"hotel_id": "demo", "offer_id": "PARKING", "name": "Parking", "type": "addon", "price": 15, "margin": 14,
         "inventory": 0}])
    # corporate guests take breakfast 80 % of the time and the spa 5 %; leisure guests the other way round
    hist = []
    for i in range(80):
        corp = i < 40
        hist.append({"hotel_id": "demo", "confirmation": f"H{i}", "offer_id": "BREAKFAST", "shown_at": "2026-01-01",
                     "accepted": int((i % 10 < 8) if corp else (i % 10 < 1))})
        hist.append({"hotel_id": "demo", "confirmation": f"H{i}", "offer_id": "SPA", "shown_at": "2026-01-01",
                     "accepted": int((i % 20 < 1) if corp else (i % 10 < 7))})
    db["offer_history"].insert_all(hist)
    out = registry.get("upsell-engine").run(ctx(instance, clock), {"confirmation": "G1"}).outputs
    ids = [o["offerId"] for o in out["offers"]]
    assert "SUITE" not in ids and "PARKING" not in ids  # no suite free every night; no parking left
    assert ids == ["BREAKFAST", "SPA"]  # 0.72 x 12 beats a corporate guest's small spa chance x 30
    db.execute("DELETE FROM reservations WHERE confirmation LIKE 'X%'")
    ids = [o["offerId"] for o in registry.get("upsell-engine").run(ctx(instance, clock), {"confirmation": "G1"})
           .outputs["offers"]]
    assert ids[0] == "SUITE"  # now free every night: a 10 % prior x 120 beats 0.72 x 12


def test_maintenance_ranks_the_frequently_failing_type_first_and_censoring_matters(instance, clock):
    from kiosk.models.maintenance import fit_weibull

    db = instance.db()
    day = 86400.0
    now = clock.now()
    rng = np.random.default_rng(1)
    assets, wos = [], []
    for i in range(12):
        for typ, scale in (("boiler", 60.0), ("tv", 2000.0)):
            aid = f"{typ}-{i}"
            assets.append({"hotel_id": "demo", "asset_id": aid, "type": typ, "room_number": str(100 + i),
                           "installed_on": "2025-05-28"})
            t = now - 365 * day
            while True:
                t += scale * rng.weibull(1.5) * day
                if t >= now:
                    break
                wos.append({"hotel_id": "demo", "work_order_id": f"W{len(wos)}", "asset_id": aid, "type": "failure",
                            "status": "done", "opened_at": t, "updated_at": t, "description": ""})
    db["assets"].insert_all(assets)
    db["work_orders"].insert_all(wos)
    out = registry.get("maintenance").run(ctx(instance, clock), {"horizonDays": 30, "threshold": 0.3})
    risks = out.outputs["assets"]
    boiler = [a["risk"] for a in risks if a["type"] == "boiler"]
    assert min(boiler) > max([a["risk"] for a in risks if a["type"] == "tv"] or [0])
    assert {a.payload["assetId"].split("-")[0] for a in out.actions} == {"boiler"}
    # censoring: with the still-running intervals left out, the same data looks far worse
    times, events = np.array([50.0, 70.0, 300.0, 400.0]), np.array([1.0, 1.0, 0.0, 0.0])
    k_c, lam_c = fit_weibull(times, events)
    k_u, lam_u = fit_weibull(times[:2], events[:2])
    assert lam_c > lam_u * 2 and math.isfinite(k_c)


def test_pms_linking_links_corrupted_records_and_flags_ambiguity(instance, clock):
    db = instance.db()
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "C1", "guest_name": "Anna Müller", "arrival": "2026-06-01",
         "departure": "2026-06-03", "status": "Confirmed", "email": "anna@example.org"},
        {"hotel_id": "demo", "confirmation": "C2", "guest_name": "Jonathan Smith", "arrival": "2026-06-01",
         "departure": "2026-06-02", "status": "Confirmed"},
        {"hotel_id": "demo", "confirmation": "C3", "guest_name": "John Smith", "arrival": "2026-06-02",
         "departure": "2026-06-04", "status": "Confirmed"},
        {"hotel_id": "demo", "confirmation": "C4", "guest_name": "John Smyth", "arrival": "2026-06-02",
         "departure": "2026-06-04", "status": "Confirmed"}])
    records = [{"guestName": "x", "arrival": "2026-06-01", "confirmation": "C2"},
               {"guestName": "someone", "arrival": "2026-06-09", "email": "ANNA@example.org"},
               {"guestName": "Muller, Anna", "arrival": "2026-06-02"},                     # swapped, accent lost, +1 day
               {"guestName": "Jonathon Smith", "arrival": "2026-06-01", "departure": "2026-06-02"},  # typo
               {"guestName": "John Smth", "arrival": "2026-06-02"},                         # C3 or C4?
               {"guestName": "Zoe Quinn", "arrival": "2026-06-01"}]
    links = registry.get("pms-linking").run(ctx(instance, clock), {"records": records}).outputs["links"]
    got = [(x["status"], x["confirmation"], x["method"]) for x in links]
    assert got[:4] == [("linked", "C2", "confirmation"), ("linked", "C1", "email"), ("linked", "C1", "fuzzy"),
                       ("linked", "C2", "fuzzy")]
    assert got[4][0] == "ambiguous" and {c["confirmation"] for c in links[4]["candidates"]} >= {"C3", "C4"}
    assert got[5] == ("unmatched", None, "fuzzy")


def test_guest_messaging_speaks_the_guests_language_and_hands_over_when_unsure(instance, clock):
    db = instance.db()
    db["rooms"].insert({"hotel_id": "demo", "room_number": "412", "room_type": "KING", "floor": 4,
                        "status": "Inspected"})
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "DE1", "guest_name": "Karl", "room_number": "412", "arrival": TODAY,
         "departure": "2026-05-31", "status": "Confirmed", "language": "de"},
        {"hotel_id": "demo", "confirmation": "EN1", "guest_name": "Ada", "room_number": "412",
         "arrival": "2026-05-25", "departure": TODAY, "status": "InHouse", "language": "en"}])
    db["faq"].insert_all([
        {"hotel_id": "demo", "faq_id": "wifi", "language": "en", "question": "What is the wifi password?",
         "answer": "The network is Harbor-Guest; the password is on your key card sleeve."},
        {"hotel_id": "demo", "faq_id": "breakfast", "language": "en", "question": "When is breakfast served?",
         "answer": "Breakfast is served from 6:30 to 10:30 in the Lighthouse restaurant."},
        {"hotel_id": "demo", "faq_id": "parking", "language": "en", "question": "Where can I park my car?",
         "answer": "Parking is in the garage under the hotel, 18 per night."}])
    model = registry.get("guest-messaging")
    de = model.run(ctx(instance, clock), {"confirmation": "DE1"}).outputs
    assert (de["language"], de["moment"]) == ("de", "arrival")
    assert de["message"].startswith("Willkommen, Karl!") and "412 ist bereit" in de["message"]
    en = model.run(ctx(instance, clock), {"confirmation": "EN1", "question": "what time do you serve breakfast"})
    assert en.outputs["moment"] == "departure" and en.outputs["faqId"] == "breakfast" and not en.outputs["handover"]
    unsure = model.run(ctx(instance, clock), {"confirmation": "EN1", "question": "can I bring my parrot"})
    assert unsure.outputs["handover"] is True and unsure.confidence < 0.3
    assert [a.type for a in unsure.actions] == ["CREATE_TASK"] and "parrot" in unsure.actions[0].payload["description"]
    guest = Context(db=instance.db(), hotel_id="demo", now=clock.now(), actor="DE1", role="guest")
    assert model.run(guest, {}).outputs["moment"] == "arrival"  # their own reservation, from the session
    with pytest.raises(Exception) as e:
        model.run(guest, {"confirmation": "EN1"})  # someone else's: name and room are not theirs to see
    assert e.value.code == "FORBIDDEN"


def scene(seed=0, extra=False, shift=(0, 0), gain=1.0):
    """A room-like picture: walls, a bed, a window, furniture edges; optionally a towel left on the floor."""
    rng = np.random.default_rng(seed)
    img = np.full((480, 640), 170, np.uint8)
    cv2.rectangle(img, (0, 300), (640, 480), 120, -1)            # floor
    cv2.rectangle(img, (60, 220), (360, 380), 230, -1)           # bed
    cv2.rectangle(img, (60, 200), (360, 240), 90, -1)            # headboard
    cv2.rectangle(img, (430, 60), (600, 230), 250, -1)           # window
    cv2.line(img, (515, 60), (515, 230), 60, 4)
    cv2.rectangle(img, (420, 270), (560, 400), 70, -1)           # desk
    for _ in range(200):                                         # texture for feature matching
        x, y = int(rng.integers(0, 630)), int(rng.integers(0, 470))
        cv2.circle(img, (x, y), int(rng.integers(2, 6)), int(rng.integers(40, 250)), -1)
    if extra:
        cv2.ellipse(img, (250, 430), (70, 30), 15, 0, 360, 250, -1)  # the towel
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    img = cv2.warpAffine(img, m, (640, 480), borderMode=cv2.BORDER_REPLICATE)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def b64(img) -> str:
    return base64.b64encode(cv2.imencode(".png", img)[1].tobytes()).decode()


def test_room_status_readiness_and_an_inspection_that_finds_the_added_object(instance, clock, tmp_path):
    from click.testing import CliRunner

    from kiosk.cli import main

    db = instance.db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": "412", "room_type": "KING", "floor": 4,
                             "status": "Inspected", "occupied": 0},
                            {"hotel_id": "demo", "room_number": "413", "room_type": "KING", "floor": 4,
                             "status": "Dirty", "occupied": 0}])
    model = registry.get("room-status")
    assert model.run(ctx(instance, clock), {"roomNumber": "412"}).outputs["ready"] is True
    not_ready = model.run(ctx(instance, clock), {"roomNumber": "413"}).outputs
    assert not_ready["ready"] is False and "Dirty" in not_ready["reason"]
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), scene())
    r = CliRunner().invoke(main, ["--data-dir", str(instance.root), "room", "reference", "412", str(ref),
                                  "--hotel", "demo"])
    assert r.exit_code == 0, r.output
    same = model.run(ctx(instance, clock), {"roomNumber": "412", "image": b64(scene(shift=(6, -4), gain=1.15))})
    assert same.outputs["needsAttention"] is False, same.outputs["regions"]
    towel = model.run(ctx(instance, clock), {"roomNumber": "412", "image": b64(scene(extra=True, shift=(6, -4)))})
    assert towel.outputs["needsAttention"] is True and [a.type for a in towel.actions] == ["CREATE_TASK"]
    box = towel.outputs["regions"][0]
    assert box["x"] <= 250 <= box["x"] + box["w"] + 10 and box["y"] <= 430 <= box["y"] + box["h"] + 10
    with pytest.raises(Exception) as e:
        model.run(ctx(instance, clock), {"roomNumber": "412", "image": "not base64!"})
    assert e.value.code == "VALIDATION_ERROR"
    with pytest.raises(Exception) as e:
        model.run(ctx(instance, clock), {"roomNumber": "413", "image": b64(scene())})
    assert e.value.code == "NOT_FOUND"  # no reference photo for 413


def speak(tmp_path, text, voice="en-us", speed=160):
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh --test installs it)")
    out = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True)
    return base64.b64encode(out.read_bytes()).decode()


@pytest.mark.parametrize("voice, speed", [("en-us", 140), ("en+f3", 170)])
def test_voice_ai_turns_speech_made_with_espeak_into_an_intent_and_a_task(instance, clock, tmp_path, voice, speed):
    audio = speak(tmp_path, "the shower is not working in room three zero five", voice, speed)
    r = registry.get("voice-ai").run(ctx(instance, clock), {"audio": audio})
    assert r.outputs["intent"] == "report_fault" and r.outputs["slots"]["thing"] == "shower"
    assert "shower" in r.outputs["transcript"] and r.confidence > 0.3
    assert [a.type for a in r.actions] == ["CREATE_TASK"] and r.actions[0].payload["type"] == "maintenance"


def test_voice_ai_parses_typed_requests_and_refuses_bad_audio(instance, clock):
    import io
    import wave

    model = registry.get("voice-ai")
    cases = {"Could I get three more pillows please, room 1204": ("request_item", {"item": "pillow", "quantity": 3,
                                                                                 "room": "1204"}),
             "please bring two towels to room four one two": ("request_item", {"item": "towel", "quantity": 2,
                                                                             "room": "412"}),
             "please make up my room": ("clean_room", {"room": "101"}),
             "the TV is broken": ("report_fault", {"thing": "television", "room": "101"}),
             "can I have a late checkout": ("late_checkout", {"room": "101"}),
             "where is the gym": ("question", {"text": "where is the gym"})}
    for text, (intent, slots) in cases.items():
        out = model.run(ctx(instance, clock), {"text": text, "roomNumber": "101"}).outputs
        assert (out["intent"], out["slots"]) == (intent, slots), text
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:  # two seconds of noise: no request in it
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.random.default_rng(0).normal(0, 3000, 32000).astype("<i2").tobytes())
    noise = model.run(ctx(instance, clock), {"audio": base64.b64encode(buf.getvalue()).decode()})
    assert noise.outputs["intent"] == "unknown" and noise.confidence <= 0.1 and noise.actions == []
    for bad in ({"audio": base64.b64encode(b"RIFF nonsense").decode()}, {"audio": "%%%"}, {},
                {"audio": "UklGRg==", "text": "both"}):
        with pytest.raises(Exception) as e:
            model.run(ctx(instance, clock), bad)
        assert e.value.code == "VALIDATION_ERROR"
