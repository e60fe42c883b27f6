"""Sync benchmark: durable enqueue, draining a backlog to the reference cloud, agent memory.

Side by side in one run:

1. **Durable enqueue**: our ``kiosk.outbox.enqueue`` (one transaction per entry,
   WAL + ``synchronous=FULL``, HLC stamp included) against persist-queue's
   ``SQLiteAckQueue`` with the same durability (WAL, ``synchronous=FULL`` read back
   from both connections, one commit per ``put``).  Ours also batched, 100 entries
   per transaction, as a scan or model run that queues several effects does.
2. **Drain**: a backlog of ``--entries`` ticket entries (100,000 by default) pushed
   by a real ``kiosk-agent sync --once`` process to a real ``kiosk-cloud serve``
   process over loopback, batched (``agent.batch_size``, 500) against one request per
   entry (``batch_size=1``, on ``--single`` entries and extrapolated: it is too slow to
   run on all of them).  Every entry is checked to be in the cloud exactly once.
3. **Memory**: the agent's resident set size sampled every 0.2 s while it drains.
4. **Convergence** after a partition, 5. **pull throughput** (``--only down``).
6. **Cross-box latency** (``--only latency``): two kiosks of one hotel, each with a real
   ``kiosk-agent run`` (default settings) against the cloud; a ticket is written at kiosk A
   (the row and its outbox entry in one transaction, as the API does) and the time until
   it is in kiosk B's database is measured, ``--latency-changes`` times at random moments;
   with the live pull (``agent.live_pull_wait_seconds`` 20, the default) and with the
   scheduled 5 s pull only (``live_pull_wait_seconds: 0``).

With a property hub (a second ``kiosk-cloud serve`` linked to a chain cloud of its own with
``kiosk-cloud link``: docs/deployment.md), beside the direct rows: the drain through the hub
(the agent pushes to the hub, the hub's relay to the chain; timed until the chain holds every
entry, each once), and the cross-box latency between two kiosks linked to the hub (and the
time until the chain holds the change).  ``--no-hub`` leaves them out, ``--only hub`` runs
only them.

    python bench/sync.py                      # the full run (about 20 minutes)
    python bench/sync.py --n 20000 --enqueue 2000 --single 1000 --latency-changes 20   # quick
    python bench/sync.py --only drain         # the drain table alone: direct and through a hub
    python bench/sync.py --only latency       # the cross-box latency alone, direct and through a hub
    python bench/sync.py --only hub           # only the rows with a hub

Figures are printed as a table; see bench/README.md for the last recorded run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kiosk import config as config_mod  # noqa: E402
from kiosk import outbox, store  # noqa: E402
from kiosk.clock import iso  # noqa: E402
from kiosk.instance import Instance  # noqa: E402

BIN = Path(sys.executable).parent
HOTEL = "demo"


def payload(i: int, now: float) -> tuple[str, dict]:
    """A ticket as the kiosk queues it (the cloud validates and applies it)."""
    tid = f"T-{uuid.uuid4().hex[:12]}"
    return tid, {"ticketId": tid, "type": "maintenance", "title": f"Leaking tap in bathroom {i}",
                 "description": "Guest reports a dripping tap; water on the floor.",
                 "roomNumber": str(100 + i % 400), "priority": "normal", "queue": "maintenance",
                 "status": "open", "fingerprint": uuid.uuid4().hex[:16], "createdAt": iso(now),
                 "createdBy": "bench"}


def instance(root: Path) -> Instance:
    cfg = config_mod.load(None, env={}, overrides={
        "data_dir": str(root), "property": {"hotels": [HOTEL], "issuer": HOTEL, "kiosk_id": "bench-kiosk"}})
    inst = Instance(cfg)
    inst.init()
    return inst


def pragma(conn, name: str):
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


# --- 1. enqueue ---------------------------------------------------------------------------

def bench_enqueue(root: Path, n: int, rounds: int = 5) -> list[tuple]:
    """Entries per second for each contender: the median of ``rounds`` interleaved
    rounds of ``n / rounds`` entries (interleaving spreads disk and CPU noise evenly)."""
    import persistqueue

    inst = instance(root / "enqueue-ours")
    db = inst.connect()
    mode = (pragma(db.conn, "journal_mode"), pragma(db.conn, "synchronous"))
    q = persistqueue.SQLiteAckQueue(str(root / "enqueue-pq"), auto_commit=True)
    q._putter.execute("PRAGMA synchronous=FULL")  # its default here too; set so the run says so
    pq_mode = (pragma(q._putter, "journal_mode"), pragma(q._putter, "synchronous"))
    now = time.time()
    per_round = max(100, n // rounds)

    def ours_single(items):
        for tid, p in items:
            with store.transaction(db):
                outbox.enqueue(db, hotel_id=HOTEL, kind="ticket.created", entity_type="ticket",
                               entity_id=tid, payload=p, node="bench", now=time.time())

    def ours_batched(items):
        for start in range(0, len(items), 100):
            with store.transaction(db):
                for tid, p in items[start:start + 100]:
                    outbox.enqueue(db, hotel_id=HOTEL, kind="ticket.created", entity_type="ticket",
                                   entity_id=tid, payload=p, node="bench", now=time.time())

    def persist_queue(items):
        for tid, p in items:
            q.put({"hotelId": HOTEL, "kind": "ticket.created", "entityId": tid, "payload": p})

    # How the product uses it: the local change and its outbox entry in one transaction
    # (one fsync, atomic), against the local change committed and then a put into a
    # separate persist-queue (two fsyncs, and a crash between them loses the entry).
    db.execute("CREATE TABLE IF NOT EXISTS bench_change (id TEXT PRIMARY KEY, body TEXT)")

    def ours_with_change(items):
        for tid, p in items:
            with store.transaction(db):
                db.conn.execute("INSERT INTO bench_change VALUES (?, ?)", [tid, p["title"]])
                outbox.enqueue(db, hotel_id=HOTEL, kind="ticket.created", entity_type="ticket",
                               entity_id=tid, payload=p, node="bench", now=time.time())

    def change_then_persist_queue(items):
        for tid, p in items:
            with store.transaction(db):
                db.conn.execute("INSERT INTO bench_change VALUES (?, ?)", [tid, p["title"]])
            q.put({"hotelId": HOTEL, "kind": "ticket.created", "entityId": tid, "payload": p})

    contenders = [("ours: outbox.enqueue, 1 per transaction", mode, ours_single),
                  ("persist-queue SQLiteAckQueue.put (auto_commit)", pq_mode, persist_queue),
                  ("ours: outbox.enqueue, 100 per transaction", mode, ours_batched),
                  ("ours: local change + enqueue, 1 transaction", mode, ours_with_change),
                  ("local change, then persist-queue put", pq_mode, change_then_persist_queue)]
    rates: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    with click.progressbar(length=rounds * len(contenders), label="enqueue (interleaved rounds)",
                           file=sys.stderr) as bar:
        for _ in range(rounds):
            for name, _, fn in contenders:
                items = [payload(i, now) for i in range(per_round)]
                t0 = time.perf_counter()
                fn(items)
                rates[name].append(per_round / (time.perf_counter() - t0))
                bar.update(1)
    db.conn.close()
    q.close()
    return [(name, *m, statistics.median(rates[name]), min(rates[name]), max(rates[name]))
            for name, m, _ in contenders]


# --- 2 and 3. drain and memory ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict | None = None) -> str:
    out = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}, timeout=300)
    return out.stdout


class CloudProc:
    def __init__(self, root: Path, name: str = "cloud"):
        self.dir, self.port = root / name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(root / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        # the push quota off: a drain is timed here, not the quota (at its default, 20,000 entries per
        # device per minute, a 100,000-entry backlog takes at least 4 minutes; a hub is one device)
        self.proc = subprocess.Popen([str(BIN / "kiosk-cloud"), "serve", "--data-dir", str(self.dir),
                                      "--port", str(self.port), "--push-quota-entries", "off"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        import requests
        for _ in range(200):
            try:
                requests.get(self.url + "/sync/v1/health", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise SystemExit("the reference cloud did not start; see cloud.log")

    def tickets(self) -> tuple[int, int]:
        """(rows, distinct ids) of the hotel's tickets in the cloud's database."""
        db = sqlite3.connect(f"file:{self.dir / 'cloud.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*), count(DISTINCT ticket_id) FROM tickets WHERE hotel_id = ?",
                              [HOTEL]).fetchone()
        finally:
            db.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()

    def upstream(self) -> dict:
        """A hub's link and relay backlog (``kiosk-cloud upstream --json``)."""
        return json.loads(run("kiosk-cloud", "upstream", "--json", "--data-dir", str(self.dir)))


def start_hub(root: Path, chain: CloudProc, name: str = "hub") -> CloudProc:
    """A property hub: a cloud linked to ``chain`` (as the device ``bench-hub``) before it starts."""
    cred = run("kiosk-cloud", "device", "add", f"bench-{name}", "--hotel", HOTEL, "--rotate",
               "--data-dir", str(chain.dir)).strip()
    run("kiosk-cloud", "link", "--cloud", chain.url, "--device-id", f"bench-{name}", "--credential", cred,
        "--data-dir", str(root / name))
    return CloudProc(root, name)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def fill(root: Path, name: str, n: int) -> Path:
    """A backlog of ``n`` tickets as the product writes them: each ticket's row and its outbox
    entry in one transaction (kiosk/tickets.py ``create``), so the drain's pull brings the
    kiosk's own tickets back to a kiosk that holds them."""
    from kiosk.tickets import terms

    inst = instance(root / name)
    db = inst.connect()
    now = time.time()
    with click.progressbar(range(0, n, 5000), label=f"backlog: {n:,} entries ({name})", file=sys.stderr) as bar:
        for start in bar:
            with store.transaction(db):
                for i in range(start, min(n, start + 5000)):
                    tid, p = payload(i, now)
                    queued = outbox.enqueue(db, hotel_id=HOTEL, kind="ticket.created", entity_type="ticket",
                                            entity_id=tid, payload=p, node="bench", now=now)
                    db.execute("INSERT INTO tickets (hotel_id, ticket_id, type, title, description, room_number,"
                               " priority, queue, status, fingerprint, terms, created_at, created_by, updated_at,"
                               " status_hlc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               [HOTEL, tid, p["type"], p["title"], p["description"], p["roomNumber"], p["priority"],
                                p["queue"], p["status"], p["fingerprint"],
                                json.dumps(sorted(terms(f"{p['title']} {p['description']}"))), now, p["createdBy"],
                                now, queued.hlc])
    db.conn.close()
    return root / name


def drain(cloud: CloudProc, data: Path, n: int, batch_size: int, label: str) -> dict:
    """``kiosk-agent sync --once`` until the backlog is delivered.  A transient refusal (503, 429)
    ends a ``sync --once`` where a running agent would back off and go on: it is started
    again at once (``transient``: what ended each earlier one)."""
    cred = run("kiosk-cloud", "device", "add", data.name, "--hotel", HOTEL, "--rotate",  # linked right below
               "--data-dir", str(cloud.dir)).strip()
    env = {"KIOSK_DATA_DIR": str(data), "KIOSK__PROPERTY__HOTELS": json.dumps([HOTEL]),
           "KIOSK__AGENT__BATCH_SIZE": str(batch_size)}
    run("kiosk-agent", "link", "--cloud", cloud.url, "--device-id", data.name, "--credential", cred, env=env)
    before, _ = cloud.tickets()
    db = sqlite3.connect(f"file:{data / 'kiosk.db'}?mode=ro", uri=True)
    samples: list[tuple[float, float, int]] = []  # (t, rss MB, delivered)
    applied, transient = 0, []
    t0 = time.perf_counter()
    with click.progressbar(length=n, label=f"drain: {label}", file=sys.stderr) as bar:
        seen = 0
        while True:
            proc = subprocess.Popen([str(BIN / "kiosk-agent"), "sync", "--once"], env={**os.environ, **env},
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            polls = 0
            while proc.poll() is None:
                mb = rss_mb(proc.pid)
                if polls % 5 == 0:  # a count of 100,000 rows is ~20 ms of a core: once a second, not 5 times
                    done = db.execute("SELECT count(*) FROM outbox WHERE state = 'delivered'").fetchone()[0]
                    bar.update(done - seen)
                    seen = done
                polls += 1
                if mb is not None:
                    samples.append((time.perf_counter() - t0, mb, seen))
                time.sleep(0.2)
            out = json.loads(proc.stdout.read())
            applied += out["applied"]
            if out["error"] is None:
                break
            if not out["error"].startswith(("HTTP 503", "HTTP 429")) or time.perf_counter() - t0 > 3600:
                raise SystemExit(f"the drain failed: {out}")
            transient.append(out["error"][:120])
            time.sleep(0.5)  # agent.backoff_base_seconds' order
    elapsed = time.perf_counter() - t0
    db.close()
    rows, distinct = cloud.tickets()
    assert applied == n, (applied, out)
    assert (rows - before, distinct - before) == (n, n), "every entry exactly once in the cloud"
    return {"elapsed": elapsed, "rate": n / elapsed, "samples": samples, "t0": t0, "transient": transient}


def drain_via_hub(chain: CloudProc, hub: CloudProc, data: Path, n: int) -> dict:
    """The batched drain to the hub, timed on until the chain holds every entry (each once) and
    the hub's relay outbox is empty."""
    before, _ = chain.tickets()
    to_hub = drain(hub, data, n, 500, f"{n:,} entries to the hub")
    deadline = time.perf_counter() + 1800
    with click.progressbar(length=n, label="relay: the hub to the chain", file=sys.stderr) as bar:
        seen = 0
        while True:
            rows, distinct = chain.tickets()
            bar.update(rows - before - seen)
            seen = rows - before
            if seen >= n:
                break
            if time.perf_counter() > deadline:
                raise SystemExit(f"the chain has {seen:,} of {n:,} entries after 30 minutes; see hub.log")
            time.sleep(0.05)
    elapsed = time.perf_counter() - to_hub["t0"]
    assert (rows - before, distinct - before) == (n, n), "every entry exactly once at the chain"
    state = hub.upstream()
    assert state["waiting"] == 0 and state["dead"] == 0, state
    return {"elapsed": elapsed, "rate": n / elapsed, "to_hub": to_hub}


def memory_line(samples: list[tuple[float, float, int]], n: int) -> dict:
    """RSS at 10 %, 50 % and 90 % of the drain, and the peak."""
    def at(frac: float) -> float:
        for _, mb, done in samples:
            if done >= frac * n:
                return mb
        return samples[-1][1]
    mbs = [mb for _, mb, _ in samples]
    return {"p10": at(0.1), "p50": at(0.5), "p90": at(0.9), "peak": max(mbs)}


def spark(values: list[float], width: int = 48) -> str:
    bars = "▁▂▃▄▅▆▇█"
    if not values:
        return ""
    step = max(1, len(values) // width)
    vals = [statistics.fmean(values[i:i + step]) for i in range(0, len(values), step)]
    lo, hi = min(vals), max(vals)
    return "".join(bars[int((v - lo) / (hi - lo + 1e-9) * (len(bars) - 1))] for v in vals)


# --- 4. convergence after a partition, 5. pull throughput (issue 4) ------------------------

def kiosk_instance(data: Path, name: str) -> Instance:
    cfg = config_mod.load(None, env={}, overrides={
        "data_dir": str(data), "property": {"hotels": [HOTEL], "issuer": HOTEL, "kiosk_id": name}})
    return Instance(cfg)


def link(cloud: CloudProc, data: Path, name: str) -> dict:
    cred = run("kiosk-cloud", "device", "add", name, "--hotel", HOTEL, "--rotate",  # linked right below
               "--data-dir", str(cloud.dir)).strip()
    env = {"KIOSK_DATA_DIR": str(data), "KIOSK__PROPERTY__HOTELS": json.dumps([HOTEL]),
           "KIOSK__PROPERTY__KIOSK_ID": name}
    run("kiosk-agent", "link", "--cloud", cloud.url, "--device-id", name, "--credential", cred, env=env)
    return env


def sync_all(envs: list[dict]) -> list[dict]:
    """``kiosk-agent sync --once`` at every kiosk at the same time; their JSON answers."""
    procs = [subprocess.Popen([str(BIN / "kiosk-agent"), "sync", "--once"], env={**os.environ, **e},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for e in envs]
    return [json.loads(p.communicate()[0] or "{}") for p in procs]


def wo_states(data: Path) -> dict:
    db = sqlite3.connect(f"file:{data / 'kiosk.db'}?mode=ro", uri=True)
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT work_order_id, status, assignee, priority, notes"
                                                 " FROM work_orders WHERE hotel_id = ?", [HOTEL])}
    finally:
        db.close()


def bench_converge(root: Path, cloud: CloudProc, n_kiosks: int, edits: int, n_wo: int = 50) -> dict:
    import random

    from kiosk import workorders
    from kiosk.workflow_rules import allowed_from

    rng = random.Random(7)
    dirs = [root / f"conv-{i}" for i in range(n_kiosks)]
    envs = []
    for i, d in enumerate(dirs):
        inst = kiosk_instance(d, f"conv-{i}")
        inst.init()
        envs.append(link(cloud, d, f"conv-{i}"))
    seed = kiosk_instance(dirs[0], "conv-0")
    for w in range(n_wo):
        workorders.create(seed.connect(), hotel_id=HOTEL, work_order_id=f"CW-{w}", by="bench", now=time.time(),
                          node="conv-0")
    sync_all(envs[:1])
    sync_all(envs)  # everyone has the 50 work orders; now the partition
    total = n_kiosks * edits
    with click.progressbar(length=total, label=f"offline edits: {n_kiosks} kiosks x {edits:,}",
                           file=sys.stderr) as bar:
        for i, d in enumerate(dirs):
            inst = kiosk_instance(d, f"conv-{i}")
            db = inst.connect()
            for e in range(edits):
                wo = f"CW-{rng.randrange(n_wo)}"
                status = db.execute("SELECT status FROM work_orders WHERE work_order_id = ?", [wo]).fetchone()[0]
                field = rng.choice(["status", "assignee", "priority", "notes", "notes"])
                value = {"status": rng.choice(allowed_from(status) or ["__none__"]),
                         "assignee": rng.choice(["ana", "ben", "eve", "kim"]),
                         "priority": rng.choice(["low", "normal", "high"]),
                         "notes": f"edit {e} at kiosk {i}"}[field]
                if value != "__none__":
                    try:
                        workorders.update(db, {"workOrderId": wo, "changes": {field: value}}, hotel_id=HOTEL,
                                          by=f"bench-{i}", now=time.time(), node=f"conv-{i}")
                    except Exception:  # noqa: BLE001 - an unchanged value is fine
                        pass
                bar.update(1)
            db.conn.close()
    t0 = time.perf_counter()
    rounds = 0
    while True:
        rounds += 1
        sync_all(envs)
        states = [wo_states(d) for d in dirs]
        cdb = sqlite3.connect(f"file:{cloud.dir / 'cloud.db'}?mode=ro", uri=True)
        states.append({r[0]: r[1:] for r in cdb.execute("SELECT work_order_id, status, assignee, priority, notes"
                                                         " FROM work_orders WHERE hotel_id = ?", [HOTEL])})
        cdb.close()
        pending = sum(sqlite3.connect(str(d / "kiosk.db")).execute(
            "SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0] for d in dirs)
        if pending == 0 and all(s == states[0] for s in states):
            break
        if rounds > 10:
            raise SystemExit("did not converge in 10 rounds")
    elapsed = time.perf_counter() - t0
    cdb = sqlite3.connect(f"file:{cloud.dir / 'cloud.db'}?mode=ro", uri=True)
    conflicts = cdb.execute("SELECT count(*) FROM conflicts").fetchone()[0]
    cdb.close()
    return {"kiosks": n_kiosks, "edits": total, "seconds": elapsed, "rounds": rounds, "conflicts": conflicts}


#: entity type -> (changes in the hotel's log, distinct entities) when the pull bench ran
BREAKDOWN: dict[str, tuple[int, int]] = {}


def bench_pull(root: Path, cloud: CloudProc, rooms: int, reservations: int, page_sizes=(100, 500, 1000)) -> list:
    import random

    from sync.cloud import db as cloud_db
    from sync.cloud import refdata

    rng = random.Random(11)
    room_rows = [{"room_number": str(100 + i), "room_type": rng.choice(["KING", "TWIN", "SUITE"]),
                  "floor": 1 + i // 50, "status": "Clean", "occupied": 0} for i in range(rooms)]
    res_rows = []
    for i in range(reservations):
        arrival = 20_000 + rng.randrange(400)
        res_rows.append({"confirmation": f"R{i:06d}", "guest_name": f"Guest {i}",
                         "room_number": rng.choice(room_rows)["room_number"],
                         "arrival": time.strftime("%Y-%m-%d", time.gmtime(arrival * 86400)),
                         "departure": time.strftime("%Y-%m-%d", time.gmtime((arrival + rng.randint(1, 7)) * 86400)),
                         "status": "Confirmed", "adults": 2, "children": 0, "rate_plan": "BAR",
                         "nightly_rate": 120.0, "currency": "EUR", "language": "en", "vip": 0, "segment": "Direct"})
    cdb = cloud_db.connect(cloud.dir / "cloud.db")
    hotel_rows = {"rooms": room_rows, "reservations": res_rows}
    with click.progressbar(length=rooms + reservations, label="cloud: import rooms + reservations",
                           file=sys.stderr) as bar:
        refdata.import_tables(cdb, HOTEL, hotel_rows, time.time(), progress=bar.update)
    # what a fresh kiosk of the hotel pulls: the log also holds what earlier parts of this run
    # pushed for the same hotel (the drain's tickets, every edit of the convergence run)
    BREAKDOWN.clear()
    BREAKDOWN.update({r[0]: (r[1], r[2]) for r in cdb.conn.execute(
        "SELECT entity_type, count(*), count(DISTINCT entity_id) FROM changes WHERE hotel_id = ?"
        " GROUP BY entity_type ORDER BY 2 DESC", [HOTEL]).fetchall()})
    cdb.conn.close()
    out = []
    for size in page_sizes:
        d = root / f"pull-{size}"
        kiosk_instance(d, f"pull-{size}").init()
        env = link(cloud, d, f"pull-{size}") | {"KIOSK__AGENT__PULL_PAGE_SIZE": str(size)}
        t0 = time.perf_counter()
        answer = sync_all([env])[0]
        elapsed = time.perf_counter() - t0
        db = sqlite3.connect(str(d / "kiosk.db"))
        got = db.execute("SELECT (SELECT count(*) FROM rooms) + (SELECT count(*) FROM reservations)").fetchone()[0]
        db.close()
        assert got == rooms + reservations, (got, answer)
        out.append({"page": size, "changes": answer["pulled"], "seconds": elapsed,
                    "rate": answer["pulled"] / elapsed})
    return out


# --- 6. cross-box latency -------------------------------------------------------------------

def bench_latency(root: Path, cloud: CloudProc, changes: int, *, live: bool,
                  chain: CloudProc | None = None) -> dict:
    """Seconds from a ticket committed at kiosk A to its row in kiosk B's database, ``changes``
    times, with both kiosks' agents running (``live``: the live pull on, else the 5 s pull only).
    ``chain``: ``cloud`` is a hub linked to it; also timed until the chain holds the ticket."""
    import random

    from kiosk import tickets

    mode = "live" if live else "poll"
    tag = f"hub-{mode}" if chain else mode
    extra = {} if live else {"KIOSK__AGENT__LIVE_PULL_WAIT_SECONDS": "0"}
    envs, agents, logs = [], [], []
    for name in (f"lat-{tag}-a", f"lat-{tag}-b"):
        d = root / name
        kiosk_instance(d, name).init()
        env = link(cloud, d, name) | extra
        envs.append(env)
        log = open(root / f"{name}.log", "w")  # noqa: SIM115 - closed below
        logs.append(log)
        agents.append(subprocess.Popen([str(BIN / "kiosk-agent"), "run"], env={**os.environ, **env},
                                       stdout=log, stderr=subprocess.STDOUT))
    a_db = kiosk_instance(root / f"lat-{tag}-a", f"lat-{tag}-a").connect()
    b_db = sqlite3.connect(f"file:{root / f'lat-{tag}-b' / 'kiosk.db'}?mode=ro", uri=True)
    c_db = sqlite3.connect(f"file:{chain.dir / 'cloud.db'}?mode=ro", uri=True) if chain else None
    rng = random.Random(5)
    out: list[float] = []
    at_chain: list[float] = []
    try:
        time.sleep(3)  # both agents started, their first pull done
        with click.progressbar(range(changes), label=f"cross-box latency ({tag})", file=sys.stderr) as bar:
            for i in bar:
                time.sleep(rng.uniform(0.2, 5.2))  # at a random moment of the 5 s pull schedule
                t0 = time.time()
                tid = tickets.create(a_db, {"type": "housekeeping", "title": f"Latency probe {i} {uuid.uuid4().hex}"},
                                     hotel_id=HOTEL, by="bench", now=t0, node=f"lat-{tag}-a",
                                     window=0)["ticket"]["ticketId"]
                deadline = t0 + 60
                where = [(b_db, out)] + ([(c_db, at_chain)] if c_db else [])
                while where:
                    for db, times in list(where):
                        if db.execute("SELECT 1 FROM tickets WHERE ticket_id = ?", [tid]).fetchone() is not None:
                            times.append(time.time() - t0)
                            where.remove((db, times))
                    if time.time() > deadline:
                        raise SystemExit(f"ticket {tid} did not reach kiosk B (or the chain) in 60 s; see lat-*.log")
                    time.sleep(0.005)
    finally:
        for p in agents:
            p.terminate()
            p.wait(timeout=30)
        for f in logs:
            f.close()
        a_db.conn.close()
        b_db.close()
        if c_db:
            c_db.close()
    return {"mode": mode, "via": "hub" if chain else "cloud", **spread(out),
            "chain": spread(at_chain) if at_chain else None}


def spread(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=100, method="inclusive")
    return {"n": len(times), "median": statistics.median(times), "p99": q[98], "max": max(times), "min": min(times)}


def report_latency(args, rows: list[dict]) -> None:
    print(f"\nCross-box latency: a ticket written at kiosk A until it is in kiosk B's database "
          f"({args.latency_changes} changes each; two `kiosk-agent run` linked to one `kiosk-cloud serve`, "
          f"or to a hub linked to a chain cloud; loopback)")
    print(f"{'kiosks linked to':18} {'pull':34} {'median s':>9} {'p99 s':>7} {'min s':>7} {'max s':>7}"
          f"   {'at the chain: median s':>22} {'p99 s':>7}")
    names = {"live": "live pull (wait 20 s) + 5 s pull", "poll": "5 s scheduled pull only"}
    for r in rows:
        chain = f"   {r['chain']['median']:>22.3f} {r['chain']['p99']:>7.3f}" if r["chain"] else ""
        via = "a hub" if r["via"] == "hub" else "the cloud"
        print(f"{via:18} {names[r['mode']]:34} {r['median']:>9.3f} {r['p99']:>7.3f} {r['min']:>7.3f} "
              f"{r['max']:>7.3f}{chain}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", "--n", type=int, default=100_000,
                    help="backlog drained batched (direct and through a hub)")
    ap.add_argument("--single", type=int, default=3_000, help="backlog drained one request per entry")
    ap.add_argument("--enqueue", type=int, default=5_000, help="entries enqueued by each contender")
    ap.add_argument("--kiosks", type=int, default=5, help="kiosks partitioned in the convergence run")
    ap.add_argument("--edits", type=int, default=1_000, help="offline edits per kiosk in the convergence run")
    ap.add_argument("--rooms", type=int, default=500)
    ap.add_argument("--reservations", type=int, default=50_000)
    ap.add_argument("--latency-changes", type=int, default=50, help="changes timed in each cross-box latency run")
    ap.add_argument("--only", choices=["push", "drain", "down", "latency", "hub"],
                    help="only the push side (1-3), the drain table (2-3), the sync-down side (4-5), the "
                         "cross-box latency (6), or only the rows with a hub (its drain and latency)")
    ap.add_argument("--no-hub", action="store_true", help="leave out the rows with a hub")
    ap.add_argument("--dir", help="where to put the databases (default: a temp dir on the data disk)")
    args = ap.parse_args()
    if args.only == "hub" and args.no_hub:
        ap.error("--only hub and --no-hub leave nothing to run")
    only = args.only
    direct = only != "hub"
    with_hub = not args.no_hub and only in (None, "push", "drain", "latency", "hub")
    do_latency = only in (None, "latency", "hub")
    do_enqueue = only in (None, "push")
    do_drain = only in (None, "push", "drain", "hub")
    do_down = only in (None, "down")
    enq = batched = single = via_hub = None
    latency: list[dict] = []
    root = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=args.dir))
    procs: list[CloudProc] = []
    try:
        cloud = CloudProc(root)
        procs.append(cloud)
        if with_hub:  # a chain cloud of its own (empty, as the direct one is), and the hub linked to it
            chain = CloudProc(root, "chain")
            procs.append(chain)
            hub = start_hub(root, chain)
            procs.append(hub)
        # the latency runs first: each kiosk's first pull is then short (nothing drained yet)
        if do_latency:
            for live in (True, False):
                if direct:
                    latency.append(bench_latency(root, cloud, args.latency_changes, live=live))
                if with_hub:
                    latency.append(bench_latency(root, hub, args.latency_changes, live=live, chain=chain))
        if do_enqueue:
            enq = bench_enqueue(root, args.enqueue)
        if do_drain:
            if direct:
                batched = drain(cloud, fill(root, "kiosk-batched", args.entries), args.entries, 500,
                                f"{args.entries:,} entries, batches of 500")
                single = drain(cloud, fill(root, "kiosk-single", args.single), args.single, 1,
                               f"{args.single:,} entries, one request each")
            if with_hub:
                via_hub = drain_via_hub(chain, hub, fill(root, "kiosk-hub", args.entries), args.entries)
        if do_down:
            conv = bench_converge(root, cloud, args.kiosks, args.edits)
            pulls = bench_pull(root, cloud, args.rooms, args.reservations)
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(root, ignore_errors=True)
    if enq:
        report_enqueue(args, enq)
    if do_drain:
        report_drain(args, batched, single, via_hub)
    if do_down:
        report_down(args, conv, pulls)
    if latency:
        report_latency(args, latency)


def report_down(args, conv: dict, pulls: list) -> None:
    print(f"\nConvergence after a partition: {conv['kiosks']} kiosks x {args.edits:,} offline work-order edits "
          f"({conv['edits']:,} in all, on 50 shared work orders)")
    print(f"  every kiosk equal to the cloud after {conv['seconds']:.1f} s in {conv['rounds']} rounds of "
          f"concurrent `sync --once` (push then pull); {conv['conflicts']:,} conflicts resolved and recorded")
    print(f"\nPull throughput: a fresh kiosk pulls {args.rooms:,} rooms + {args.reservations:,} reservations")
    print(f"{'page size':>10} {'changes':>9} {'seconds':>9} {'changes/s':>10}")
    for p in pulls:
        print(f"{p['page']:>10} {p['changes']:>9,} {p['seconds']:>9.1f} {p['rate']:>10,.0f}")
    if BREAKDOWN:
        print("what the hotel's log held (a fresh kiosk pulls all of it): " + ", ".join(
            f"{etype} {n:,} ({d:,} distinct)" for etype, (n, d) in BREAKDOWN.items()))


def report_enqueue(args, enq) -> None:
    print(f"\nDurable enqueue, {args.enqueue:,} ticket entries each (python {sys.version.split()[0]}, "
          f"sqlite {sqlite3.sqlite_version})")
    print(f"{'contender':52} {'journal':>8} {'sync':>5} {'median/s':>9} {'min/s':>9} {'max/s':>9}")
    for name, journal, sync_, rate, lo, hi in enq:
        print(f"{name:52} {journal:>8} {sync_:>5} {rate:>9,.0f} {lo:>9,.0f} {hi:>9,.0f}")
    print(f"synchronous 2 = FULL on both.  Ours / persist-queue: enqueue alone {enq[0][3] / enq[1][3]:.2f}x; "
          f"local change + enqueue {enq[3][3] / enq[4][3]:.2f}x")


def report_drain(args, batched: dict | None, single: dict | None, via_hub: dict | None) -> None:
    print("\nDraining a kiosk's backlog over loopback (kiosk-agent sync --once -> kiosk-cloud serve; through a hub:"
          " -> the hub, whose relay pushes on to the chain cloud)")
    print(f"{'mode':46} {'entries':>9} {'seconds':>9} {'entries/s':>10} {'100k would take':>16}")

    def row(name: str, n: int, r: dict) -> None:
        print(f"{name:46} {n:>9,} {r['elapsed']:>9.1f} {r['rate']:>10,.0f} {100_000 / r['rate']:>15.1f}s")
    if batched:
        row("batched (500 per request), to the cloud", args.entries, batched)
    if single:
        row("one request per entry, to the cloud", args.single, single)
    if via_hub:
        row("batched, kiosk -> hub (the agent done)", args.entries, via_hub["to_hub"])
        row("batched, kiosk -> hub -> chain (all at chain)", args.entries, via_hub)
    if batched and single:
        print(f"batched is {batched['rate'] / single['rate']:.0f}x faster; "
              f"{args.entries:,} entries one by one would take ~{args.entries / single['rate']:.0f} s")
    for name, r in (("to the cloud", batched), ("to the hub", via_hub and via_hub["to_hub"])):
        if r and r["transient"]:
            print(f"the agent's `sync --once` {name} was ended {len(r['transient'])} time(s) by a transient "
                  f"refusal and started again at once (a running agent backs off): {r['transient'][0]}")
    if batched and via_hub:
        print(f"through a hub the chain has them all {via_hub['elapsed'] / batched['elapsed']:.1f}x as late as "
              f"the cloud does when the kiosk pushes to it directly; every entry once at the chain, "
              f"the hub's relay outbox empty")
    if batched:
        m = memory_line(batched["samples"], args.entries)
        print(f"\nAgent RSS while draining {args.entries:,} entries (MB): at 10% of the drain {m['p10']:.1f}, "
              f"50% {m['p50']:.1f}, 90% {m['p90']:.1f}, peak {m['peak']:.1f}; "
              f"growth 10%->90%: {m['p90'] - m['p10']:+.1f} MB")
        print("RSS over time: " + spark([mb for _, mb, _ in batched["samples"]]))


if __name__ == "__main__":
    main()
