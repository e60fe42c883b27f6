"""The demo property: a realistic, deterministic hotel for the README's run command.

120 rooms on 4 floors (King, Twin, Suite), 90 days of history and 60 days on the books
around "today" (the instance clock), folios with room, tax, food and minibar charges
and payments, staff with skills and shifts, open tasks, assets with a failure history,
offers (in English and German) with an acceptance history, and an FAQ in English and German.  The same seed
and date give the same property.  Planted for the night audit of yesterday, so the
staff screen has something to show: one duplicate food charge, one missing room
charge and one checked-out folio with an open balance (their confirmations are in
the result).

Seeding again replaces the property data, but of the work orders and tasks (which the
kiosk makes too: staff, models, approvals) only the ones an earlier seed made — their
ids are kept in ``sync_state`` (``demo_seed:<hotel>``) — so local work survives a re-seed.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta

from .. import store, sync_status
from . import tables as property_tables

FIRST = ["Ada", "Grace", "Karl", "Marie", "Jonas", "Lea", "Noah", "Emma", "Luca", "Sofia", "Omar", "Yuki", "Ines",
         "Pablo", "Nora", "Finn", "Mila", "Arjun", "Chloe", "Tariq", "Amélie", "Björn", "Camila", "Dmitri", "Elif",
         "Farah", "Gustav", "Hana", "Ivo", "Jana", "Kofi", "Lina", "Mateo", "Nadia", "Oskar", "Priya", "Quentin",
         "Rosa", "Sven", "Thea"]
LAST = ["Lovelace", "Hopper", "Benz", "Curie", "Müller", "Schmidt", "Rossi", "Dubois", "García", "Tanaka", "Nowak",
        "Silva", "Jensen", "Khan", "Novak", "Meyer", "Costa", "Evans", "Weber", "Fischer", "Öztürk", "Lindqvist",
        "Moreau", "Kowalski", "Haddad", "Nakamura", "Petrov", "Ribeiro", "Schäfer", "Virtanen", "Yılmaz", "Zhang",
        "Andersen", "Bianchi", "Castro", "Dvořák", "Eriksen", "Ferreira", "Gallagher", "Horvat"]
SEGMENTS = ["Direct", "Online TA", "Corporate", "Groups", "Leisure"]
RATES = {"KING": 150.0, "TWIN": 120.0, "SUITE": 260.0}
TAX = 0.10
#: tables the kiosk writes too: a seed replaces only its own rows there (by this id column)
OWN_ROWS = {"work_orders": "work_order_id", "tasks": "task_id"}


def seed(db, hotel_id: str, today: date, *, seed_value: int = 7) -> dict:
    """Replace ``hotel_id``'s property data with the demo property; returns what was planted."""
    rng = random.Random(seed_value)
    rooms, res, charges, staff, tasks, assets, wos, offers, hist, faq = [], [], [], [], [], [], [], [], [], []
    for floor in range(1, 5):
        for k in range(1, 31):
            kind = "SUITE" if k > 27 else ("TWIN" if k % 3 == 0 else "KING")
            rooms.append({"hotel_id": hotel_id, "room_number": f"{floor}{k:02d}", "room_type": kind, "floor": floor,
                          "status": "Clean", "occupied": 0})
    by_type = {t: [r["room_number"] for r in rooms if r["room_type"] == t] for t in RATES}
    occupied_until: dict[str, date] = {}
    n = 0
    yesterday = today - timedelta(days=1)
    for day in range(-90, 60):
        d = today + timedelta(days=day)
        for _ in range(rng.randint(22, 34)):
            kind = rng.choices(list(RATES), weights=[6, 3, 1])[0]
            free = [r for r in by_type[kind] if occupied_until.get(r, date.min) <= d]
            if not free:
                continue
            room = rng.choice(free)
            nights = rng.choice([1, 1, 2, 2, 3, 4, 7])
            dep = d + timedelta(days=nights)
            occupied_until[room] = dep
            n += 1
            conf = f"D{n:05d}"
            lead = rng.choice([1, 3, 7, 14, 30, 60, 90])
            canceled = rng.random() < 0.08
            status = ("Canceled" if canceled else "CheckedOut" if dep <= today else
                      "InHouse" if d <= today else "Confirmed")
            if canceled:
                occupied_until[room] = d
            res.append({"hotel_id": hotel_id, "confirmation": conf,
                        "guest_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "room_number": room,
                        "room_type": kind, "arrival": d.isoformat(), "departure": dep.isoformat(), "status": status,
                        "adults": rng.choice([1, 2, 2]), "children": rng.choice([0, 0, 1]), "rate_plan": "BAR",
                        "nightly_rate": RATES[kind], "currency": "EUR", "language": rng.choice(["en", "en", "de"]),
                        "vip": int(rng.random() < 0.05), "segment": rng.choice(SEGMENTS),
                        "booked_on": (d - timedelta(days=lead)).isoformat(),
                        "canceled_on": (d - timedelta(days=rng.randint(1, lead))).isoformat() if canceled else None,
                        "email": f"{conf.lower()}@example.org"})
            if status in ("Canceled", "Confirmed"):
                continue
            total = 0.0
            for k in range(nights):
                night = d + timedelta(days=k)
                if night >= today:
                    break
                tag = f"{conf}-{k}"
                charges += [{"hotel_id": hotel_id, "charge_id": f"{tag}-room", "confirmation": conf,
                             "posted_at": f"{night.isoformat()}T23:30:00", "code": "ROOM", "amount": RATES[kind],
                             "quantity": 1},
                            {"hotel_id": hotel_id, "charge_id": f"{tag}-tax", "confirmation": conf,
                             "posted_at": f"{night.isoformat()}T23:30:01", "code": "TAX",
                             "amount": round(RATES[kind] * TAX, 2), "quantity": 1}]
                total += RATES[kind] + round(RATES[kind] * TAX, 2)
                if rng.random() < 0.35:
                    amt = rng.choice([14.5, 22.0, 38.0, 54.5])
                    charges.append({"hotel_id": hotel_id, "charge_id": f"{tag}-fnb", "confirmation": conf,
                                    "posted_at": f"{night.isoformat()}T20:{rng.randint(10, 59)}:00", "code": "FNB",
                                    "amount": amt, "quantity": 1})
                    total += amt
            if status == "CheckedOut":
                charges.append({"hotel_id": hotel_id, "charge_id": f"{conf}-pay", "confirmation": conf,
                                "posted_at": f"{dep.isoformat()}T10:15:00", "code": "PAYMENT",
                                "amount": -round(total, 2), "quantity": 1})
    # rooms today: occupied by who is in house; departures and some others dirty
    in_house = {r["room_number"] for r in res if r["status"] == "InHouse"}
    departing = {r["room_number"] for r in res if r["departure"] == today.isoformat()}
    for r in rooms:
        r["occupied"] = int(r["room_number"] in in_house)
        r["status"] = "Dirty" if r["room_number"] in departing or (r["occupied"] and rng.random() < 0.6) else \
            rng.choice(["Clean", "Clean", "Inspected", "Dirty"])
    rooms[5]["status"] = "OutOfOrder"
    # the night audit of yesterday has something to find
    y = yesterday.isoformat()
    planted = {}
    stays = [r for r in res if r["arrival"] <= y < r["departure"] and r["status"] == "InHouse"]
    by_id = {c["charge_id"]: c for c in charges}
    dup, miss = stays[0]["confirmation"], stays[1]["confirmation"]
    k = (yesterday - date.fromisoformat(stays[0]["arrival"])).days
    charges.append({**by_id[f"{dup}-{k}-room"], "charge_id": f"{dup}-{k}-room-dup", "posted_at": f"{y}T23:32:00"})
    k = (yesterday - date.fromisoformat(stays[1]["arrival"])).days
    charges.remove(by_id[f"{miss}-{k}-room"])
    out = next(r for r in res if r["departure"] == y and r["status"] == "CheckedOut")
    charges.append({"hotel_id": hotel_id, "charge_id": f"{out['confirmation']}-minibar", "posted_at": f"{y}T11:00:00",
                    "confirmation": out["confirmation"], "code": "MINIBAR", "amount": 9.5, "quantity": 1})
    planted = {"DUPLICATE_CHARGE": dup, "MISSING_ROOM_CHARGE": miss, "OPEN_BALANCE": out["confirmation"]}
    roles = [("housekeeping", "cleaning", "07:00", "15:00", 12)] * 6 + \
            [("maintenance", "plumbing;electric;hvac", "07:00", "16:00", None)] * 3 + \
            [("front_office", "front_office", "06:00", "22:00", None)] * 3 + \
            [("housekeeping", "cleaning", "15:00", "23:00", 10)] * 2
    for i, (role, skills, start, end, cap) in enumerate(roles, start=1):
        staff.append({"hotel_id": hotel_id, "staff_id": f"s{i:02d}", "name": f"{FIRST[i]} {LAST[-i]}", "role": role,
                      "skills": skills, "shift_start": start, "shift_end": end, "max_credits": cap})
    now = datetime.combine(today, datetime.min.time())
    for i in range(12):
        skill = rng.choice(["plumbing", "electric", "cleaning", "hvac", "front_office"])
        tasks.append({"hotel_id": hotel_id, "task_id": f"T{i + 1:03d}", "type": {"plumbing": "leak", "electric": "light",
                      "cleaning": "extra clean", "hvac": "too warm", "front_office": "call back"}[skill],
                      "room_number": rng.choice(rooms)["room_number"], "priority": rng.choice(["normal", "high",
                                                                                             "urgent", "low"]),
                      "required_skill": skill, "created_at": (now + timedelta(hours=7, minutes=i * 9)).isoformat(),
                      "due_at": (now + timedelta(hours=12 + i % 5)).isoformat(), "status": "open", "assignee": None,
                      "description": ""})
    w = 0
    for i, r in enumerate(rooms[::3]):
        for typ, mean_days in (("boiler", 70), ("air_conditioner", 160)):
            if typ == "boiler" and i % 2:
                continue
            aid = f"{typ}-{r['room_number']}"
            installed = today - timedelta(days=720)
            assets.append({"hotel_id": hotel_id, "asset_id": aid, "type": typ, "room_number": r["room_number"],
                           "installed_on": installed.isoformat()})
            t = datetime.combine(installed, datetime.min.time())
            while True:
                t += timedelta(days=mean_days * rng.weibullvariate(1, 1.6))
                if t.date() >= today:
                    break
                w += 1
                wos.append({"hotel_id": hotel_id, "work_order_id": f"WO-{w:04d}", "asset_id": aid,
                            "room_number": r["room_number"], "type": "failure", "description": f"{typ} failure",
                            "status": "done", "opened_at": t.timestamp(), "closed_at": t.timestamp() + 7200,
                            "updated_at": t.timestamp()})
    offers = [
        {"hotel_id": hotel_id, "offer_id": "UPG-SUITE", "name": "Upgrade to a suite", "type": "upgrade", "price": 90,
         "margin": 75, "room_type_from": "KING", "room_type_to": "SUITE", "inventory": 4,
         "description": "A separate living room and a view of the harbour, per night.",
         "name_de": "Upgrade auf eine Suite",
         "description_de": "Mit eigenem Wohnzimmer und Blick auf den Hafen, pro Nacht."},
        {"hotel_id": hotel_id, "offer_id": "BREAKFAST", "name": "Breakfast buffet", "type": "addon", "price": 22,
         "margin": 14, "room_type_from": None, "room_type_to": None, "inventory": None,
         "description": "6:30 to 10:30 in the Lighthouse restaurant.", "name_de": "Frühstücksbuffet",
         "description_de": "Von 6:30 bis 10:30 Uhr im Restaurant Lighthouse."},
        {"hotel_id": hotel_id, "offer_id": "LATE-CO", "name": "Late checkout until 14:00", "type": "addon", "price": 25,
         "margin": 23, "room_type_from": None, "room_type_to": None, "inventory": 15,
         "description": "Keep your room until 14:00 on the day you leave.", "name_de": "Später Check-out bis 14:00 Uhr",
         "description_de": "Behalten Sie Ihr Zimmer am Abreisetag bis 14:00 Uhr."},
        {"hotel_id": hotel_id, "offer_id": "SPA", "name": "Spa afternoon", "type": "addon", "price": 60, "margin": 30,
         "room_type_from": None, "room_type_to": None, "inventory": 6,
         "description": "Sauna, pool and a 30-minute massage.", "name_de": "Nachmittag im Spa",
         "description_de": "Sauna, Pool und eine Massage von 30 Minuten."}]
    rates = {"UPG-SUITE": 0.08, "BREAKFAST": 0.45, "LATE-CO": 0.2, "SPA": 0.1}
    for r in res[:800]:
        for o in rng.sample(list(rates), 2):
            hist.append({"hotel_id": hotel_id, "confirmation": r["confirmation"], "offer_id": o,
                         "shown_at": r["arrival"] + "T15:00:00",
                         "accepted": int(rng.random() < rates[o] * (1.6 if r["segment"] == "Corporate" else 1))})
    faq = [{"hotel_id": hotel_id, "faq_id": f, "language": lang, "question": q, "answer": a} for f, lang, q, a in (
        ("wifi", "en", "What is the wifi password?", "Join 'Harbor-Guest'; the password is on your key card sleeve."),
        ("breakfast", "en", "When is breakfast served?", "From 6:30 to 10:30 in the Lighthouse restaurant."),
        ("checkout", "en", "What time is checkout?", "Checkout is until 11:00; ask us for a late checkout."),
        ("parking", "en", "Where can I park my car?", "In the garage under the hotel, 18 EUR per night."),
        ("wifi", "de", "Wie lautet das WLAN-Passwort?", "Netz 'Harbor-Guest'; das Passwort steht auf der Kartenhülle."),
        ("breakfast", "de", "Wann gibt es Frühstück?", "Von 6:30 bis 10:30 Uhr im Restaurant Lighthouse."),
        ("checkout", "de", "Wann ist der Check-out?", "Check-out ist bis 11:00 Uhr; fragen Sie uns nach einem späten"
                                                     " Check-out."),
        ("parking", "de", "Wo kann ich mein Auto parken?", "In der Garage unter dem Hotel, 18 EUR pro Nacht."))]
    tables = {"rooms": rooms, "reservations": res, "charges": charges, "staff": staff, "tasks": tasks,
              "assets": assets, "work_orders": wos, "offers": offers, "offer_history": hist, "faq": faq}
    state_key = f"demo_seed:{hotel_id}"
    with store.transaction(db):
        saved = sync_status.get(db, state_key)
        before = json.loads(saved) if saved else {}
        for table, rows in tables.items():
            if table in OWN_ROWS:  # only what a seed made: local work orders, tasks and approvals stay
                column = OWN_ROWS[table]
                property_tables.clear(db, hotel_id, table, column=column,
                                      values=sorted(set(before.get(table, [])) | {r[column] for r in rows}))
            else:
                property_tables.clear(db, hotel_id, table)
            property_tables.insert_many(db, hotel_id, table, rows)
        made = json.dumps({t: sorted(r[c] for r in tables[t]) for t, c in OWN_ROWS.items()})
        sync_status.put(db, {state_key: made})
    guest = next(r["confirmation"] for r in res if r["status"] == "InHouse")
    return {"hotelId": hotel_id, "today": today.isoformat(), **{t: len(r) for t, r in tables.items()},
            "planted": planted, "guestConfirmation": guest, "staffId": "s01"}
