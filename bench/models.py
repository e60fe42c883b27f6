"""Model quality, side by side with a simple baseline, and run time on a hotel-sized property.

* forecasting: MAPE of rooms occupied at 7/14/28 days out on both hotels of
  ../shared/data/hotel_bookings.csv.gz, rolling origin: the blend's weight and window
  chosen on the cut-offs of 2016, reported on those of 2017 (which the choice never
  saw) against additive pickup and same day last year;
* night-audit: precision and recall on planted anomalies of every type among clean
  folios (several seeds), against a baseline that flags every repeated code+amount;
* task-routing: total cost against the brute-force optimum and a greedy router on
  small random instances;
* run time of each model through the runner on a 120-room property with 90 days of
  folios and the City Hotel booking history.

    python bench/models.py            # ~1 minute
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import click
import numpy as np

sys.path[0] = str(Path(__file__).resolve().parents[1])  # not bench/: bench/sync.py would shadow `sync`

from kiosk import config as config_mod  # noqa: E402
from kiosk.instance import Instance  # noqa: E402
from kiosk.models import runner  # noqa: E402
from kiosk.models.forecasting import History, forecast  # noqa: E402
from kiosk.models.task_routing import INFEASIBLE, cost_matrix  # noqa: E402
from kiosk.property import bookings  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hotel_bookings.csv.gz"
HOTEL = "demo"


def instance(root: Path) -> Instance:
    inst = Instance(config_mod.load(None, env={}, overrides={
        "data_dir": str(root), "property": {"hotels": [HOTEL], "issuer": HOTEL, "kiosk_id": "bench"}}))
    inst.init()
    return inst


# --- forecasting ----------------------------------------------------------------------------

#: the blend's variants the choice is made among: (level weight, recent nights); weight 0 is additive pickup
BLENDS = [(w, n) for w in (0.25, 0.5, 0.75, 1.0) for n in (7, 14, 28)]
CHOOSE = (date(2016, 1, 1), date(2016, 12, 31), 6)   # cut-offs the blend is chosen on (first, last, step)
REPORT = (date(2017, 1, 1), date(2017, 8, 3), 3)     # cut-offs it is reported on (+28 days: end of the data)


def forecast_errors(h: History, actual: np.ndarray, origin: int, cutoffs: tuple, variants: dict) -> dict:
    """MAPE of rooms occupied per variant and lead (7, 14, 28) over rolling cut-offs."""
    first, last, step = cutoffs
    errors = {name: {7: [], 14: [], 28: []} for name in [*variants, "same day last year"]}
    for as_of in range(first.toordinal(), last.toordinal() + 1, step):
        for name, kw in variants.items():
            daily, _ = forecast(h, as_of, 28, **kw)
            for lead in (7, 14, 28):
                a = actual[as_of + lead - origin]
                if a > 0:
                    errors[name][lead].append(abs(daily[lead - 1]["roomsOccupied"] - a) / a)
        for lead in (7, 14, 28):
            a = actual[as_of + lead - origin]
            if a > 0:
                errors["same day last year"][lead].append(abs(actual[as_of + lead - 364 - origin] - a) / a)
    return {name: {lead: 100 * float(np.mean(v)) for lead, v in by_lead.items()} for name, by_lead in errors.items()}


def bench_forecasting() -> list[list]:
    """The blend's weight and window chosen on the 2016 cut-offs of both hotels, then reported on
    the 2017 ones (which the choice never saw), against additive pickup and same day last year."""
    from kiosk.models import forecasting

    hotels = {name: History.from_rows(list(bookings.rows(DATA, name))) for name in ("City Hotel", "Resort Hotel")}
    origin = date(2015, 1, 1).toordinal()
    actual = {name: h.actual_table(origin, date(2017, 12, 31).toordinal()) for name, h in hotels.items()}
    variants = {f"blend w={w} last {n}": {"method": "blend", "level_weight": w, "recent": n} for w, n in BLENDS}
    variants["additive"] = {"method": "additive"}
    chosen_on = {}
    with click.progressbar(list(hotels), label="forecasting: choosing the blend on 2016", file=sys.stderr) as bar:
        for name in bar:
            chosen_on[name] = forecast_errors(hotels[name], actual[name], origin, CHOOSE, variants)
    score = {v: np.mean([chosen_on[hn][v][lead] for hn in hotels for lead in (7, 14, 28)]) for v in variants}
    best = min((v for v in variants if v != "additive"), key=score.get)
    shipped = f"blend w={forecasting.LEVEL_WEIGHT} last {forecasting.RECENT_NIGHTS}"
    rows = [["forecasting", f"the blend chosen on {CHOOSE[0]}..{CHOOSE[1]} cut-offs (every {CHOOSE[2]} days), both"
             f" hotels, mean MAPE 7/14/28 days out, among {len(BLENDS)} weights x windows",
             f"{best}: {score[best]:.2f} %" + ("" if best == shipped else f" (shipped: {shipped}, {score[shipped]:.2f} %)"),
             f"{score['additive']:.2f} % additive pickup", "choose on 2016, report on 2017"]]
    report = {}
    with click.progressbar(list(hotels), label="forecasting: reporting on 2017", file=sys.stderr) as bar:
        for name in bar:
            report[name] = forecast_errors(hotels[name], actual[name], origin, REPORT,
                                           {"chosen": variants[shipped], "additive": variants["additive"]})
    for name in hotels:
        for lead in (7, 14, 28):
            rows.append([f"forecasting, {name}", f"MAPE rooms occupied, {lead} days out, 2017 cut-offs"
                         f" (2016: {chosen_on[name][shipped][lead]:.1f} % vs {chosen_on[name]['additive'][lead]:.1f} %)",
                         f"{report[name]['chosen'][lead]:.1f} %",
                         f"{report[name]['additive'][lead]:.1f} % additive pickup; "
                         f"{report[name]['same day last year'][lead]:.1f} % same day last year",
                         "better than additive pickup"])
    return rows


# --- a hotel-sized property with planted folio anomalies -------------------------------------

TYPES = ("DUPLICATE_CHARGE", "MISSING_ROOM_CHARGE", "RATE_MISMATCH", "TAX_MISMATCH", "OPEN_BALANCE",
         "NO_SHOW_CANDIDATE")


#: which columns each kind of export carries (docs/property-data.md; required ones always)
EXPORTS = {
    "full export": None,
    "no room_type": {"reservations": ("confirmation", "guest_name", "room_number", "arrival", "departure", "status",
                                      "rate_plan", "nightly_rate", "currency", "language")},
    "required columns only": {"reservations": ("confirmation", "arrival", "departure", "status"),
                              "charges": ("charge_id", "confirmation", "posted_at", "code", "amount"),
                              "rooms": ("room_number", "room_type", "floor", "status")},
}


def property_with_anomalies(db, seed: int, start: date, days: int = 90, rooms: int = 120, per_type: int = 4,
                            export: dict | None = None, folder: Path | None = None):
    """Clean folios for every stay, then ``per_type`` anomalies of each type; returns the truth.

    Another property's habits: two rate plans (BAR and a corporate rate 10 % below) per room
    type, a tax rate of 7, 10 or 19 %, reservations on rooms of their type.  Half the planted
    duplicates are a posting repeated a minute apart beside a legitimate third charge of the
    same code and amount hours earlier; clean folios also hold such legitimate repeats hours
    apart and reversed duplicates (neither is a finding).  With ``export`` (a column list per
    file) the data goes through the real importer as CSV files holding only those columns."""
    rng = random.Random(seed)
    tax = rng.choice([0.07, 0.10, 0.19])
    room_rows = [{"hotel_id": HOTEL, "room_number": str(100 * (1 + i // 30) + i % 30), "floor": 1 + i // 30,
                  "room_type": "KING" if i % 3 else "TWIN", "status": "Clean", "occupied": 0} for i in range(rooms)]
    by_type = {t: [r["room_number"] for r in room_rows if r["room_type"] == t] for t in ("KING", "TWIN")}
    base_rate = {"KING": 150.0, "TWIN": 120.0}
    plans = [{"hotel_id": HOTEL, "code": code, "room_type": t, "nightly_rate": round(r * f, 2), "tax_rate": tax}
             for t, r in base_rate.items() for code, f in (("BAR", 1.0), ("CORP", 0.9))]
    res, charges, truth = [], [], set()
    n = 0
    for day in range(days):
        d = start + timedelta(days=day)
        for _ in range(rng.randint(20, 30)):  # arrivals
            n += 1
            room_type = rng.choice(["KING", "TWIN"])
            plan = rng.choice(["BAR", "BAR", "CORP"])
            rate = round(base_rate[room_type] * (1.0 if plan == "BAR" else 0.9), 2)
            nights = rng.randint(1, 4)
            dep = d + timedelta(days=nights)
            status = "CheckedOut" if dep <= start + timedelta(days=days - 1) else "InHouse"
            conf = f"R{n:05d}"
            res.append({"hotel_id": HOTEL, "confirmation": conf, "arrival": d.isoformat(), "departure": dep.isoformat(),
                        "status": status, "room_type": room_type, "rate_plan": plan, "nightly_rate": rate,
                        "room_number": rng.choice(by_type[room_type]), "guest_name": conf, "adults": 2, "children": 0,
                        "vip": 0, "currency": "EUR", "language": "en"})
            total = 0.0
            for k in range(nights):
                night = (d + timedelta(days=k)).isoformat()
                charges += [{"hotel_id": HOTEL, "charge_id": f"{conf}-r{k}", "confirmation": conf,
                             "posted_at": f"{night}T23:00:00", "code": "ROOM", "amount": rate, "quantity": 1},
                            {"hotel_id": HOTEL, "charge_id": f"{conf}-t{k}", "confirmation": conf,
                             "posted_at": f"{night}T23:00:01", "code": "TAX", "amount": round(rate * tax, 2),
                             "quantity": 1}]
                total += rate + round(rate * tax, 2)
                if rng.random() < 0.3:
                    amt = float(rng.choice([12.5, 18.0, 42.5, 7.0]))
                    charges.append({"hotel_id": HOTEL, "charge_id": f"{conf}-f{k}", "confirmation": conf,
                                    "posted_at": f"{night}T19:{rng.randint(10, 59)}:00", "code": "FNB", "amount": amt,
                                    "quantity": 1})
                    total += amt
            if status == "CheckedOut":
                charges.append({"hotel_id": HOTEL, "charge_id": f"{conf}-pay", "confirmation": conf,
                                "posted_at": f"{dep.isoformat()}T10:00:00", "code": "PAYMENT", "amount": -round(total, 2),
                                "quantity": 1})
    by_id = {c["charge_id"]: c for c in charges}
    stays = {r["confirmation"]: r for r in res}
    audit_day = start + timedelta(days=days - 2)
    d = audit_day.isoformat()
    in_house = [r for r in res if r["arrival"] <= d < r["departure"]]
    leaving = [r for r in res if r["departure"] == d and r["status"] == "CheckedOut"]
    picks = rng.sample(in_house, 4 * per_type + 12)
    picks, decoys = picks[:4 * per_type], picks[4 * per_type:]
    for i, r in enumerate(picks):
        conf, kind = r["confirmation"], TYPES[i // per_type]
        k = (audit_day - date.fromisoformat(r["arrival"])).days
        if kind == "DUPLICATE_CHARGE" and i % 2:
            # a legitimate spa charge at noon, and the same charge posted twice a minute apart at night
            for cid, t in (("spa1", "12:30"), ("spa2", "19:20"), ("spa3", "19:21")):
                charges.append({"hotel_id": HOTEL, "charge_id": f"{conf}-{cid}", "confirmation": conf,
                                "posted_at": f"{d}T{t}:00", "code": "SPA", "amount": 60.0, "quantity": 1})
        elif kind == "DUPLICATE_CHARGE":
            charges.append({**by_id[f"{conf}-r{k}"], "charge_id": f"{conf}-dup", "posted_at": f"{d}T23:05:00"})
        elif kind == "MISSING_ROOM_CHARGE":
            charges.remove(by_id[f"{conf}-r{k}"])
        elif kind == "RATE_MISMATCH":
            by_id[f"{conf}-r{k}"]["amount"] -= 20.0
            by_id[f"{conf}-t{k}"]["amount"] = round(by_id[f"{conf}-r{k}"]["amount"] * tax, 2)
        elif kind == "TAX_MISMATCH":
            by_id[f"{conf}-t{k}"]["amount"] += 3.0
        truth.add((kind, conf))
    for j, r in enumerate(decoys):  # not findings: a repeat hours apart, a reversed duplicate
        conf = r["confirmation"]
        if j % 2:
            for cid, t in (("bar1", "13:05"), ("bar2", "21:40")):
                charges.append({"hotel_id": HOTEL, "charge_id": f"{conf}-{cid}", "confirmation": conf,
                                "posted_at": f"{d}T{t}:00", "code": "FNB", "amount": 9.5, "quantity": 1})
        else:
            for cid, t, amt in (("mb1", "18:00", 6.0), ("mb2", "18:01", 6.0), ("mbv", "18:30", -6.0)):
                charges.append({"hotel_id": HOTEL, "charge_id": f"{conf}-{cid}", "confirmation": conf,
                                "posted_at": f"{d}T{t}:00", "code": "MINIBAR", "amount": amt, "quantity": 1})
    for r in rng.sample(leaving, per_type):
        charges.append({"hotel_id": HOTEL, "charge_id": f"{r['confirmation']}-late", "confirmation": r["confirmation"],
                        "posted_at": f"{d}T11:00:00", "code": "MINIBAR", "amount": 9.0, "quantity": 1})
        truth.add(("OPEN_BALANCE", r["confirmation"]))
    for i in range(per_type):
        conf = f"NS{i}"
        res.append({**stays[picks[0]["confirmation"]], "confirmation": conf, "arrival": d,
                    "departure": (audit_day + timedelta(days=2)).isoformat(), "status": "Confirmed"})
        truth.add(("NO_SHOW_CANDIDATE", conf))
    tables = {"rooms": room_rows, "rate_plans": plans, "reservations": res, "charges": charges}
    if export is None:
        for table, rows in tables.items():
            db[table].insert_all(rows)
        return audit_day, truth
    from kiosk.property import importer

    folder.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        cols = export.get(table) or [c for c in rows[0] if c != "hotel_id"]
        with open(folder / f"{table}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows([r.get(c, "") for c in cols] for r in rows)
    importer.import_dir(db, folder, HOTEL)
    return audit_day, truth


def bench_night_audit(root: Path, seeds: int = 5) -> list[list]:
    rows = []
    for name, export in EXPORTS.items():
        tp = fp = fn = btp = bfp = bfn = errors = 0
        with click.progressbar(range(seeds), label=f"night-audit: {name}", file=sys.stderr) as bar:
            for seed in bar:
                inst = instance(root / f"audit-{name.replace(' ', '-')}-{seed}")
                day, truth = property_with_anomalies(inst.db(), seed, date(2026, 8, 1), export=export,
                                                     folder=root / f"export-{name.replace(' ', '-')}-{seed}")
                out = runner.run(inst, "night-audit", {"businessDate": day.isoformat()}, hotel_id=HOTEL)
                errors += out["status"] != "success"  # a run that fails finds nothing
                found = {(f["type"], f["confirmation"]) for f in out.get("findings", [])}
                tp, fp, fn = tp + len(found & truth), fp + len(found - truth), fn + len(truth - found)
                # baseline: every repeated (reservation, code, amount) of the day is a duplicate, nothing else
                dup = inst.db().execute("SELECT confirmation FROM charges WHERE substr(posted_at, 1, 10) = ? GROUP BY"
                                        " confirmation, code, amount HAVING count(*) > 1",
                                        [day.isoformat()]).fetchall()
                base = {("DUPLICATE_CHARGE", c[0]) for c in dup}
                btp, bfp, bfn = btp + len(base & truth), bfp + len(base - truth), bfn + len(truth - base)
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        bp, br = btp / max(1, btp + bfp), btp / max(1, btp + bfn)
        rows.append(["night-audit", f"precision / recall, {seeds} properties x 24 planted anomalies, {name}",
                     f"{p:.3f} / {r:.3f}" + (f" ({errors} runs failed)" if errors else ""),
                     f"{bp:.3f} / {br:.3f} repeated-charge rule", ">= 0.95 / 0.95"])
    return rows


# --- repeated runs and two kiosks (issue 11) ---------------------------------------------------

def bench_actions(root: Path) -> list[list]:
    """Actions taken per subject when billing-detection and maintenance run four times for one
    hotel: a manual run, the scheduled run, a rerun at the first kiosk, the scheduled run at a
    second kiosk (the same property), both kiosks then syncing with the reference cloud."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from replicas import Cloud, Site
    from test_model_actions import plant_assets

    from kiosk.clock import FakeClock

    start = date(2026, 2, 1)
    audit_day = start + timedelta(days=88)
    (root / "actions").mkdir(parents=True, exist_ok=True)
    cloud = Cloud(root / "actions", FakeClock((audit_day.toordinal() - date(1970, 1, 1).toordinal() + 1) * 86400.0
                                              + 3 * 3600))  # 03:00 the next morning
    sites = [Site(root / "actions", name, cloud) for name in ("lobby-1", "lobby-2")]
    for site in sites:
        property_with_anomalies(site.db, 0, start)
        plant_assets(site.db, site.clock.now())
    day = audit_day.isoformat()
    proposed = {"billing-detection": 0, "maintenance": 0}
    subjects = {"billing-detection": set(), "maintenance": set()}
    for site, runs in ((sites[0], 3), (sites[1], 1)):
        for _ in range(runs):
            for model, payload in (("billing-detection", {"businessDate": day}), ("maintenance", {})):
                out = runner.run(site.inst, model, payload, hotel_id=HOTEL)
                # before: every proposal of every run acted (maintenance proposed each asset at risk)
                proposed[model] += len(out["actionsTriggered"]) if model != "maintenance" else \
                    sum(a["risk"] >= out["outputs"]["threshold"] for a in out["outputs"]["assets"])
                subjects[model] |= {a["actionKey"] for a in out["actionsTriggered"]}
            site.clock.t += 600
    for site in sites:
        site.pusher.drain()
    local = [site.db.execute("SELECT count(*) FROM tasks WHERE type = 'approval'").fetchone()[0] for site in sites]
    local_pm = [site.db.execute("SELECT count(*) FROM work_orders WHERE type = 'preventive'").fetchone()[0]
                for site in sites]
    cloud_pm = cloud.db.execute("SELECT count(*) FROM work_orders WHERE type = 'preventive'").fetchone()[0]
    cloud_approvals = cloud.db.execute("SELECT count(*) FROM events WHERE kind = 'task.created'").fetchone()[0]
    nb, nm = len(subjects["billing-detection"]), len(subjects["maintenance"])
    return [["model actions", f"4 runs (manual, scheduled, rerun; 2nd kiosk): approvals for {nb} corrections",
             f"{local[0]} at kiosk 1, {local[1]} at kiosk 2, {cloud_approvals} in the cloud",
             f"{proposed['billing-detection']} every run acting (before: one per proposal per run)", "one per subject"],
            ["model actions", f"the same 4 runs: preventive work orders for {nm} assets at risk",
             f"{local_pm[0]} at kiosk 1, {local_pm[1]} at kiosk 2, {cloud_pm} in the cloud",
             f"{proposed['maintenance']} every run acting", "one per asset and horizon"]]


# --- guest messaging: the question's language (issue 11) ---------------------------------------

FAQ3 = {  # the hotel's FAQ in three languages
    "wifi": {"en": ("What is the wifi password?", "Join Harbor-Guest; the password is on your key card sleeve."),
             "de": ("Wie lautet das WLAN-Passwort?", "Netz Harbor-Guest; das Passwort steht auf der Kartenhülle."),
             "fr": ("Quel est le mot de passe du wifi ?", "Réseau Harbor-Guest ; le mot de passe est sur la pochette.")},
    "breakfast": {"en": ("When is breakfast served?", "From 6:30 to 10:30 in the Lighthouse restaurant."),
                  "de": ("Wann gibt es Frühstück?", "Von 6:30 bis 10:30 Uhr im Restaurant Lighthouse."),
                  "fr": ("À quelle heure est le petit-déjeuner ?", "De 6h30 à 10h30 au restaurant Lighthouse.")},
    "parking": {"en": ("Where can I park my car?", "In the garage under the hotel, 18 EUR per night."),
                "de": ("Wo kann ich mein Auto parken?", "In der Garage unter dem Hotel, 18 EUR pro Nacht."),
                "fr": ("Où puis-je garer ma voiture ?", "Au garage sous l'hôtel, 18 EUR par nuit.")},
    "checkout": {"en": ("What time is checkout?", "Checkout is until 11:00; ask us for a late checkout."),
                 "de": ("Wann ist der Check-out?", "Check-out bis 11:00 Uhr; fragen Sie nach einem späten Check-out."),
                 "fr": ("À quelle heure est le départ ?", "Le départ est avant 11h00 ; demandez un départ tardif.")},
    "pool": {"en": ("Is there a swimming pool?", "The pool on the roof is open from 7:00 to 21:00."),
             "de": ("Gibt es ein Schwimmbad?", "Der Pool auf dem Dach ist von 7 bis 21 Uhr geöffnet."),
             "fr": ("Y a-t-il une piscine ?", "La piscine sur le toit est ouverte de 7h à 21h.")},
}
#: questions as guests type them, not the FAQ's words (held out: the detector was not written from these)
ASKED = [("wifi", "en", "how do I get on the internet, what's the wifi code"), ("wifi", "en", "wifi password please"),
         ("wifi", "de", "Wie ist das Passwort für das WLAN?"), ("wifi", "de", "ich brauche das WLAN Passwort"),
         ("wifi", "fr", "c'est quoi le mot de passe wifi"), ("wifi", "fr", "le wifi, quel mot de passe ?"),
         ("breakfast", "en", "what time can I have breakfast"), ("breakfast", "en", "is breakfast served early"),
         ("breakfast", "de", "Ab wann gibt es morgens Frühstück?"), ("breakfast", "de", "wo ist das Frühstück"),
         ("breakfast", "fr", "le petit-déjeuner est servi quand ?"), ("breakfast", "fr", "où est le petit-déjeuner"),
         ("parking", "en", "can I park the car at the hotel"), ("parking", "en", "where do I leave my car"),
         ("parking", "de", "Gibt es hier einen Parkplatz für mein Auto?"), ("parking", "de", "wo parke ich das Auto"),
         ("parking", "fr", "je peux garer la voiture où ?"), ("parking", "fr", "y a-t-il un parking pour ma voiture"),
         ("checkout", "en", "when do I have to check out"), ("checkout", "en", "what is the checkout time"),
         ("checkout", "de", "Bis wann muss ich auschecken, wann ist Check-out?"), ("checkout", "de", "Check-out Zeit?"),
         ("checkout", "fr", "le départ, c'est à quelle heure ?"), ("checkout", "fr", "quelle est l'heure du départ"),
         ("pool", "en", "do you have a pool"), ("pool", "en", "when is the swimming pool open"),
         ("pool", "de", "Hat das Hotel ein Schwimmbad?"), ("pool", "de", "wann ist der Pool geöffnet"),
         ("pool", "fr", "est-ce qu'il y a une piscine"), ("pool", "fr", "la piscine est ouverte quand ?")]


def bench_messaging(root: Path) -> list[list]:
    """Right answers, in the question's language, to guests whose profile says another language."""
    from kiosk.models.guest_messaging import answer, detect_language

    inst = instance(root / "messaging")
    db = inst.db()
    db["faq"].insert_all([{"hotel_id": HOTEL, "faq_id": f, "language": lang, "question": q, "answer": a}
                          for f, by_lang in FAQ3.items() for lang, (q, a) in by_lang.items()])
    rows = list(db.query("SELECT * FROM faq WHERE hotel_id = ?", [HOTEL]))
    faq = {lang: [r for r in rows if r["language"] == lang] for lang in ("en", "de", "fr")}
    ours = base = detected = n = 0
    for topic, lang, q in ASKED:
        for profile in ("en", "de", "fr"):
            if profile == lang:
                continue
            n += 1
            asked = detect_language(q, default=profile)
            detected += asked == lang
            best, score = answer(faq[asked], q)
            ours += asked == lang and best is not None and best["faq_id"] == topic and score >= 0.3
            best, score = answer(faq[profile], q)  # before: the profile's FAQ, whatever the question's language
            base += best is not None and best["faq_id"] == topic and score >= 0.3
    return [["guest-messaging", f"right FAQ answer, {len(ASKED)} questions x the 2 profile languages they are not in"
             f" (language detected {detected}/{n})", f"{ours / n:.3f} (in the question's language)",
             f"{base / n:.3f} FAQ of the profile's language (before; never in the question's)", ""]]


# --- routing ---------------------------------------------------------------------------------

def brute_force(cost: np.ndarray) -> float:
    """The cheapest assignment by trying them all: each task to a free feasible slot, or to none."""
    n_tasks, n_slots = cost.shape

    def best(i: int, used: frozenset) -> float:
        if i == n_tasks:
            return 0.0
        options = [best(i + 1, used)]  # leave task i unassigned
        options += [cost[i, j] + best(i + 1, used | {j}) for j in range(n_slots)
                    if j not in used and cost[i, j] < INFEASIBLE / 2]
        return min(options)
    return best(0, frozenset())


def bench_routing(instances: int = 200) -> list[list]:
    from scipy.optimize import linear_sum_assignment

    rng = random.Random(3)
    ours = opt = greedy = 0.0
    greedy_unassigned = ours_unassigned = 0
    for _ in range(instances):
        floors = {str(i): rng.randint(1, 6) for i in range(20)}
        skills = ["plumbing", "electric", "cleaning"]
        staff = [{"staff_id": f"s{i}", "skills_set": set(rng.sample(skills, rng.randint(1, 2))),
                  "load": rng.randint(0, 2), "at_floor": rng.randint(1, 6)} for i in range(3)]
        slots = [s for s in staff for _ in range(3 - s["load"])]
        tasks = [{"room_number": str(rng.randrange(20)), "required_skill": rng.choice(skills),
                  "priority": rng.choice(["normal", "high"])} for _ in range(rng.randint(2, 5))]
        cost = cost_matrix(tasks, slots, floors)
        r, c = linear_sum_assignment(cost)
        pairs = [(i, j) for i, j in zip(r, c, strict=True) if cost[i, j] < INFEASIBLE / 2]
        ours += sum(cost[i, j] for i, j in pairs)
        ours_unassigned += len(tasks) - len(pairs)
        opt += brute_force(cost)
        used, gsum = set(), 0.0
        for i in range(len(tasks)):
            options = [(cost[i, j], j) for j in range(len(slots)) if j not in used and cost[i, j] < INFEASIBLE / 2]
            if options:
                v, j = min(options)
                used.add(j)
                gsum += v
            else:
                greedy_unassigned += 1
        greedy += gsum
    return [["task-routing", f"objective vs brute-force optimum, {instances} random instances",
             f"{ours:,.0f} (optimum {opt:,.0f}); {ours_unassigned} tasks left",
             f"{greedy:,.0f} greedy; {greedy_unassigned} tasks left", "= optimum"]]


# --- run time -------------------------------------------------------------------------------

def bench_runtime(root: Path) -> list[list]:
    """Each model through the runner on the demo property (kiosk demo seed) plus the City Hotel history."""
    from kiosk.property import demo

    inst = instance(root / "runtime")
    today = date(2026, 11, 24)
    demo.seed(inst.db(), HOTEL, today)
    bookings.import_bookings(inst.db(), DATA, HOTEL, "City Hotel")
    db = inst.db()
    day = today - timedelta(days=1)
    rows = []
    conf = db.execute("SELECT confirmation FROM reservations WHERE status = 'InHouse' LIMIT 1").fetchone()[0]
    records = [{"guestName": r[0], "arrival": r[1]} for r in
               db.execute("SELECT guest_name, arrival FROM reservations WHERE confirmation LIKE 'D%' LIMIT 200")]
    for model_id, payload in (("night-audit", {"businessDate": day.isoformat()}),
                              ("billing-detection", {"businessDate": day.isoformat()}),
                              ("task-routing", {"at": "10:00"}),
                              ("housekeeping", {"at": "10:00"}),
                              ("staff-agent", {"staffId": "s01"}),
                              ("forecasting", {"asOf": "2017-03-01", "horizonDays": 60}),
                              ("upsell-engine", {"confirmation": conf}),
                              ("guest-messaging", {"confirmation": conf, "question": "when is breakfast"}),
                              ("room-status", {"roomNumber": "101"}),
                              ("maintenance", {}),
                              ("pms-linking", {"records": records}),
                              ("voice-ai", {"text": "please bring two towels to room four one two"})):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            out = runner.run(inst, model_id, payload, hotel_id=HOTEL)
            times.append((time.perf_counter() - t) * 1000)
            assert out["status"] == "success", out
        rows.append([model_id, "run time (ms) on the demo property + 79k bookings of history", f"{min(times):.0f}",
                     "", "< 1000"])
    return rows


# --- room inspection, housekeeping balance, linking ------------------------------------------

def bench_inspection(n: int = 30) -> list[list]:
    """Detection rate and false alarms on room-like scenes, against unaligned differencing."""
    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_models_more import scene

    from kiosk.models.room_status import inspect

    rng = random.Random(5)
    hits = false = base_hits = base_false = 0
    for i in range(n):
        ref = scene(seed=i)
        shift = (rng.randint(-10, 10), rng.randint(-8, 8))
        gain = rng.uniform(0.85, 1.2)
        with_obj, without = scene(seed=i, extra=True, shift=shift, gain=gain), scene(seed=i, shift=shift, gain=gain)
        hits += bool(inspect(ref, with_obj)[0])
        false += bool(inspect(ref, without)[0])

        def naive(img, ref=ref):  # plain |difference| > 40 over more than 0.3 % of the frame, no alignment
            return (cv2.absdiff(ref, img) > 40).mean() > 0.003
        base_hits += naive(with_obj)
        base_false += naive(without)
    return [["room-status", f"inspection: detections / false alarms, {n} scenes (shift ±10 px, light ±20 %)",
             f"{hits}/{n} found, {false}/{n} false alarms",
             f"{base_hits}/{n} found, {base_false}/{n} false alarms (unaligned difference)", ""]]


def bench_housekeeping(root: Path, runs: int = 5) -> list[list]:
    """Spread of credits between attendants, and floors per attendant, against round-robin."""
    import statistics

    from kiosk.models.housekeeping_plan import rooms_to_clean
    from kiosk.property import demo

    spread = floors = base_spread = base_floors = 0.0
    for k in range(runs):
        inst = instance(root / f"hk-{k}")
        demo.seed(inst.db(), HOTEL, date(2026, 11, 24), seed_value=k)
        out = runner.run(inst, "housekeeping", {"at": "09:00"}, hotel_id=HOTEL)["outputs"]
        credits = [a["credits"] for a in out["assignments"]]
        spread += statistics.pstdev(credits)
        floors += statistics.mean(len(a["floors"]) for a in out["assignments"])
        rooms = rooms_to_clean(inst.db(), HOTEL, "2026-11-24")
        n = len(out["assignments"])
        rr = [rooms[i::n] for i in range(n)]  # round-robin in room order
        base_spread += statistics.pstdev([sum(r["credits"] for r in share) for share in rr])
        base_floors += statistics.mean(len({r["floor"] for r in share}) for share in rr)
    return [["housekeeping", f"credit spread (stdev) / floors per attendant, {runs} demo properties",
             f"{spread / runs:.2f} / {floors / runs:.1f}", f"{base_spread / runs:.2f} / {base_floors / runs:.1f} round-robin",
             ""]]


def bench_linking(root: Path, n: int = 400) -> list[list]:
    """Precision and recall on corrupted copies of reservations, against exact name matching."""
    import unicodedata

    from kiosk.property import demo

    inst = instance(root / "linking")
    demo.seed(inst.db(), HOTEL, date(2026, 11, 24))
    rng = random.Random(9)
    res = list(inst.db().query("SELECT confirmation, guest_name, arrival FROM reservations WHERE hotel_id = ?"
                               " ORDER BY confirmation", [HOTEL]))
    picks = rng.sample(res, n)

    def corrupt(name: str) -> str:
        first, last = name.split(" ", 1)
        r = rng.random()
        if r < 0.25:
            return f"{last}, {first}"                                  # swapped, with a comma
        if r < 0.5:
            return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()  # accents dropped
        if r < 0.75:
            i = rng.randrange(1, len(name) - 1)
            return name[:i] + name[i + 1:]                             # a letter missing
        return name.upper()

    records, truth = [], []
    for r in picks:
        arrival = date.fromisoformat(r["arrival"]) + timedelta(days=rng.choice([0, 0, 1, -1]))
        records.append({"guestName": corrupt(r["guest_name"]), "arrival": arrival.isoformat()})
        truth.append(r["confirmation"])
    out = runner.run(inst, "pms-linking", {"records": records}, hotel_id=HOTEL)["outputs"]["links"]
    linked = [(x["confirmation"], t) for x, t in zip(out, truth, strict=True) if x["status"] == "linked"]
    tp = sum(c == t for c, t in linked)
    precision, recall = tp / max(1, len(linked)), tp / n
    by_name: dict[str, list[str]] = {}
    for r in res:
        by_name.setdefault(r["guest_name"], []).append(r["confirmation"])
    exact = [(by_name.get(rec["guestName"], [None])[0], t) for rec, t in zip(records, truth, strict=True)
             if rec["guestName"] in by_name]
    btp = sum(c == t for c, t in exact)
    return [["pms-linking", f"precision / recall, {n} corrupted copies (swaps, accents, typos, case, ±1 day)",
             f"{precision:.3f} / {recall:.3f}",
             f"{btp / max(1, len(exact)):.3f} / {btp / n:.3f} exact name match", ">= 0.95 / 0.95"]]


# --- voice -----------------------------------------------------------------------------------

PHRASES = [("please bring two towels to room four one two", "request_item"),
           ("could i get three more pillows", "request_item"),
           ("i need a blanket", "request_item"),
           ("please make up my room", "clean_room"),
           ("the shower is not working in room three zero five", "report_fault"),
           ("the television is broken", "report_fault"),
           ("can i have a late checkout", "late_checkout"),
           ("what time is breakfast", "question")]
#: held out (issue 11): other phrasings of the same requests, written before the grammar was
#: last changed and never used to change it; the intent parser and the grammar are judged on them
HELD_OUT = [("can you send up some more towels please", "request_item"),
            ("i would like two extra pillows in room five zero two", "request_item"),
            ("could i have a toothbrush", "request_item"),
            ("bring me some water please", "request_item"),
            ("my room needs cleaning", "clean_room"),
            ("please clean room two one four", "clean_room"),
            ("the air conditioning does not work", "report_fault"),
            ("the toilet is broken in room one one zero", "report_fault"),
            ("the internet is not working", "report_fault"),
            ("i would like a late checkout please", "late_checkout"),
            ("where is the gym", "question"),
            ("what time is checkout", "question")]
#: a second held-out list, written before the grammar's synonyms and word forms were added and
#: never used to change them (the first list had been read while changing the parser): the judge
#: that is left untouched
HELD_OUT_2 = [("could you bring up two more blankets", "request_item"),
              ("we need some extra soap in room three one two", "request_item"),
              ("please send a kettle to my room", "request_item"),
              ("i'd like some coffee please", "request_item"),
              ("can someone clean my room please", "clean_room"),
              ("i would like housekeeping to come to room four zero one", "clean_room"),
              ("the heater isn't working", "report_fault"),
              ("the lamp in my room is broken", "report_fault"),
              ("my shower does not work", "report_fault"),
              ("is a late checkout possible", "late_checkout"),
              ("when does the restaurant open", "question"),
              ("where can i find the pool", "question")]
#: a third held-out list, written by someone who never saw the grammar, the parser or the other
#: lists (asked only for requests guests make, of the items, faults and questions the kiosk knows):
#: the fairest judge; neither the grammar nor the parser was changed after it was read
HELD_OUT_3 = [("could i get two extra towels please", "request_item"),
              ("can you send up some more pillows to room three one two", "request_item"),
              ("i need another blanket it's freezing in here", "request_item"),
              ("could we have some bottled water please", "request_item"),
              ("i forgot my toothbrush do you have a spare", "request_item"),
              ("can i borrow an iron", "request_item"),
              ("can someone clean my room please", "clean_room"),
              ("i'd like housekeeping to come by this afternoon", "clean_room"),
              ("could you make up room four zero five", "clean_room"),
              ("my room hasn't been cleaned today", "clean_room"),
              ("please send housekeeping to my room", "clean_room"),
              ("can you have the room serviced while we're out", "clean_room"),
              ("the tv in my room isn't working", "report_fault"),
              ("the air conditioning is broken", "report_fault"),
              ("the shower won't turn on", "report_fault"),
              ("the toilet in room two one eight won't flush", "report_fault"),
              ("the wifi isn't working", "report_fault"),
              ("the bedside lamp is broken", "report_fault"),
              ("can i get a late checkout please", "late_checkout"),
              ("is it possible to check out late tomorrow", "late_checkout"),
              ("could we check out a bit later than usual", "late_checkout"),
              ("i'd like a late check out for room five one one", "late_checkout"),
              ("any chance of a late checkout on sunday", "late_checkout"),
              ("we need to check out late our flight's in the evening", "late_checkout"),
              ("what time is breakfast served", "question"),
              ("when does the pool open", "question"),
              ("where's the gym", "question"),
              ("what time is checkout", "question"),
              ("where is the lift", "question"),
              ("how late is the bar open", "question"),
              ("we've run out of shampoo could you bring some up", "request_item"),
              ("the heater's making a weird noise and won't come on", "report_fault"),
              ("we'd like our sheets changed and the bathroom tidied", "clean_room"),
              ("is the restaurant still doing dinner now", "question"),
              ("can we keep the room a couple of hours past checkout", "late_checkout"),
              ("the mini fridge isn't keeping anything cold", "report_fault")]
#: a fourth list, 60 requests written by someone who had seen neither the grammar, the parser nor
#: the other lists; the wider phrasings of the statistical pass were written before it was read
HELD_OUT_4 = [('could i get a couple more towels sent up please', 'request_item'),
              ('um hi we need an extra pillow in room four one two', 'request_item'),
              ('can someone bring up a cot for the baby', 'request_item'),
              ("i've run out of shampoo could you send some more", 'request_item'),
              ('any chance of a toothbrush and some toothpaste i forgot mine', 'request_item'),
              ('please i need one more blanket it is very cold', 'request_item'),
              ('can i borrow an iron and an ironing board', 'request_item'),
              ('please send two bottles of water to my room', 'request_item'),
              ('i need to borrow a phone charger can you send one up', 'request_item'),
              ('more coffee pods and milk for room seven oh three please', 'request_item'),
              ("er could somebody drop off some extra hangers we've got loads of shirts", 'request_item'),
              ("i'd like a razor and some shaving cream brought up if possible", 'request_item'),
              ('can you send someone to make up the room', 'clean_room'),
              ("we'd like our room cleaned this afternoon please", 'clean_room'),
              ('could housekeeping come to room nine two one', 'clean_room'),
              ("the bin's full could someone come and empty it", 'clean_room'),
              ('please change the sheets today', 'clean_room'),
              ("er hi can we get the room serviced while we're out at lunch", 'clean_room'),
              ('please my room need cleaning today', 'clean_room'),
              ("our room hasn't been done yet today can someone come and do it", 'clean_room'),
              ('please tidy up room three fifteen we made a bit of a mess', 'clean_room'),
              ('could somebody come and hoover the carpet and clean the bathroom', 'clean_room'),
              ('is it possible to have fresh bed linen and the room vacuumed', 'clean_room'),
              ('can you take the rubbish out of our room please thanks', 'clean_room'),
              ("the telly in my room won't turn on", 'report_fault'),
              ('um the air conditioning is just blowing warm air', 'report_fault'),
              ("there's no hot water in the shower", 'report_fault'),
              ("the toilet won't flush in room two oh eight", 'report_fault'),
              ("my key card for room three three four isn't working", 'report_fault'),
              ('the wifi keeps dropping out every few minutes', 'report_fault'),
              ("the heating's broken and it's freezing in here", 'report_fault'),
              ("the sink is blocked and it won't drain", 'report_fault'),
              ("the bedside lamp doesn't come on at all", 'report_fault'),
              ("the safe won't open and my passport's in there", 'report_fault'),
              ("there's water leaking from the ceiling in the bathroom", 'report_fault'),
              ('the fridge is making a really loud buzzing noise all night', 'report_fault'),
              ('can i check out late tomorrow', 'late_checkout'),
              ("would it be possible to keep the room until two o'clock", 'late_checkout'),
              ("our flight's not till the evening can we stay in the room a bit longer", 'late_checkout'),
              ("i'd like a late checkout please", 'late_checkout'),
              ('um could we extend our checkout to one pm', 'late_checkout'),
              ('is there any way we can leave the room later than eleven', 'late_checkout'),
              ('could room six one four have a late check out on sunday', 'late_checkout'),
              ('we need a couple more hours in the room on our last day', 'late_checkout'),
              ('can you push my checkout back to midday', 'late_checkout'),
              ("i'd like to hang on to the room until the afternoon if that's okay", 'late_checkout'),
              ("please can we have late checkout we've got a baby who naps till noon", 'late_checkout'),
              ('is possible for me stay in room more late tomorrow', 'late_checkout'),
              ('what time is checkout', 'question'),
              ("what's the wifi password", 'question'),
              ('when does the restaurant open for dinner', 'question'),
              ("where's the gym", 'question'),
              ('how do i get to the train station from here', 'question'),
              ('what time does breakfast finish', 'question'),
              ('excuse me is the pool open now', 'question'),
              ('where can i find the nearest pharmacy', 'question'),
              ('how do i make an outside call from the room phone', 'question'),
              ('is there a cash machine anywhere nearby', 'question'),
              ("i'm in room eight ten which floor is the spa on", 'question'),
              ('sorry my english not so good where is the lift', 'question')]
#: a fifth list, 60 more by another person who saw none of the above; judged once with the code of
#: the time (spoken 0.700 / 0.662 / 0.704, typed 53/60), then used to write the parser's and the
#: wider phrasings' newer forms and to choose when the classifier reads the statistical pass's words
HELD_OUT_5 = [('um hi could someone bring up two extra towels to room three one five', 'request_item'),
              ("we're out of toilet paper", 'request_item'),
              ('can i get another pillow please', 'request_item'),
              ('hello i need a baby cot for room five twelve', 'request_item'),
              ('could you send up a plug adapter for a uk socket', 'request_item'),
              ("there's no shampoo in the bathroom could you send some up", 'request_item'),
              ('bring me four bottles of water room eight oh two', 'request_item'),
              ("i'd like an extra duvet for the sofa bed please", 'request_item'),
              ('we need more hangers the wardrobe only has three', 'request_item'),
              ('hiya any chance of some more coffee pods for the machine', 'request_item'),
              ('please send a toothbrush and toothpaste to room two two nine', 'request_item'),
              ('my wife needs an iron and ironing board can you have one brought up', 'request_item'),
              ('can housekeeping come and clean my room please', 'clean_room'),
              ('hi room four one seven needs to be made up', 'clean_room'),
              ("um could you send someone to tidy the room while we're at breakfast", 'clean_room'),
              ("the room hasn't been serviced today", 'clean_room'),
              ('please clean room six zero three', 'clean_room'),
              ("i'd like my room cleaned after eleven if possible", 'clean_room'),
              ('we spilled wine on the carpet can someone come and clean it up', 'clean_room'),
              ("hello is it possible to have the room done now we're going out", 'clean_room'),
              ('send the maid to room nine fourteen please', 'clean_room'),
              ('could housekeeping empty the bins and make the beds', 'clean_room'),
              ('sorry nobody cleaned our room yesterday can you send someone today', 'clean_room'),
              ('yeah housekeeping for room three hundred and two please', 'clean_room'),
              ("the tv in my room isn't working", 'report_fault'),
              ('hi the air conditioning in room seven oh eight is making a loud noise and not cooling', 'report_fault'),
              ("there's water leaking from the ceiling in the bathroom", 'report_fault'),
              ('um the shower has no hot water', 'report_fault'),
              ("my door won't lock properly room two fifteen", 'report_fault'),
              ("the toilet won't stop running", 'report_fault'),
              ('wifi keeps dropping out in my room', 'report_fault'),
              ("the safe is stuck and i can't get my passport out", 'report_fault'),
              ("hello the lights in the bedroom don't turn on", 'report_fault'),
              ("the minibar fridge is warm it's not cold at all", 'report_fault'),
              ("the heating's broken and it's really cold in room five five one", 'report_fault'),
              ("sorry the sink is blocked and the water won't drain", 'report_fault'),
              ('can i check out late tomorrow', 'late_checkout'),
              ('is it possible to keep the room until two in the afternoon on our last day', 'late_checkout'),
              ("hi our flight isn't until the evening could we stay in the room a bit longer on sunday", 'late_checkout'),
              ("i'd like a late checkout please room six two zero", 'late_checkout'),
              ('um could we leave at one instead of eleven tomorrow', 'late_checkout'),
              ('we need the room for an extra couple of hours after checkout time', 'late_checkout'),
              ('late check out for room four forty please', 'late_checkout'),
              ('could you push my checkout back a few hours', 'late_checkout'),
              ('is there any way i can hold on to my room till noon on friday', 'late_checkout'),
              ('me and my kids need to stay later tomorrow morning can we check out at twelve thirty', 'late_checkout'),
              ('sorry may i please leave the room later on departure day', 'late_checkout'),
              ("hello i'm not feeling well can i stay in my room past checkout tomorrow", 'late_checkout'),
              ('what time is breakfast served', 'question'),
              ("um where's the gym", 'question'),
              ("what's the wifi password", 'question'),
              ('is the pool open late tonight', 'question'),
              ('hi how do i get to the airport is there a shuttle', 'question'),
              ('do you have parking and how much is it', 'question'),
              ('what time do i have to check out', 'question'),
              ('excuse me which floor is the restaurant on', 'question'),
              ('is there a pharmacy near the hotel', 'question'),
              ('until what hour is the bar open', 'question'),
              ('how late does the spa stay open on sundays', 'question'),
              ('where can i find a taxi to the city centre', 'question')]
#: a sixth list, 60 more by yet another person who saw none of the above, read only after the
#: classifier and its thresholds were fixed: the judge of that change
HELD_OUT_6 = [('hi could i get two more bath towels please', 'request_item'),
              ("um we've got no pillows in here can someone bring a couple up", 'request_item'),
              ('excuse me would it be possible to have a cot sent to room two one six for our baby', 'request_item'),
              ('need a phone charger for an iphone', 'request_item'),
              ("good evening my wife and i would be very grateful for an extra blanket as it's rather chilly tonight", 'request_item'),
              ('please bring iron and ironing board to room four twenty', 'request_item'),
              ('can i have some more shampoo and body wash sent up', 'request_item'),
              ("there aren't any hangers in the wardrobe could you send some", 'request_item'),
              ('ok so can somebody drop off a few bottles of water', 'request_item'),
              ('hiya any chance of some extra milk for the tea in room six oh four', 'request_item'),
              ('kindly send one hair dryer to my room sir', 'request_item'),
              ('could ye send up a pair of slippers and a toothbrush', 'request_item'),
              ('can you send housekeeping to clean my room please', 'clean_room'),
              ("hi our room's a bit of a mess could someone come and tidy it", 'clean_room'),
              ('room three one two needs servicing today', 'clean_room'),
              ('um could the bed sheets be changed the kids spilled juice everywhere', 'clean_room'),
              ('please make up the room while we are at breakfast', 'clean_room'),
              ("the bin's full can someone come and take the rubbish away", 'clean_room'),
              ('good morning we would appreciate it if the maid could come by and freshen up the room this afternoon', 'clean_room'),
              ('i want room cleaning now please', 'clean_room'),
              ('kindly arrange for my room to be cleaned room five oh eight', 'clean_room'),
              ('yo can someone come clean my room', 'clean_room'),
              ('could housekeeping pop round sometime after eleven', 'clean_room'),
              ('sorry we missed the cleaning earlier is it possible to have the room done now', 'clean_room'),
              ("the telly's not working", 'report_fault'),
              ('hi the air conditioning in room two oh nine is blowing warm air', 'report_fault'),
              ("um the shower won't get hot", 'report_fault'),
              ("my key card stopped working i can't get into my room", 'report_fault'),
              ("sorry to bother you but the toilet keeps running and won't stop", 'report_fault'),
              ('the wifi keeps dropping every few minutes', 'report_fault'),
              ('there is problem with the heater it makes loud noise and no heat is coming', 'report_fault'),
              ('the phone in my room has no dial tone', 'report_fault'),
              ("the remote control's dead", 'report_fault'),
              ("the safe is locked and it won't open with my code", 'report_fault'),
              ("excuse me the window in our room doesn't close properly and there's a terrible draught", 'report_fault'),
              ('kettle is broken in room seven one five', 'report_fault'),
              ('can i check out late tomorrow', 'late_checkout'),
              ("hi is it possible to keep the room until two o'clock on sunday", 'late_checkout'),
              ("our flight isn't until the evening could we stay in the room a bit longer", 'late_checkout'),
              ('i need a late checkout please', 'late_checkout'),
              ('um would it be alright if we left at one instead of eleven on our last day', 'late_checkout'),
              ('please extend my checkout time by two hours', 'late_checkout'),
              ('good afternoon my husband and i were hoping to vacate the room a little later on our departure day', 'late_checkout'),
              ('can we hang on to the room till three the baby naps after lunch', 'late_checkout'),
              ('i want to leave later tomorrow not at twelve', 'late_checkout'),
              ('any chance of a later check out for room eight two two', 'late_checkout'),
              ('could i hold the room until evening tomorrow my meeting finishes late', 'late_checkout'),
              ("ok so we'd like to stay past checkout time on friday", 'late_checkout'),
              ("what time's breakfast", 'question'),
              ("hi what's the wifi password", 'question'),
              ('where is the gym', 'question'),
              ('um how late is the pool open tonight', 'question'),
              ('is there somewhere i can leave my bags after checkout', 'question'),
              ('what time do we have to check out', 'question'),
              ('excuse me could you tell me whether there is a pharmacy near the hotel', 'question'),
              ('do you have parking and how much is it per night', 'question'),
              ('how do i get to the airport from here', 'question'),
              ('is the spa open on sundays', 'question'),
              ('does the hotel do a laundry service', 'question'),
              ('until what time they are serving dinner in the restaurant', 'question')]
VOICES = ("en-us", "en-gb", "en+f3", "en+m7")          # espeak-ng: what the grammar was tuned on
SPEEDS = (130, 160, 200)
OTHER_VOICES = ("kal16", "awb", "rms", "slt")          # flite's CMU voices, built from recordings of people
MORE_ESPEAK = ("en-gb-x-rp", "en-gb-scotland", "en-029", "en-us+f2", "en+m3", "en-gb-x-gbclan")  # never tuned on
MORE_SPEEDS = (140, 180)
STRETCH = (1.25, 1.0, 0.8)                             # flite's duration stretch: slow, normal, fast


def speak(engine: str, voice: str, speed, text: str, wav: Path) -> bool:
    import subprocess

    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text]
    else:
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={speed}", "-t", text, "-o", str(wav)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


HELD_OUTS = (("held-out", HELD_OUT), ("second held-out", HELD_OUT_2), ("third held-out", HELD_OUT_3),
             ("fourth held-out", HELD_OUT_4), ("fifth held-out", HELD_OUT_5), ("sixth held-out", HELD_OUT_6))


def bench_voice(root: Path) -> list[list]:
    """Both recognisers side by side on the same clips: Whisper tiny.en (the voice extra; its
    second opinion from pocketsphinx included, ``voice_ai.listen``) and pocketsphinx alone (the
    fallback: ``voice_ai.hear``), each through ``voice_ai.run`` in this process; then the run
    through a model worker, for its memory."""
    import base64
    import shutil
    from contextlib import contextmanager

    from pocketsphinx import Decoder

    from kiosk.models import voice_ai, whisper
    from kiosk.models.base import Context

    @contextmanager
    def recogniser(name: str):
        kept = voice_ai.whisper_ready
        if name == "pocketsphinx":
            voice_ai.whisper_ready = lambda: False
        try:
            yield
        finally:
            voice_ai.whisper_ready = kept

    names = ["whisper-tiny.en", "pocketsphinx"] if whisper.available() else ["pocketsphinx"]
    rows = []
    if len(names) == 1:
        rows.append(["voice-ai", "Whisper", f"skipped: {whisper.reason()}", "", ""])
    spent: dict[str, list[float]] = {n: [] for n in names}
    second = {"asked": 0, "clips": 0}  # Whisper's clips whose request came from pocketsphinx
    suites = [("espeak-ng", VOICES, SPEEDS), ("espeak-ng", MORE_ESPEAK, MORE_SPEEDS), ("flite", OTHER_VOICES, STRETCH)]
    for engine, voices, speeds in suites:
        if shutil.which(engine) is None:
            rows.append(["voice-ai", f"intent accuracy, {engine} voices", f"skipped: {engine} not installed", "", ""])
            continue
        for label, phrases in [("the grammar's requests", PHRASES)] + [(f"{k} phrasings", p) for k, p in HELD_OUTS]:
            open_vocab = Decoder(loglevel="FATAL") if voices is VOICES and phrases is PHRASES else None
            right = dict.fromkeys(names, 0)
            wrong = dict.fromkeys(names, 0)
            base = n = 0
            cases = [(p, v, s) for p in phrases for v in voices for s in speeds][::VOICE_EVERY]
            with click.progressbar(cases, label=f"voice: {engine}, {label}", file=sys.stderr) as bar:
                for (text, intent), voice, speed in bar:
                    wav = root / "v.wav"
                    if not speak(engine, voice, speed, text, wav):
                        continue
                    payload = {"audio": base64.b64encode(wav.read_bytes()).decode()}
                    for name in names:
                        with recogniser(name):
                            started = time.perf_counter()
                            out = voice_ai.run(Context(db=None, hotel_id=HOTEL, now=0.0), payload)
                            spent[name].append(time.perf_counter() - started)
                        right[name] += out.outputs["intent"] == intent
                        wrong[name] += out.outputs["intent"] not in (intent, "unknown")  # a task for the wrong thing
                        if name != "pocketsphinx":
                            second["clips"] += 1
                            second["asked"] += out.outputs["recogniser"] == "pocketsphinx"
                    n += 1
                    if open_vocab is not None:
                        open_vocab.start_utt()
                        open_vocab.process_raw(voice_ai.padded(voice_ai.pcm16k(wav.read_bytes())), full_utt=True)
                        open_vocab.end_utt()
                        hyp = open_vocab.hyp()
                        base += voice_ai.parse_intent(hyp.hypstr if hyp else "")[0] == intent
            kind = f"{engine} voices never tuned on" if voices is MORE_ESPEAK else f"{engine} voices"
            figures = {name: f"{right[name] / max(1, n):.3f} ({wrong[name] / max(1, n):.3f} wrong)" for name in names}
            baseline = f"pocketsphinx {figures['pocketsphinx']}"
            if open_vocab is not None:
                baseline += f"; {base / max(1, n):.3f} same parser on pocketsphinx's open-vocabulary model"
            rows.append(["voice-ai", f"intent accuracy, {label}: {len(phrases)} x {len(voices)} {kind} x "
                         f"{len(speeds)} speeds ({n} clips)", figures.get("whisper-tiny.en", "-"), baseline, ">= 0.95"])
    for name, times in spent.items():
        if times:
            times.sort()
            rows.append(["voice-ai", f"ms per spoken utterance, {name}, median / 90th percentile / max ({len(times)})",
                         f"{times[len(times) // 2] * 1000:.0f} / {times[int(len(times) * 0.9)] * 1000:.0f} / "
                         f"{times[-1] * 1000:.0f}", "", "median < 1000"])
    if second["clips"]:
        rows.append(["voice-ai", "Whisper's clips whose request came from pocketsphinx (its second opinion)",
                     f"{second['asked']}/{second['clips']}", "", ""])
    rows += voice_worker(root)
    for label, phrases in HELD_OUTS:
        typed = sum(voice_ai.parse_intent(t)[0] == i for t, i in phrases)
        rows.append(["voice-ai", f"intent of the typed {label} phrasings ({len(phrases)})",
                     f"{typed}/{len(phrases)}", "", ""])
    return rows


def voice_worker(root: Path) -> list[list]:
    """A spoken request through the runner, in a model worker with the default memory budget: the
    worker's resident memory and the address space it used of its budget (Whisper loads in the
    worker, not in the forkserver: ``preload.in_worker``)."""
    import base64
    import shutil

    from kiosk.models import sandbox

    if shutil.which("espeak-ng") is None:
        return []
    inst = instance(root / "voice-worker")
    wav = root / "w.wav"
    speak("espeak-ng", "en-us", 160, PHRASES[0][0], wav)
    payload = {"audio": base64.b64encode(wav.read_bytes()).decode()}
    outs = [runner.run(inst, "voice-ai", payload, hotel_id=HOTEL, role="staff") for _ in range(3)]
    cfg = inst.config.models
    worker = sandbox.pool(cfg.workers, cfg.memory_limit_mb)._idle[0].proc.pid

    def status(pid: int) -> dict:
        with open(f"/proc/{pid}/status") as f:
            return {k: int(v.split()[0]) // (1 if k == "PPid" else 1024) for k, v in (line.split(":", 1) for line in f)
                    if k in ("VmRSS", "VmHWM", "VmPeak", "PPid")}

    mine = status(worker)
    with open(f"/proc/{worker}/limits") as f:
        limit = next(int(line.split()[3]) for line in f if line.startswith("Max address space")) // 2 ** 20
    server = status(mine["PPid"])  # the forkserver: what a worker starts from (pocketsphinx's models loaded)
    used = mine["VmPeak"] - (limit - cfg.memory_limit_mb)
    return [["voice-ai", "model worker: recogniser; resident MB (peak) / forkserver's resident MB",
             f"{outs[-1]['outputs']['recogniser']}; {mine['VmRSS']} ({mine['VmHWM']}) / {server['VmRSS']}", "", ""],
            ["voice-ai", "model worker: address space used of its budget (models.memory_limit_mb), MB",
             f"{used} of {cfg.memory_limit_mb}", "", "within the budget"]]


SECTIONS = {"night-audit": lambda root: bench_night_audit(root), "routing": lambda root: bench_routing(),
            "housekeeping": lambda root: bench_housekeeping(root), "linking": lambda root: bench_linking(root),
            "inspection": lambda root: bench_inspection(), "forecasting": lambda root: bench_forecasting(),
            "actions": lambda root: bench_actions(root), "guest-messaging": lambda root: bench_messaging(root),
            "voice": lambda root: bench_voice(root), "runtime": lambda root: bench_runtime(root)}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    ap.add_argument("--voice-every", type=int, default=1, metavar="N",
                    help="speak every Nth voice case only (all of them: 8,928 clips, each heard by both "
                         "recognisers: about 5 hours)")
    args = ap.parse_args()
    global VOICE_EVERY
    VOICE_EVERY = max(1, args.voice_every)
    root = Path(tempfile.mkdtemp(prefix="bench-models-"))
    rows = [row for name in args.only.split(",") for row in SECTIONS[name.strip()](root)]
    widths = [max(len(str(r[i])) for r in rows + [HEAD]) for i in range(5)]
    for r in [HEAD] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


HEAD = ["model", "metric", "ours", "baseline", "aim"]
VOICE_EVERY = 1

if __name__ == "__main__":
    main()
