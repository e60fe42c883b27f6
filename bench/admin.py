"""The admin API at scale: analytics answer time and a streamed export's memory, vs row count.

    .venv/bin/python bench/admin.py [--sizes 10000,100000,1000000] [--repeat 5] [--dir BASE] [--check]

For each size N a fresh instance gets N synthetic ``audit_log`` rows (95 % for the
admin's hotel, 5 % for another), spread over the 30 days before now — scans that
succeeded or were refused with a code, and other events — plus N/10 sessions and N/10
model runs, bulk-inserted with ``executemany`` in one transaction.  Then:

* ``analytics``   ``GET /api/admin?endpoint=analytics&period=day|week|month`` through
                  the Flask app (in-process, an admin session): median and worst of
                  ``--repeat`` answers after one warm-up, and the alternative — the same
                  scan figures computed by loading the window's rows into Python;
* ``export``      ``GET /api/admin?endpoint=export&kinds=audit&period=month&format=csv``
                  consumed chunk by chunk in a child process: rows/s and the child's peak
                  RSS above its RSS before the export, and the alternative — the same CSV
                  built from ``fetchall()`` in memory.

The table goes to stdout, progress to stderr.  With ``--check`` the exit status is 1
when an analytics answer at the largest size takes longer than 2 s or the export's
peak RSS grows by more than 64 MiB.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# run as `python bench/admin.py`: bench/ is sys.path[0], where bench/sync.py would shadow
# the `sync` package; the project's own packages come first
sys.path[0] = str(Path(__file__).resolve().parents[1])

from kiosk import config as config_mod  # noqa: E402
from kiosk import tokens  # noqa: E402
from kiosk.clock import FakeClock  # noqa: E402
from kiosk.instance import Instance  # noqa: E402
from kiosk.web import create_app  # noqa: E402

HOTEL, OTHER = "demo", "harbor"
NOW = 1_780_000_000.0
DAYS = 30
TARGET_S = 2.0
TARGET_RSS_MIB = 64
CODES = ("INVALID_TOKEN", "TOKEN_EXPIRED", "TOKEN_ALREADY_USED", "HOTEL_MISMATCH", "RATE_LIMITED")
MODELS = ("guest-messaging", "room-status", "upsell-engine", "task-routing", "night-audit")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def instance(root: Path) -> Instance:
    cfg = config_mod.load(None, env={}, overrides={
        "data_dir": str(root), "property": {"hotels": [HOTEL, OTHER], "issuer": "bench", "kiosk_id": "bench"}})
    inst = Instance(cfg, clock=FakeClock(NOW))
    inst.init()
    return inst


def fill(path: Path, n: int, seed: int = 7) -> float:
    """N audit rows, N/10 sessions, N/10 model runs; returns the seconds it took."""
    rng = random.Random(seed)

    def hotel():
        return HOTEL if rng.random() < 0.95 else OTHER

    def audit():
        for i in range(n):
            at = NOW - rng.random() * DAYS * 86400
            r = rng.random()
            if r < 0.75:
                yield hotel(), at, "scan", "success", f"u{i % 500}", f"s{i}", f"j{i}", "10.0.0.2", None, '{"role":"guest"}'
            elif r < 0.85:
                code = rng.choice(CODES)
                event = "security.rate_limited" if code == "RATE_LIMITED" else "scan"
                yield hotel(), at, event, "refused", None, None, None, "10.0.0.3", code, '{"reason":"x"}'
            else:
                yield hotel(), at, "ticket.created", "success", "s-1", None, None, None, None, '{"ticketId":"T-1"}'

    def sessions():
        for i in range(n // 10):
            at = NOW - rng.random() * DAYS * 86400
            role = rng.choice(("guest", "guest", "guest", "staff", "admin"))
            yield f"sid{i}", hotel(), f"u{i}", role, None, f"j{i}", "camera", "10.0.0.2", at, at + 3600, at, None, None

    def runs():
        for _ in range(n // 10):
            status = rng.choices(("SUCCESS", "ERROR", "TIMEOUT", "INVALID"), (90, 4, 2, 4))[0]
            yield (hotel(), rng.choice(MODELS), None, "s-1", NOW - rng.random() * DAYS * 86400,
                   round(rng.lognormvariate(4, 0.6), 2), status, None, rng.randint(0, 3))

    t0 = time.perf_counter()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO audit_log (hotel_id, at, event, outcome, actor, session_id, jti, client, code,"
                     " details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", audit())
    conn.executemany("INSERT INTO sessions (id, hotel_id, user_id, role, display_name, jti, scan_method, client,"
                     " created_at, expires_at, last_seen_at, ended_at, end_reason)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", sessions())
    conn.executemany("INSERT INTO ai_interactions (hotel_id, model_id, session_id, actor, started_at, duration_ms,"
                     " status, error, actions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", runs())
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - t0


def admin_client(inst: Instance):
    app = create_app(instance=inst)
    client = app.test_client(use_cookies=False)
    keys = inst.load_keys()
    tok, _ = tokens.issue(inst.db(), keys, hotel_id=HOTEL, role="admin", now=NOW, ttl_seconds=86400,
                          issuer="bench", node="bench")
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": HOTEL})
    assert r.status_code == 200, r.get_json()
    return client, {"Authorization": "Bearer " + r.get_json()["sessionJWT"]}


def bench_analytics(inst: Instance, n: int, repeat: int) -> list[dict]:
    client, headers = admin_client(inst)
    out = []
    for period in ("day", "week", "month"):
        times, body = [], None
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            r = client.get(f"/api/admin?endpoint=analytics&period={period}", headers=headers)
            dt = time.perf_counter() - t0
            assert r.status_code == 200, r.get_json()
            body = r.get_json()
            if i:  # the first answer warms the page cache
                times.append(dt)
        out.append({"what": f"analytics period={period}", "n": n, "rows": body["scans"]["total"],
                    "median": statistics.median(times), "max": max(times)})
        # the alternative: the scan totals and series from the window's rows, counted in Python
        conn = sqlite3.connect(str(inst.db_path))
        start = NOW - {"day": 1, "week": 7, "month": 30}[period] * 86400
        t0 = time.perf_counter()
        ok = refused = 0
        codes: dict[str, int] = {}
        series: dict[int, list[int]] = {}
        size = 3600 if period == "day" else 86400
        for at, outcome, code in conn.execute(
                "SELECT at, outcome, code FROM audit_log WHERE hotel_id = ? AND at >= ? AND at <= ?"
                " AND event IN ('scan', 'security.rate_limited')", [HOTEL, start, NOW]).fetchall():
            bucket = series.setdefault(int(at // size), [0, 0])
            if outcome == "success":
                ok += 1
                bucket[0] += 1
            else:
                bucket[1] += 1
                refused += 1
                codes[code] = codes.get(code, 0) + 1
        dt = time.perf_counter() - t0
        conn.close()
        assert ok + refused == body["scans"]["total"], (ok, refused, body["scans"])
        out.append({"what": f"  rows into Python ({period})", "n": n, "rows": ok + refused, "median": dt, "max": dt})
    return out


def status_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MiB.

    Not ``getrusage().ru_maxrss``: Linux carries that across ``exec`` from the forked
    copy of the parent, so a child would report the parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def export_child(root: str, how: str) -> None:
    """In a fresh process: export the month's audit rows, print rows, bytes, seconds, RSS before and peak."""
    inst = instance(Path(root))
    client, headers = admin_client(inst)
    before = status_mib("VmRSS")
    t0 = time.perf_counter()
    rows = size = 0
    if how == "stream":
        r = client.get("/api/admin?endpoint=export&kinds=audit&period=month&format=csv", headers=headers,
                       buffered=False)
        assert r.status_code == 200
        tail = b""
        for chunk in r.response:
            chunk = chunk if isinstance(chunk, bytes) else chunk.encode()
            size += len(chunk)
            rows += chunk.count(b"\n")
            tail = chunk[-1:] or tail
        r.close()
        assert tail == b"\n"
        rows -= 1  # the header
    else:  # the alternative: every row in memory, then one CSV string
        conn = sqlite3.connect(str(inst.db_path))
        all_rows = conn.execute("SELECT at, id, event, outcome, actor, session_id, jti, client, code, details"
                                " FROM audit_log WHERE hotel_id = ? AND at >= ? AND at <= ? ORDER BY at, id",
                                [HOTEL, NOW - 30 * 86400, NOW]).fetchall()
        buf = io.StringIO()
        csv.writer(buf).writerows(all_rows)
        text = buf.getvalue().encode()
        rows, size = len(all_rows), len(text)
    dt = time.perf_counter() - t0
    print(json.dumps({"rows": rows, "bytes": size, "seconds": dt, "before": before, "peak": status_mib("VmHWM")}))


def bench_export(root: Path, n: int) -> list[dict]:
    out = []
    for how in ("stream", "fetchall"):
        p = subprocess.run([sys.executable, __file__, "--export-child", str(root), how], capture_output=True,
                           text=True, check=True)
        m = json.loads(p.stdout.strip().splitlines()[-1])
        out.append({"what": "export audit csv (stream)" if how == "stream" else "  fetchall + csv in memory",
                    "n": n, "rows": m["rows"], "median": m["seconds"], "max": m["seconds"],
                    "rate": m["rows"] / m["seconds"], "mib": m["bytes"] / 2**20,
                    "rss": m["peak"] - m["before"], "base": m["before"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where the temporary data dirs go")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--export-child", nargs=2, metavar=("ROOT", "HOW"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.export_child:
        export_child(*args.export_child)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="kiosk-bench-admin-", dir=args.dir))
    results = []
    try:
        for n in sizes:
            root = base / f"n{n}"
            inst = instance(root)
            log(f"n={n}: inserting ...")
            took = fill(inst.db_path, n)
            log(f"n={n}: inserted in {took:.1f} s; analytics ...")
            results += bench_analytics(inst, n, args.repeat)
            log(f"n={n}: export ...")
            results += bench_export(root, n)
            shutil.rmtree(root, ignore_errors=True) if not args.keep else None
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"kiosk admin benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()},"
          f" SQLite {sqlite3.sqlite_version}; audit rows over {DAYS} days (95 % this hotel), N/10 sessions,"
          f" N/10 model runs")
    print(f"{'what':<32}{'audit rows':>11}{'in window':>11}{'median s':>10}{'max s':>8}{'rows/s':>10}"
          f"{'out MiB':>9}{'RSS +MiB':>9}")
    print("-" * 100)
    for r in results:
        extra = (f"{r['rate']:>10.0f}{r['mib']:>9.1f}{r['rss']:>9.1f}" if "rate" in r else f"{'':>10}{'':>9}{'':>9}")
        print(f"{r['what']:<32}{r['n']:>11}{r['rows']:>11}{r['median']:>10.3f}{r['max']:>8.3f}{extra}")
    largest = max(sizes)
    slow = [r for r in results if r["n"] == largest and r["what"].startswith("analytics") and r["max"] > TARGET_S]
    fat = [r for r in results if r["what"].startswith("export") and r["rss"] > TARGET_RSS_MIB]
    verdict = "met" if not slow and not fat else "missed"
    print(f"target: analytics <= {TARGET_S} s at {largest} rows, export RSS growth <= {TARGET_RSS_MIB} MiB: {verdict}")
    return 1 if args.check and verdict == "missed" else 0


if __name__ == "__main__":
    sys.exit(main())
