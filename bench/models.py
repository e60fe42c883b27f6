"""Model quality, side by side with a simple baseline, and run time on a hotel-sized property.

* forecasting: MAPE of rooms occupied at 7/14/28 days out on both hotels of
  ../shared/data/hotel_bookings.csv.gz (rolling origin, every 3rd day from 2016-07-01 to
  2017-07-03), ours (blend) against additive pickup and same day last year;
* night-audit: precision and recall on planted anomalies of every type among clean
  folios (several seeds), against a baseline that flags every repeated code+amount;
* task-routing: total cost against the brute-force optimum and a greedy router on
  small random instances;
* run time of each model through the runner on a 120-room property with 90 days of
  folios and the City Hotel booking history.

    python bench/models.py            # ~1 minute
"""

from __future__ import annotations

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

def bench_forecasting(step: int = 3) -> list[list]:
    rows = []
    for name in ("City Hotel", "Resort Hotel"):
        h = History.from_rows(list(bookings.rows(DATA, name)))
        start, end = date(2016, 7, 1).toordinal(), date(2017, 7, 31).toordinal()
        actual = h.actual_table(start - 400, end + 60)
        errors = {m: {7: [], 14: [], 28: []} for m in ("blend", "additive", "same day last year")}
        dates = range(start, end - 28, step)
        with click.progressbar(dates, label=f"forecasting: {name}", file=sys.stderr) as bar:
            for as_of in bar:
                for m in ("blend", "additive"):
                    daily, _ = forecast(h, as_of, 28, m)
                    for lead in (7, 14, 28):
                        a = actual[as_of + lead - start + 400]
                        if a > 0:
                            errors[m][lead].append(abs(daily[lead - 1]["roomsOccupied"] - a) / a)
                for lead in (7, 14, 28):
                    a = actual[as_of + lead - start + 400]
                    if a > 0:
                        errors["same day last year"][lead].append(abs(actual[as_of + lead - 364 - start + 400] - a) / a)
        for lead in (7, 14, 28):
            rows.append([f"forecasting, {name}", f"MAPE rooms occupied, {lead} days out",
                         f"{100 * np.mean(errors['blend'][lead]):.1f} %",
                         f"{100 * np.mean(errors['additive'][lead]):.1f} % additive pickup; "
                         f"{100 * np.mean(errors['same day last year'][lead]):.1f} % same day last year",
                         "better than additive pickup"])
    return rows


# --- a hotel-sized property with planted folio anomalies -------------------------------------

TYPES = ("DUPLICATE_CHARGE", "MISSING_ROOM_CHARGE", "RATE_MISMATCH", "TAX_MISMATCH", "OPEN_BALANCE",
         "NO_SHOW_CANDIDATE")


def property_with_anomalies(db, seed: int, start: date, days: int = 90, rooms: int = 120, per_type: int = 4):
    """Clean folios for every stay, then ``per_type`` anomalies of each type; returns the truth."""
    rng = random.Random(seed)
    db["rooms"].insert_all([{"hotel_id": HOTEL, "room_number": str(100 * (1 + i // 30) + i % 30), "floor": 1 + i // 30,
                             "room_type": "KING" if i % 3 else "TWIN", "status": "Clean", "occupied": 0}
                            for i in range(rooms)])
    db["rate_plans"].insert_all([{"hotel_id": HOTEL, "code": "BAR", "room_type": t, "nightly_rate": r, "tax_rate": 0.1}
                                 for t, r in (("KING", 150.0), ("TWIN", 120.0))])
    res, charges, truth = [], [], set()
    n = 0
    for day in range(days):
        d = start + timedelta(days=day)
        for _ in range(rng.randint(20, 30)):  # arrivals
            n += 1
            room_type = rng.choice(["KING", "TWIN"])
            rate = 150.0 if room_type == "KING" else 120.0
            nights = rng.randint(1, 4)
            dep = d + timedelta(days=nights)
            status = "CheckedOut" if dep <= start + timedelta(days=days - 1) else "InHouse"
            conf = f"R{n:05d}"
            res.append({"hotel_id": HOTEL, "confirmation": conf, "arrival": d.isoformat(), "departure": dep.isoformat(),
                        "status": status, "room_type": room_type, "rate_plan": "BAR", "nightly_rate": rate,
                        "room_number": str(100 + n % 30), "guest_name": conf, "adults": 2, "children": 0, "vip": 0,
                        "currency": "EUR", "language": "en"})
            total = 0.0
            for k in range(nights):
                night = (d + timedelta(days=k)).isoformat()
                charges += [{"hotel_id": HOTEL, "charge_id": f"{conf}-r{k}", "confirmation": conf,
                             "posted_at": f"{night}T23:00:00", "code": "ROOM", "amount": rate, "quantity": 1},
                            {"hotel_id": HOTEL, "charge_id": f"{conf}-t{k}", "confirmation": conf,
                             "posted_at": f"{night}T23:00:01", "code": "TAX", "amount": round(rate * 0.1, 2),
                             "quantity": 1}]
                total += rate + round(rate * 0.1, 2)
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
    picks = rng.sample(in_house, 4 * per_type)
    for i, r in enumerate(picks):
        conf, kind = r["confirmation"], TYPES[i // per_type]
        k = (audit_day - date.fromisoformat(r["arrival"])).days
        if kind == "DUPLICATE_CHARGE":
            charges.append({**by_id[f"{conf}-r{k}"], "charge_id": f"{conf}-dup", "posted_at": f"{d}T23:05:00"})
        elif kind == "MISSING_ROOM_CHARGE":
            charges.remove(by_id[f"{conf}-r{k}"])
        elif kind == "RATE_MISMATCH":
            by_id[f"{conf}-r{k}"]["amount"] -= 20.0
            by_id[f"{conf}-t{k}"]["amount"] = round(by_id[f"{conf}-r{k}"]["amount"] * 0.1, 2)
        elif kind == "TAX_MISMATCH":
            by_id[f"{conf}-t{k}"]["amount"] += 3.0
        truth.add((kind, conf))
    for r in rng.sample(leaving, per_type):
        charges.append({"hotel_id": HOTEL, "charge_id": f"{r['confirmation']}-late", "confirmation": r["confirmation"],
                        "posted_at": f"{d}T11:00:00", "code": "MINIBAR", "amount": 9.0, "quantity": 1})
        truth.add(("OPEN_BALANCE", r["confirmation"]))
    for i in range(per_type):
        conf = f"NS{i}"
        res.append({**stays[picks[0]["confirmation"]], "confirmation": conf, "arrival": d,
                    "departure": (audit_day + timedelta(days=2)).isoformat(), "status": "Confirmed"})
        truth.add(("NO_SHOW_CANDIDATE", conf))
    db["reservations"].insert_all(res)
    db["charges"].insert_all(charges)
    return audit_day, truth


def bench_night_audit(root: Path, seeds: int = 5) -> list[list]:
    tp = fp = fn = btp = bfp = bfn = 0
    with click.progressbar(range(seeds), label="night-audit: planted anomalies", file=sys.stderr) as bar:
        for seed in bar:
            inst = instance(root / f"audit-{seed}")
            day, truth = property_with_anomalies(inst.db(), seed, date(2026, 8, 1))
            out = runner.run(inst, "night-audit", {"businessDate": day.isoformat()}, hotel_id=HOTEL)
            found = {(f["type"], f["confirmation"]) for f in out["findings"]}
            tp, fp, fn = tp + len(found & truth), fp + len(found - truth), fn + len(truth - found)
            # baseline: every repeated (reservation, code, amount) of the day is a duplicate, nothing else
            dup = inst.db().execute("SELECT confirmation FROM charges WHERE substr(posted_at, 1, 10) = ? GROUP BY"
                                    " confirmation, code, amount HAVING count(*) > 1", [day.isoformat()]).fetchall()
            base = {("DUPLICATE_CHARGE", c[0]) for c in dup}
            btp, bfp, bfn = btp + len(base & truth), bfp + len(base - truth), bfn + len(truth - base)
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    bp, br = btp / max(1, btp + bfp), btp / max(1, btp + bfn)
    return [["night-audit", f"precision / recall, {seeds} properties x 24 planted anomalies", f"{p:.3f} / {r:.3f}",
             f"{bp:.3f} / {br:.3f} repeated-charge rule", ">= 0.95 / 0.95"]]


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
VOICES = ("en-us", "en-gb", "en+f3", "en+m7")
SPEEDS = (130, 160, 200)


def bench_voice(root: Path) -> list[list]:
    import base64
    import shutil
    import subprocess

    from pocketsphinx import Decoder

    from kiosk.models import voice_ai

    if shutil.which("espeak-ng") is None:
        return [["voice-ai", "intent accuracy", "skipped: espeak-ng not installed", "", ""]]
    open_vocab = Decoder(loglevel="FATAL")  # pocketsphinx's own open-vocabulary language model
    ours = base = n = 0
    cases = [(p, v, s) for p in PHRASES for v in VOICES for s in SPEEDS]
    with click.progressbar(cases, label="voice: espeak-ng voices x speeds", file=sys.stderr) as bar:
        for (text, intent), voice, speed in bar:
            wav = root / "v.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
            pcm = voice_ai.pcm16k(wav.read_bytes())
            out = voice_ai.run(type("C", (), {})(), {"audio": base64.b64encode(wav.read_bytes()).decode()})
            ours += out.outputs["intent"] == intent
            open_vocab.start_utt()
            open_vocab.process_raw(voice_ai.padded(pcm), full_utt=True)  # the same padding as ours
            open_vocab.end_utt()
            hyp = open_vocab.hyp()
            base += voice_ai.parse_intent(hyp.hypstr if hyp else "")[0] == intent
            n += 1
    return [["voice-ai", f"intent accuracy, {len(PHRASES)} requests x {len(VOICES)} voices x {len(SPEEDS)} speeds",
             f"{ours / n:.3f}", f"{base / n:.3f} same parser on pocketsphinx's open-vocabulary model", ""]]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-models-"))
    rows = (bench_night_audit(root) + bench_routing() + bench_housekeeping(root) + bench_linking(root)
            + bench_inspection() + bench_forecasting() + bench_voice(root) + bench_runtime(root))
    widths = [max(len(str(r[i])) for r in rows + [HEAD]) for i in range(5)]
    for r in [HEAD] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


HEAD = ["model", "metric", "ours", "baseline", "aim"]

if __name__ == "__main__":
    main()
