"""Cloud benchmark: many kiosks pushing and pulling at once, SQLite against PostgreSQL.

Side by side in one run, for each backend — the reference cloud on SQLite (one process,
the embedded default), on PostgreSQL with 1 worker process and with 2 (gunicorn,
``kiosk-cloud serve --workers N --database URL``; a throwaway PostgreSQL server started
here, as the tests do):

1. **Push**: ``--kiosks`` simulated kiosks (50 and 200 by default; four kiosks per hotel)
   push ``--batches`` batches of ``--batch`` ticket entries each over HTTP, concurrently
   (client processes × threads, one keep-alive session per kiosk). Each kiosk's bodies are
   written before the clock starts, as a real kiosk writes its own on its own box. Entries
   applied per second (all entries / wall time) and push latency p50/p99 per request.
2. **Pull**: every kiosk pulls its hotel's whole change log from cursor 0, concurrently.
   Changes served per second.

Checked after each run: every entry is in the cloud exactly once (zero duplicates) and
every pulled log has every change once, in order (zero skipped).  Clients and servers
share the machine's CPUs, so figures include client overhead (sending and reading the
answers: the ``clients`` CPU column).

    python bench/cloud.py                              # 50 and 200 kiosks, 5 batches of 100 each
    python bench/cloud.py --kiosks 50 --batches 2      # quicker
    python bench/cloud.py --rounds 3                   # each case three times, interleaved; medians
    python bench/cloud.py --mixed --batches 10         # pushes of 1 to 100 entries, as outboxes hold
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))  # the sync package, not bench/sync.py beside this file
BIN = Path(sys.executable).parent
NOW = time.time()


def entry(kiosk: int, n: int, hotel: str) -> dict:
    hlc = f"{int(NOW * 1000):015d}-{n % 100000:05d}-k{kiosk}"
    tid = f"T-k{kiosk}-{n}"
    return {"key": f"k{kiosk}-{n}", "hotelId": hotel, "kind": "ticket.created", "entityType": "ticket",
            "entityId": tid, "hlc": hlc, "createdAt": NOW,
            "payload": {"ticketId": tid, "type": "housekeeping", "title": f"towels {n}", "description": "",
                        "roomNumber": str(100 + n % 300), "priority": "normal", "queue": "housekeeping",
                        "status": "received", "fingerprint": f"k{kiosk}n{n}".ljust(20, "x")[:20],
                        "createdAt": "2026-12-01T10:00:00.000Z", "createdBy": "s-1"}}


def hotel_of(kiosk: int) -> str:
    return f"h{kiosk // 4:03d}"


def batch_sizes(kiosk: int, batches: int, batch: int, mixed: bool) -> list[int]:
    """The sizes of a kiosk's pushes: ``batch`` each, or (``mixed``) drawn from 1 to ``batch``
    (seeded by the kiosk), as a kiosk's outbox holds a few entries or a backlog."""
    if not mixed:
        return [batch] * batches
    rnd = random.Random(kiosk)
    return [rnd.randint(1, batch) for _ in range(batches)]


# --- client side (runs in worker processes) --------------------------------------------------

def _client(ready, start, finish, out, args) -> None:
    """One client process: its kiosks' bodies written first (as each kiosk writes its own, on its
    own box: what this process spends while the clock runs is sending them and reading the
    answers), then ``ready``; at ``start`` every kiosk pushes its batches at once.  Puts
    (latencies, entries applied, errors) on ``out`` and waits at ``finish`` (so its CPU is read
    while it is alive)."""
    import orjson
    import requests

    url, kiosks, creds, batches, batch, mixed = args
    bodies = {}
    for k in kiosks:
        sizes, first = batch_sizes(k, batches, batch, mixed), 0
        bodies[k] = []
        for size in sizes:
            bodies[k].append(orjson.dumps({"deviceId": f"k{k}",
                                           "entries": [entry(k, first + i, hotel_of(k)) for i in range(size)]}))
            first += size
    latencies: list[float] = []
    errors: list[str] = []
    applied = [0]
    lock = threading.Lock()

    def kiosk_loop(k: int) -> None:
        s = requests.Session()
        s.headers.update({"Authorization": f"Bearer {creds[str(k)]}", "Content-Type": "application/json"})
        for b in range(batches):
            t0 = time.perf_counter()
            for attempt in range(5):  # as the agent does: a dropped connection is resent, same key
                try:
                    r = s.post(url + "/sync/v1/push", data=bodies[k][b], headers={"Idempotency-Key": f"k{k}-b{b}"},
                               timeout=300)
                    break
                except requests.ConnectionError as e:
                    with lock:
                        errors.append(f"resent after: {e}"[:200])
                    if attempt == 4:
                        raise
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                else:
                    applied[0] += sum(1 for x in orjson.loads(r.content)["results"] if x["status"] == "applied")

    threads = [threading.Thread(target=kiosk_loop, args=(k,)) for k in kiosks]
    ready.wait()
    start.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((latencies, applied[0], errors))
    finish.wait()


def _puller(args) -> tuple[int, list[str]]:
    import requests

    url, kiosks, creds = args
    served = [0]
    problems: list[str] = []
    lock = threading.Lock()

    def pull_loop(k: int) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {creds[str(k)]}"
        cursor, seqs, ids = 0, [], []
        while True:
            page = s.get(url + f"/sync/v1/pull?hotel={hotel_of(k)}&after={cursor}&limit=1000", timeout=300).json()
            seqs += [c["seq"] for c in page["changes"]]
            ids += [c["entityId"] for c in page["changes"]]
            cursor = page["cursor"]
            if not page["more"]:
                break
        with lock:
            served[0] += len(seqs)
            if seqs != sorted(set(seqs)) or len(ids) != len(set(ids)):
                problems.append(f"k{k}: out of order or twice")

    threads = [threading.Thread(target=pull_loop, args=(k,)) for k in kiosks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return served[0], problems


def split(items: list, n: int) -> list[list]:
    return [items[i::n] for i in range(n) if items[i::n]]


# --- server side ----------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, database: str | None, workers: int):
        self.root, self.database, self.workers = root, database, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **({"KIOSK_CLOUD_DATABASE": database} if database else {})}
        self.proc = None

    def _storage(self):
        from sync.cloud import storage

        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = storage.open_storage(self.root, self.database, pool_size=2)
        st.prepare()
        return st

    def add_devices(self, kiosks: range) -> dict[str, str]:
        """Each kiosk registered as ``kiosk-cloud device add`` registers it (the same call, in
        this process: 200 CLI processes took minutes of the run); their credentials."""
        from sync.cloud import devices

        st = self._storage()
        try:
            db = st.connect()
            return {str(k): devices.add_device(db, f"k{k}", [hotel_of(k)], time.time()) for k in kiosks}
        finally:
            st.close()

    def tickets_held(self) -> int:
        st = self._storage()
        try:
            return st.connect().execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        finally:
            st.close()

    def start(self) -> None:
        import requests

        args = [str(BIN / "kiosk-cloud"), "serve", "--data-dir", str(self.root), "--port", str(self.port),
                "--threads", "16", "--log-level", "WARNING"]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/sync/v1/health", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("cloud did not start")

    def stop(self) -> None:
        if self.proc:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(30)


def _process_table() -> dict[int, tuple[int, float]]:
    """Every process: its parent and its CPU seconds so far (user + system, its waited-for
    children's too), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            out[int(name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    return out


def cpu_by_group(groups: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each group: a root process and every process below it.  The
    bench's own process is above the cloud's: the other roots take their trees first, and the
    bench's group is what is left below it (its client processes)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    owner: dict[int, str] = {}
    for name, root in sorted(groups.items(), key=lambda g: g[1] == os.getpid()):  # the bench's last
        stack = [root] if root in table else []
        while stack:
            pid = stack.pop()
            if pid not in owner:
                owner[pid] = name
                stack += children.get(pid, [])
    out = dict.fromkeys(groups, 0.0)
    for pid, name in owner.items():
        out[name] += table[pid][1]
    return out


def run_case(label: str, server: Server, n_kiosks: int, batches: int, batch: int, procs: int,
             db_pid: int | None = None, mixed: bool = False) -> dict:
    creds = server.add_devices(range(n_kiosks))
    server.start()
    try:
        kiosks = list(range(n_kiosks))
        ctx = multiprocessing.get_context("spawn")
        parts_of = split(kiosks, procs)  # (fewer than procs when there are fewer kiosks)
        ready, start, finish = (ctx.Barrier(len(parts_of) + 1) for _ in range(3))
        out = ctx.Queue()
        clients = [ctx.Process(target=_client, args=(ready, start, finish, out,
                                                     (server.url, ks, creds, batches, batch, mixed)))
                   for ks in parts_of]
        for p in clients:
            p.start()
        try:
            groups = {"cloud": server.proc.pid, "database": db_pid, "clients": os.getpid()}
            ready.wait(timeout=300)  # every body written
            cpu0 = cpu_by_group(groups)
            t0 = time.perf_counter()
            start.wait(timeout=60)
            parts = [out.get(timeout=600) for _ in clients]
            wall = time.perf_counter() - t0
            cpu1 = cpu_by_group(groups)
            finish.wait(timeout=60)
        finally:
            for p in clients:
                p.join(60)
                if p.is_alive():
                    p.kill()
        lat = sorted(x for p in parts for x in p[0])
        applied = sum(p[1] for p in parts)
        errors = [e for p in parts for e in p[2]]
        with ctx.Pool(procs) as pool:
            pool.map(abs, range(procs))  # the pulling processes started before the clock does
            t0 = time.perf_counter()
            pulls = pool.map(_puller, [(server.url, ks, creds) for ks in split(kiosks, procs)])
            pull_wall = time.perf_counter() - t0
    finally:
        server.stop()
    held = server.tickets_held()
    pushed = {k: sum(batch_sizes(k, batches, batch, mixed)) for k in range(n_kiosks)}
    total = sum(pushed.values())
    # each kiosk pulls its hotel's whole log: what its hotel's kiosks pushed
    by_hotel = Counter()
    for k, n in pushed.items():
        by_hotel[hotel_of(k)] += n
    owed = sum(by_hotel[hotel_of(k)] for k in range(n_kiosks))
    served = sum(p[0] for p in pulls)
    return {"label": label, "kiosks": n_kiosks, "entries": total, "applied": applied, "held": held,
            "errors": len(errors), "firstError": errors[:1],
            "perSecond": total / wall, "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "pulled": served, "pullPerSecond": served / pull_wall,
            # CPU per entry of the push phase (µs): the clients are the bench's own processes
            "cpu": {g: (cpu1[g] - cpu0[g]) / total * 1e6 for g in groups if groups[g] is not None},
            "pullProblems": sum(len(p[1]) for p in pulls), "owed": owed}


def statements_per_push(url: str | None, batch: int) -> tuple[int, int | None, float]:
    """(statements, round trips, ms) of a push of ``batch`` new tickets with an Idempotency-Key,
    applied in this process as the push route applies it (``pushes.respond``: the key's answer,
    the entries, the answer remembered, in one transaction).  Statements: each ``execute`` and
    ``executemany`` (one multi-row statement or a batch of them).  Round trips (PostgreSQL): the
    times the push waits for the database — a statement outside a pipeline, a read inside one
    (which collects every answer sent before it), a BEGIN outside one and the COMMIT.  SQLite
    makes none (None).  The time is the median of 20 more pushes."""
    from sync.cloud import devices, pushes, storage

    st = storage.open_storage(Path(tempfile.mkdtemp(prefix="kiosk-stmts-")), url)
    st.prepare()
    db = st.connect()
    counts = {"statements": 0, "trips": 0}
    patched = []

    def patch(cls, name, wrapper):
        patched.append((cls, name, cls.__dict__.get(name)))  # as the class holds it (a classmethod too)
        setattr(cls, name, wrapper(getattr(cls, name)))

    def unpatch():
        for cls, name, original in reversed(patched):
            if original is None:
                delattr(cls, name)  # it was inherited
            else:
                setattr(cls, name, original)
        patched.clear()

    def counting(f, trip=None):
        def wrapped(self, *a, **kw):
            counts["statements"] += 1
            counts["trips"] += trip(self) if trip else 0
            return f(self, *a, **kw)
        return wrapped

    try:
        devices.add_device(db, "k0", [hotel_of(0)], NOW)
        dev = devices.Device("k0", (hotel_of(0),))
        pushes.respond(db, dev, [entry(0, i, hotel_of(0)) for i in range(batch)], NOW, "warm")
        if url:
            def answered(f):
                def wrapped(self, sent):
                    counts["trips"] += getattr(self, "_pipeline", None) is not None and sent > self._synced
                    return f(self, sent)
                return wrapped

            def transaction(bound):
                def wrapped(cls, db):
                    counts["trips"] += 1 if getattr(db, "_pipeline", None) is not None else 2  # (BEGIN: with the next read)
                    return bound(db)
                return classmethod(wrapped)

            outside = lambda self: getattr(self, "_pipeline", None) is None  # noqa: E731 (and code before pipelines)
            patch(storage.PgDatabase, "execute", lambda f: counting(f, outside))
            patch(storage.PgDatabase, "executemany", lambda f: counting(f, outside))
            if hasattr(storage.PgDatabase, "answered"):
                patch(storage.PgDatabase, "answered", answered)
            patch(storage.PostgresStorage, "transaction", transaction)
        else:
            patch(type(db.conn), "execute", counting)
            patch(type(db.conn), "executemany", counting)
        pushes.respond(db, dev, [entry(0, batch + i, hotel_of(0)) for i in range(batch)], NOW, "counted")
        statements, trips = counts["statements"], counts["trips"]
        unpatch()
        times = []  # the time: the median of 20 more pushes (one alone is mostly noise on a shared box)
        for n in range(2, 22):
            t0 = time.perf_counter()
            pushes.respond(db, dev, [entry(0, n * batch + i, hotel_of(0)) for i in range(batch)], NOW, f"p{n}")
            times.append((time.perf_counter() - t0) * 1000)
        return statements, trips if url else None, sorted(times)[len(times) // 2]
    finally:
        unpatch()
        st.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiosks", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--batches", type=int, default=5, help="batches each kiosk pushes")
    ap.add_argument("--batch", type=int, default=100, help="entries per batch")
    ap.add_argument("--mixed", action="store_true",
                    help="each push of 1 to --batch entries (seeded per kiosk) instead of --batch each")
    ap.add_argument("--procs", type=int, default=4, help="client processes")
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the cases this many times, interleaved (each round every backend once); the"
                         " medians and each round's PostgreSQL/SQLite ratios are printed after the rows")
    args = ap.parse_args()
    import pgserver

    base = Path(tempfile.mkdtemp(prefix="kiosk-cloud-bench-"))
    pg = None
    rows = []
    try:
        cases = []
        if args.only != "postgresql":
            cases.append(("sqlite, 1 process", None, 1))
        if args.only != "sqlite":
            why = pgserver.available()
            if why:
                print(f"PostgreSQL skipped: {why}", file=sys.stderr)
            else:
                pg = pgserver.PgServer().start()
                cases += [("postgresql, 1 worker", "pg", 1), ("postgresql, 2 workers", "pg", 2)]
        n = 0
        for kiosks in args.kiosks:
            for round_ in range(1, args.rounds + 1):
                for label, db, workers in cases:
                    n += 1
                    url = pg.new_database(f"bench{n}") if db else None
                    print(f"… {label}, {kiosks} kiosks, round {round_} of {args.rounds}", file=sys.stderr, flush=True)
                    rows.append({**run_case(label, Server(base / f"c{n}", url, workers), kiosks, args.batches,
                                            args.batch, args.procs, pg.postmaster_pid() if db else None,
                                            args.mixed),
                                 "round": round_})
                    if db:  # every case meets the server as the first did: its 64 MB of buffers free of
                        pg.drop_database(f"bench{n}")  # earlier cases' dirty pages, which it wrote out itself
                    shutil.rmtree(base / f"c{n}", ignore_errors=True)
        stmts = [("sqlite", *statements_per_push(None, args.batch))]
        if pg:
            stmts.append(("postgresql", *statements_per_push(pg.new_database("stmts"), args.batch)))
    except BaseException:
        report(args, rows, [])  # what was measured is not lost with a later failure
        raise
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    report(args, rows, stmts)


def report(args, rows: list[dict], stmts: list) -> None:
    print(f"a push of {args.batch} new tickets with an Idempotency-Key, in process (median time of 20): " + "; ".join(
        f"{name} {n} statements" + (f", {trips} round trips" if trips is not None else "") + f" ({ms:.1f} ms)"
        for name, n, trips, ms in stmts))
    sizes = f"of 1 to {args.batch} (seeded)" if args.mixed else f"x {args.batch}"
    print(f"cloud benchmark: {args.batches} batches {sizes} entries per kiosk, 4 kiosks per hotel,"
          f" {os.cpu_count()} CPUs, {args.procs} client processes")
    print("cpu: µs of CPU per entry during the push, of the cloud's processes, PostgreSQL's, the clients'")
    print(f"{'backend':24} {'kiosks':>6} {'entries':>8} {'applied/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'dupl.':>6} {'pulled/s':>9} {'skipped':>8} {'errors':>6}  {'cpu: cloud':>10} {'db':>5} {'clients':>7}")
    for r in rows:
        dupl = r["held"] - r["entries"]
        skipped = r["owed"] - r["pulled"] + r["pullProblems"]
        print(f"{r['label']:24} {r['kiosks']:>6} {r['entries']:>8} {r['perSecond']:>10.0f} {r['p50']:>8.1f}"
              f" {r['p99']:>8.1f} {dupl:>6} {r['pullPerSecond']:>9.0f} {skipped:>8} {r['errors']:>6}"
              f"  {cpu_columns(r['cpu'])}")
        if r["firstError"]:
            print("   first error:", r["firstError"][0])
    if args.rounds > 1:
        summary(rows)


def summary(rows: list[dict]) -> None:
    """Medians over the rounds, and each round's rate of each backend against SQLite's in the
    same round (the machine's load moves every row; a ratio taken within a round less so)."""
    print(f"\nmedians of {max(r['round'] for r in rows)} rounds; each round's applied/s against SQLite's in that round")
    print(f"{'backend':24} {'kiosks':>6} {'applied/s':>10} {'p50 ms':>8} {'p99 ms':>8}  {'cpu: cloud':>10} {'db':>5}"
          f" {'clients':>7}  against SQLite, each round")
    for kiosks in dict.fromkeys(r["kiosks"] for r in rows):
        base = {r["round"]: r["perSecond"] for r in rows if r["kiosks"] == kiosks and r["label"].startswith("sqlite")}
        for label in dict.fromkeys(r["label"] for r in rows):
            mine = [r for r in rows if r["kiosks"] == kiosks and r["label"] == label]
            ratios = "" if label.startswith("sqlite") or not base else " ".join(
                f"{r['perSecond'] / base[r['round']]:.2f}" for r in mine if r["round"] in base)
            cpu = {g: median([r["cpu"][g] for r in mine]) for g in mine[0]["cpu"]}
            print(f"{label:24} {kiosks:>6} {median([r['perSecond'] for r in mine]):>10.0f}"
                  f" {median([r['p50'] for r in mine]):>8.1f} {median([r['p99'] for r in mine]):>8.1f}"
                  f"  {cpu_columns(cpu)}  {ratios}")


def cpu_columns(cpu: dict[str, float]) -> str:
    """The cloud's, the database's (``-`` on SQLite) and the clients' µs per entry, as columns."""
    db = f"{cpu['database']:>5.0f}" if "database" in cpu else f"{'-':>5}"
    return f"{cpu['cloud']:>10.0f} {db} {cpu['clients']:>7.0f}"


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


if __name__ == "__main__":
    main()
