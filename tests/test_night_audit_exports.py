"""Night audit on exports nobody tuned it for (issue 11): reservations without the optional
columns (room type, rate plan, rate, room), imported through the real importer, and a
duplicate posting beside a legitimate third charge of the same code and amount."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta

import pytest

from kiosk.models import registry
from kiosk.models.base import Context
from kiosk.property import importer

HOTEL = "demo"
REQUIRED = {"reservations": ("confirmation", "arrival", "departure", "status"),
            "charges": ("charge_id", "confirmation", "posted_at", "code", "amount"),
            "rooms": ("room_number", "room_type", "floor", "status"),
            "rate_plans": ("code", "room_type", "nightly_rate", "tax_rate")}
NO_ROOM_TYPE = {**{k: None for k in REQUIRED},
                "reservations": ("confirmation", "room_number", "arrival", "departure", "status", "rate_plan",
                                 "nightly_rate")}


def export(tmp_path, tables: dict[str, list[dict]], columns: dict[str, tuple | None]) -> str:
    """CSV files holding only ``columns`` of each table (None: every column)."""
    folder = tmp_path / "export"
    folder.mkdir(exist_ok=True)
    for name, rows in tables.items():
        cols = columns.get(name) or list(rows[0])
        with open(folder / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows([r.get(c, "") for c in cols] for r in rows)
    return str(folder)


def property_export(seed: int, day: date):
    """A small property (two plans per room type, 19 % tax), one night in house for every stay,
    every anomaly type planted twice, and charges that only look like anomalies."""
    rng = random.Random(seed)
    d = day.isoformat()
    rooms = [{"room_number": str(101 + i), "room_type": "KING" if i % 2 else "TWIN", "floor": 1, "status": "Clean"}
             for i in range(40)]
    rates = {("BAR", "KING"): 200.0, ("CORP", "KING"): 170.0, ("BAR", "TWIN"): 140.0, ("CORP", "TWIN"): 120.0}
    plans = [{"code": c, "room_type": t, "nightly_rate": r, "tax_rate": 0.19} for (c, t), r in rates.items()]
    res, charges, truth = [], [], set()
    for i, room in enumerate(rooms[:30]):
        conf, plan = f"C{i:03d}", rng.choice(["BAR", "CORP"])
        rate = rates[(plan, room["room_type"])]
        res.append({"confirmation": conf, "room_number": room["room_number"], "room_type": room["room_type"],
                    "arrival": (day - timedelta(days=1)).isoformat(), "departure": (day + timedelta(days=1)).isoformat(),
                    "status": "InHouse", "rate_plan": plan, "nightly_rate": rate})
        for night in (day - timedelta(days=1), day):
            n = night.isoformat()
            charges += [{"charge_id": f"{conf}-r{n}", "confirmation": conf, "posted_at": f"{n}T23:00:00",
                         "code": "ROOM", "amount": rate},
                        {"charge_id": f"{conf}-t{n}", "confirmation": conf, "posted_at": f"{n}T23:00:01",
                         "code": "TAX", "amount": round(rate * 0.19, 2)}]
    by_id = {c["charge_id"]: c for c in charges}
    confs = [r["confirmation"] for r in res]
    plant = iter(confs)
    for _ in range(2):
        c = next(plant)  # a legitimate spa treatment at noon, then one posted twice a minute apart
        charges += [{"charge_id": f"{c}-{k}", "confirmation": c, "posted_at": f"{d}T{t}", "code": "SPA", "amount": 80.0}
                    for k, t in (("spa1", "12:00:00"), ("spa2", "19:20:00"), ("spa3", "19:21:00"))]
        truth.add(("DUPLICATE_CHARGE", c))
        c = next(plant)
        del by_id[f"{c}-r{d}"]
        truth.add(("MISSING_ROOM_CHARGE", c))
        c = next(plant)  # charged a rate no plan has, the tax posted on it
        by_id[f"{c}-r{d}"]["amount"] -= 25.0
        by_id[f"{c}-t{d}"]["amount"] = round(by_id[f"{c}-r{d}"]["amount"] * 0.19, 2)
        truth.add(("RATE_MISMATCH", c))
        c = next(plant)
        by_id[f"{c}-t{d}"]["amount"] += 4.0
        truth.add(("TAX_MISMATCH", c))
    for _ in range(2):  # decoys: a repeat hours apart, a reversed duplicate
        c = next(plant)
        charges += [{"charge_id": f"{c}-b1", "confirmation": c, "posted_at": f"{d}T13:00:00", "code": "FNB",
                     "amount": 9.5},
                    {"charge_id": f"{c}-b2", "confirmation": c, "posted_at": f"{d}T21:30:00", "code": "FNB",
                     "amount": 9.5}]
        c = next(plant)
        charges += [{"charge_id": f"{c}-m{k}", "confirmation": c, "posted_at": f"{d}T18:0{k}:00", "code": "MINIBAR",
                     "amount": a} for k, a in ((1, 6.0), (2, 6.0), (5, -6.0))]
    charges = [c for c in charges if c["charge_id"] in by_id or not c["charge_id"].endswith(f"-r{d}")]
    return {"rooms": rooms, "rate_plans": plans, "reservations": res, "charges": charges}, truth


def audit(instance, clock, day: date) -> set[tuple[str, str]]:
    r = registry.get("night-audit").run(Context(db=instance.db(), hotel_id=HOTEL, now=clock.now()),
                                        {"businessDate": day.isoformat()})
    return {(f["type"], f["confirmation"]) for f in r.findings}


@pytest.mark.parametrize("columns", [None, NO_ROOM_TYPE, REQUIRED], ids=["full", "no room_type", "required only"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_planted_anomaly_and_nothing_else_whatever_the_export_leaves_out(tmp_path, instance, clock, columns,
                                                                                 seed):
    day = date(2026, 5, 20)
    tables, truth = property_export(seed, day)
    importer.import_dir(instance.db(), export(tmp_path, tables, columns or {}), HOTEL)
    assert audit(instance, clock, day) == truth


def test_without_a_room_type_the_tax_is_checked_at_the_rate_of_the_rooms_type(tmp_path, instance, clock):
    db = instance.db()
    db["rooms"].insert({"hotel_id": HOTEL, "room_number": "101", "room_type": "SUITE", "floor": 1, "status": "Clean"})
    db["rate_plans"].insert_all([{"hotel_id": HOTEL, "code": "BAR", "room_type": "SUITE", "nightly_rate": 300.0,
                                  "tax_rate": 0.07},
                                 {"hotel_id": HOTEL, "code": "BAR", "room_type": "KING", "nightly_rate": 150.0,
                                  "tax_rate": 0.19}])
    db["reservations"].insert({"hotel_id": HOTEL, "confirmation": "S1", "room_number": "101", "rate_plan": "BAR",
                               "arrival": "2026-05-20", "departure": "2026-05-22", "status": "InHouse"})
    db["charges"].insert_all([{"hotel_id": HOTEL, "charge_id": "S1-r", "confirmation": "S1",
                               "posted_at": "2026-05-20T23:00:00", "code": "ROOM", "amount": 300.0},
                              {"hotel_id": HOTEL, "charge_id": "S1-t", "confirmation": "S1",
                               "posted_at": "2026-05-20T23:00:01", "code": "TAX", "amount": 57.0}])  # 19 %, not 7 %
    r = registry.get("night-audit").run(Context(db=db, hotel_id=HOTEL, now=clock.now()), {"businessDate": "2026-05-20"})
    assert [(f["type"], f["amount"]) for f in r.findings] == [("TAX_MISMATCH", 36.0)]


def test_a_duplicate_beside_a_legitimate_third_charge_is_one_finding_about_the_repeat(instance, clock):
    db = instance.db()
    db["reservations"].insert({"hotel_id": HOTEL, "confirmation": "D1", "arrival": "2026-05-19",
                               "departure": "2026-05-25", "status": "InHouse"})
    db["charges"].insert_all([{"hotel_id": HOTEL, "charge_id": f"D1-{k}", "confirmation": "D1", "code": "SPA",
                               "posted_at": f"2026-05-20T{t}", "amount": 80.0}
                              for k, t in (("a", "09:00:00"), ("b", "19:20:00"), ("c", "19:21:00"),
                                           ("d", "22:00:00"))])
    r = registry.get("night-audit").run(Context(db=db, hotel_id=HOTEL, now=clock.now()), {"businessDate": "2026-05-20"})
    dups = [f for f in r.findings if f["type"] == "DUPLICATE_CHARGE"]
    assert [(f["chargeIds"], f["amount"]) for f in dups] == [(["D1-b", "D1-c"], 80.0)]
