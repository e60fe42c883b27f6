"""PMS benchmark: the cloud's PMS outbox delivering into a fake OPERA Cloud, and reservations
read from it, each side by side with its alternative in one run.

Everything runs in this process: the fake OPERA Cloud of the tests (tests/fakepms/opera.py,
on 127.0.0.1, checking every request against the published Swagger specs) and a throwaway
SQLite cloud, as tests/test_pms_outbox.py drives them.  The clock is a fake one: waits
(the 5 s backoff after a lost answer) are skipped by moving it, so only work is timed.

1. **Push**: ``--n`` offers taken (``pms.update`` entries adding an offer to a reservation),
   pushed with ``sync.cloud.apply.apply_push`` 500 a push, for a hotel linked to OPERA (each
   entry also queues a ``charge`` in the PMS outbox, same transaction) and for one that is
   not (nothing queued).
2. **Delivery**: the same N charges delivered, spread over ``--stays`` in-house
   reservations (one reservation's charges go in order, so a pass sends at most one per
   reservation and 50 in all):

   * ``connector alone`` — ``OperaConnector.send`` in a loop: no outbox, no database; the
     floor the fake and HTTP set;
   * ``outbox`` — ``PmsRunner.run_hotel`` passes until nothing is pending: each action is
     claimed (committed) before its POST and marked delivered after;
   * ``outbox, 10 % answers lost`` — one POST in ten is applied by the fake and answered
     504: the action waits its backoff, then OPERA is asked (``GET …/folios``, a look-up)
     and it is delivered without a second POST.

   Checked: the fake holds exactly N charges, each reference once.
3. **Reservations**: ``--reservations`` reservations in the fake read by the runner
   (``GET /rsv/v1/hotels/{hotelId}/reservations``, pages of 200; ids kept in
   ``pms_reservations`` and the rows merged into the reference data, one transaction)
   against the CSV path: the same rows written as ``reservations.csv`` (untimed, the PMS's
   export), then ``refdata.read_export`` on that folder plus ``refdata.import_tables`` (what
   ``kiosk-cloud data import`` does).  Both again with nothing changed.  Checked: both leave
   the same rows in the reference data.

    .venv/bin/python bench/pms.py                 # --n 2000 --reservations 5000
    .venv/bin/python bench/pms.py --quick         # --n 300 --reservations 1000
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import click

# run as `python bench/pms.py`: bench/ is sys.path[0], where bench/sync.py would shadow `sync`
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from kiosk.clock import FakeClock  # noqa: E402
from sync.cloud import devices, pms_links, pms_outbox, refdata, storage  # noqa: E402
from sync.cloud.apply import apply_push  # noqa: E402
from sync.cloud.connectors.opera import OperaConnector  # noqa: E402
from sync.cloud.pms_delivery import PmsRunner  # noqa: E402
from tests.fakepms.opera import FakeOpera  # noqa: E402

APP_KEY = "41ecd082-8997-4c69-af34-2f72b83645ff"
CREDS = {"app_key": APP_KEY, "client_id": "kiosk-client", "client_secret": "s3cret",
         "username": "kiosk", "password": "pw"}
LINKED, UNLINKED = "demo", "other"
DEVICE = devices.Device("k1", (LINKED, UNLINKED))
START = 1_800_000_000.0
PUSH = 500  # entries per push (the agent's batch_size)
STATUSES = ["Reserved", "DueIn", "InHouse", "InHouse", "DueOut", "CheckedOut", "Cancelled"]
GIVEN = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Tony", "Radia", "Ken"]
SURNAMES = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Hoare", "Perlman",
            "Thompson", "Müller", "van der Berg"]


class BenchOpera(FakeOpera):
    """The tests' fake, counting reservations served (for a progress bar) and losing the
    answer of a share of the charges it posts (applied, answered 504)."""

    def __init__(self, clock, *, lose: float = 0.0, seed: int = 1, on_page=None):
        super().__init__(clock, app_key=APP_KEY)
        self.lose, self.rng, self.on_page = lose, random.Random(seed), on_page
        self.lost = 0
        self.busy = 0.0  # seconds spent answering (routing, spec checks, the operation)

    def _handle(self):
        t0 = time.perf_counter()
        try:
            return super()._handle()
        finally:
            self.busy += time.perf_counter() - t0

    def _op_postBillingCharges(self, op, args):
        resp = super()._op_postBillingCharges(op, args)
        if self.lose and resp.status_code == 201 and self.rng.random() < self.lose:
            self._lose += 1  # FakeOpera answers this POST 504 after applying it
            self.lost += 1
        return resp

    def _op_getHotelReservations(self, op, args):
        resp = super()._op_getHotelReservations(op, args)
        if self.on_page:
            self.on_page(len(json.loads(resp.get_data())["reservations"]["reservationInfo"]))
        return resp


def seed(fake: FakeOpera, n: int, *, in_house: bool, rng: random.Random) -> None:
    """n reservations: pms ids 50001…, confirmations C100001…; in-house ones in rooms 100…"""
    for i in range(n):
        arrival = 1 + rng.randrange(28)
        fake.add_reservation(
            pms_id=str(50001 + i), confirmation=f"C{100001 + i}", given=rng.choice(GIVEN),
            surname=rng.choice(SURNAMES), room=str(100 + i % 400) if in_house or rng.random() < 0.6 else None,
            arrival=f"2026-12-{arrival:02d}", departure=f"2026-12-{min(arrival + 1 + rng.randrange(5), 31):02d}",
            status="InHouse" if in_house else rng.choice(STATUSES),
            language=rng.choice([None, None, "de", "fr", "es"]))


class Cloud:
    """A throwaway SQLite cloud with LINKED linked to ``fake`` (none when fake is None)."""

    def __init__(self, base: Path, clock: FakeClock, fake: FakeOpera | None):
        self.dir = Path(tempfile.mkdtemp(prefix="cloud-", dir=base))
        self.store = storage.open_storage(self.dir)
        self.store.prepare()
        self.db = self.store.connect()
        self.clock = clock
        if fake is not None:
            with storage.transaction(self.db):
                pms_links.link(self.db, self.dir, LINKED, kind="opera", url=fake.base_url, pms_hotel="HOTEL1",
                               credentials=CREDS, charge_code="2010", now=clock.now())
        self.runner = PmsRunner(self.store, self.dir, clock, poll=60)

    def close(self) -> None:
        self.store.close()


def offers(hotel: str, n: int, stays: int, clock: FakeClock, tag: str) -> list[dict]:
    out = []
    for i in range(n):
        conf = f"C{100001 + i % stays}"
        out.append({"key": f"offer-accepted:k1:{tag}-{i}", "hotelId": hotel, "kind": "pms.update",
                    "entityType": "pms", "entityId": f"reservation:{conf}",
                    "hlc": f"{int(clock.now() * 1000):015d}-{i % 100000:05d}-k1", "createdAt": clock.now(),
                    "payload": {"entity": "reservation", "id": conf, "changes": {"addOffer": {
                        "offerId": f"OFFER{i % 7}", "name": "Breakfast buffet", "type": "addon",
                        "price": 10 + i % 30, "currency": "EUR"}},
                        "reason": "the guest took the offer at the kiosk", "by": conf,
                        "requiresApproval": False}})
    return out


def push_all(cloud: Cloud, entries: list[dict], label: str) -> float:
    t0 = time.perf_counter()
    with click.progressbar(length=len(entries), label=label.ljust(30), file=sys.stderr, width=30) as bar:
        for i in range(0, len(entries), PUSH):
            out = apply_push(cloud.db, DEVICE, entries[i:i + PUSH], cloud.clock.now())
            bad = [r for r in out if r["status"] not in ("applied", "duplicate")]
            if bad:
                raise SystemExit(f"push refused: {bad[:3]}")
            bar.update(len(out))
    return time.perf_counter() - t0


def pending(cloud: Cloud) -> int:
    return pms_outbox.counts(cloud.db, LINKED)["pending"]


def deliver(cloud: Cloud, n: int, label: str) -> tuple[float, int]:
    """run_hotel passes (no reads) until nothing is pending; (wall seconds, passes).  When a
    pass delivers nothing, the fake clock moves to the next action's time."""
    passes = 0
    t0 = time.perf_counter()
    with click.progressbar(length=n, label=label.ljust(30), file=sys.stderr, width=30) as bar:
        while True:
            out = cloud.runner.run_hotel(LINKED, read=False)
            passes += 1
            bar.update(out["delivered"])
            if out["dead"]:
                raise SystemExit(f"dead letters: {pms_outbox.listed(cloud.db, LINKED, 'dead', 3)}")
            if out["delivered"] == 0:
                if pending(cloud) == 0:
                    break
                # the head of an entity waits its backoff (those behind it are due but held)
                nxt = cloud.db.execute("SELECT MIN(next_at) FROM pms_actions WHERE hotel_id = ? AND status ="
                                       " 'pending' AND next_at > ?", [LINKED, cloud.clock.now()]).fetchone()[0]
                if nxt is None:
                    raise SystemExit("actions pending, none delivered and none waiting")
                cloud.clock.advance(nxt - cloud.clock.now() + 0.001)
    return time.perf_counter() - t0, passes


def check_charges(fake: FakeOpera, n: int) -> int:
    """Exactly n charges in the fake, each reference once; returns the duplicates (0)."""
    refs = Counter(c["reference"] for cs in fake.charges.values() for c in cs)
    if sum(refs.values()) != n:
        raise SystemExit(f"the fake holds {sum(refs.values())} charges, not {n}")
    dup = sum(v - 1 for v in refs.values())
    if dup:
        raise SystemExit(f"{dup} charges were posted twice")
    if fake.violations or fake.response_violations:
        raise SystemExit(f"spec violations: {(fake.violations + fake.response_violations)[:3]}")
    return dup


def requests_made(fake: FakeOpera) -> tuple[int, int]:
    """(POSTs of charges, GETs of folios: look-ups)."""
    posts = sum(1 for m, p in fake.requests if m == "POST" and p.endswith("/charges"))
    looks = sum(1 for m, p in fake.requests if m == "GET" and p.endswith("/folios"))
    return posts, looks


# ---- the parts ------------------------------------------------------------------------

def bench_push(base: Path, n: int, stays: int) -> list[dict]:
    rows = []
    for hotel, linked in ((LINKED, True), (UNLINKED, False)):
        clock = FakeClock(START)
        fake = BenchOpera(clock)
        fake.base_url = fake.start()
        cloud = Cloud(base, clock, fake)
        try:
            for e in offers(hotel, 100, stays, clock, "warm-up"):  # untimed: first statements, caches
                apply_push(cloud.db, DEVICE, [e], clock.now())
            before = pms_outbox.counts(cloud.db, hotel)["pending"]
            wall = push_all(cloud, offers(hotel, n, stays, clock, "p"), f"push, {'linked' if linked else 'unlinked'}")
            queued = pms_outbox.counts(cloud.db, hotel)["pending"] - before
        finally:
            cloud.close()
            fake.stop()
        rows.append({"part": "push", "what": f"push offers, {'linked hotel' if linked else 'hotel not linked'}",
                     "n": n, "s": wall, "rate": n / wall, "unit": "entries/s",
                     "note": f"{queued} charges queued"})
    return rows


def bench_delivery(base: Path, n: int, stays: int, loss: float, seed_: int) -> list[dict]:
    rows = []
    # the connector alone: the same charges, no outbox
    clock = FakeClock(START)
    fake = BenchOpera(clock)
    fake.base_url = fake.start()
    seed(fake, stays, in_house=True, rng=random.Random(seed_))
    try:
        conn = OperaConnector(fake.base_url, "HOTEL1", CREDS, clock=clock)
        t0 = time.perf_counter()
        with click.progressbar(range(n), label="connector alone".ljust(30), file=sys.stderr, width=30) as bar:
            for i in bar:
                conn.send("charge", {"pmsId": str(50001 + i % stays), "amount": 10 + i % 30, "currency": "EUR",
                                     "code": "2010", "description": "Breakfast buffet"},
                          pms_outbox.reference(LINKED, f"charge:direct-{i}"))
        wall = time.perf_counter() - t0
        check_charges(fake, n)
        posts, looks = requests_made(fake)
    finally:
        fake.stop()
    rows.append({"part": "delivery", "what": "connector alone (no outbox)", "n": n, "s": wall, "rate": n / wall,
                 "unit": "actions/s", "fake": fake.busy, "note": f"{posts} POST, {looks} look-ups"})

    for lose in (0.0, loss):
        clock = FakeClock(START)
        fake = BenchOpera(clock, lose=lose, seed=seed_)
        fake.base_url = fake.start()
        seed(fake, stays, in_house=True, rng=random.Random(seed_))
        cloud = Cloud(base, clock, fake)
        try:
            cloud.runner.run_hotel(LINKED, read=True)  # the reservations' OPERA ids, untimed
            push_all(cloud, offers(LINKED, n, stays, clock, f"d{lose}"), "push (untimed)")
            fake.requests.clear()
            fake.busy = 0.0
            label = "outbox" if not lose else f"outbox, {lose:.0%} answers lost"
            wall, passes = deliver(cloud, n, label)
            check_charges(fake, n)
            posts, looks = requests_made(fake)
            delivered = pms_outbox.counts(cloud.db, LINKED)["delivered"]
            waited = clock.now() - START
        finally:
            cloud.close()
            fake.stop()
        if delivered != n:
            raise SystemExit(f"{delivered} delivered, not {n}")
        note = f"{posts} POST, {looks} look-ups, {passes} passes"
        if lose:
            note += f", {fake.lost} answers lost, {waited:.0f} s of backoff skipped"
        rows.append({"part": "delivery", "what": label.replace("%", " %"), "n": n, "s": wall, "rate": n / wall,
                     "unit": "actions/s", "fake": fake.busy, "note": note})
    return rows


def ref_rows(db, hotel: str) -> dict[str, dict]:
    """The hotel's reservations in the reference data, without null fields (the read stores
    a field OPERA left out as null, a CSV import leaves an empty cell out)."""
    return {r[0]: {k: v for k, v in json.loads(r[1]).items() if v is not None} for r in db.execute(
        "SELECT entity_id, data FROM ref_data WHERE hotel_id = ? AND entity_type = 'reservation'", [hotel])}


def bench_reservations(base: Path, n: int, seed_: int) -> list[dict]:
    rows = []
    clock = FakeClock(START)
    bar_holder: list = []
    fake = BenchOpera(clock, on_page=lambda k: bar_holder and bar_holder[0].update(k))
    fake.base_url = fake.start()
    seed(fake, n, in_house=False, rng=random.Random(seed_))
    cloud = Cloud(base, clock, fake)
    try:
        for again in (False, True):
            label = "read from OPERA" + (" again" if again else "")
            fake.requests.clear()
            fake.busy = 0.0
            with click.progressbar(length=n, label=label.ljust(30), file=sys.stderr, width=30) as bar:
                bar_holder[:] = [bar]
                t0 = time.perf_counter()
                out = cloud.runner.run_hotel(LINKED, read=True)
                wall = time.perf_counter() - t0
            pages = sum(1 for m, p in fake.requests if m == "GET" and p.endswith("/reservations"))
            counts = out["read"]
            if counts is None:
                raise SystemExit(f"the read failed: {pms_links.get(cloud.db, LINKED).last_error}")
            rows.append({"part": "reservations", "what": label + (" (unchanged)" if again else ", pages of 200"),
                         "n": n, "s": wall, "rate": n / wall, "unit": "reservations/s", "fake": fake.busy,
                         "note": f"{pages} pages; added {counts['added']}, changed {counts['changed']},"
                                 f" unchanged {counts['unchanged']}"})
        read_rows = ref_rows(cloud.db, LINKED)
        kiosk_rows = [{k: v for k, v in OperaConnector.map_reservation(r).items() if k != "pms_id"}
                      for r in fake.reservations]
    finally:
        cloud.close()
        fake.stop()

    # the CSV path: the same rows as a PMS export (written untimed), parsed and imported
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=base))
    columns = ["confirmation", "guest_name", "room_number", "arrival", "departure", "status", "language"]
    with (folder / "reservations.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for r in kiosk_rows:
            w.writerow({c: r.get(c) or "" for c in columns})
    clock = FakeClock(START)
    cloud = Cloud(base, clock, None)
    try:
        for again in (False, True):
            label = "CSV import" + (" again" if again else "")
            with click.progressbar(length=n, label=label.ljust(30), file=sys.stderr, width=30) as bar:
                t0 = time.perf_counter()
                tables = refdata.read_export(folder)
                parsed = time.perf_counter() - t0
                counts = refdata.import_tables(cloud.db, LINKED, tables, clock.now(), progress=bar.update)
                wall = time.perf_counter() - t0
            c = counts["reservations"]
            rows.append({"part": "reservations",
                         "what": label + (" (unchanged)" if again else ": read_export + import_tables"),
                         "n": n, "s": wall, "rate": n / wall, "unit": "reservations/s",
                         "note": f"parse {parsed:.2f} s; added {c['added']}, changed {c['changed']},"
                                 f" unchanged {c['unchanged']}"})
        same = ref_rows(cloud.db, LINKED) == read_rows
    finally:
        cloud.close()
    if not same:
        raise SystemExit("the CSV import and the OPERA read left different reference rows")
    rows.append({"part": "reservations", "what": "same rows in the reference data", "n": n, "s": None,
                 "rate": None, "unit": "", "note": "yes (row by row, null fields aside)"})
    return rows


# ---- output ---------------------------------------------------------------------------

def table(rows: list[dict]) -> str:
    head = f"{'what':<44} {'n':>6} {'seconds':>8} {'in fake':>8} {'per second':>11}  {'unit':<15} notes"
    lines = [head, "-" * len(head)]
    part = None
    for r in rows:
        if part is not None and r["part"] != part:
            lines.append("")
        part = r["part"]
        secs = f"{r['s']:.2f}" if r["s"] is not None else ""
        rate = f"{r['rate']:,.0f}" if r["rate"] is not None else ""
        fake = f"{r['fake']:.2f}" if r.get("fake") is not None else ""
        lines.append(f"{r['what']:<44} {r['n']:>6} {secs:>8} {fake:>8} {rate:>11}  {r['unit']:<15} {r['note']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="offers taken: entries pushed, charges delivered (2000)")
    ap.add_argument("--stays", type=int, default=200, help="in-house reservations the offers are spread over (200)")
    ap.add_argument("--reservations", type=int, default=5000, help="reservations read and imported (5000)")
    ap.add_argument("--loss", type=float, default=0.10, help="share of the charges' answers lost (0.10)")
    ap.add_argument("--quick", action="store_true", help="--n 300 --reservations 1000")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", default=None, help="where the throwaway clouds go (the system temp dir)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.reservations = 300, 1000
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake's request log
    base = Path(tempfile.mkdtemp(prefix="pms-bench-", dir=args.dir))
    print(f"kiosk PMS benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite"
          f" {sqlite3.sqlite_version}; fake OPERA Cloud in-process on 127.0.0.1 (every request checked against"
          f" the specs); n={args.n} offers over {args.stays} stays, {args.reservations} reservations", flush=True)
    try:
        rows = bench_push(base, args.n, args.stays)
        rows += bench_delivery(base, args.n, args.stays, args.loss, args.seed)
        rows += bench_reservations(base, args.reservations, args.seed)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(table(rows))
    print("in fake: seconds the fake OPERA spent answering (routing, checking the request and its own answer"
          " against the specs); the rest is the client, the cloud's database and HTTP")
    print("exactly once: every delivery run left exactly n charges in the fake, each reference once")


if __name__ == "__main__":
    main()
