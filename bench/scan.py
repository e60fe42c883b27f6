"""Scan throughput and latency, in-process and over HTTP, with synchronous=FULL and NORMAL.

    .venv/bin/python bench/scan.py [--n 2000] [--clients 4] [--dir BASE] [--check]

For each ``store.synchronous`` mode (FULL, the shipped default, and NORMAL as
the comparison) a fresh instance is initialised in a temporary data dir and
``n`` one-time guest tokens are scanned in each of three ways:

* ``in-process``  -- ``ScanService.scan`` on one connection, no HTTP;
* ``in-process +claim`` -- the same, the kiosk linked to a real ``kiosk-cloud serve`` on
                     127.0.0.1 (SQLite): each one-time code is claimed there first
                     (``POST /sync/v1/claims``, kiosk/claims.py);
* ``http x1``     -- a real ``kiosk serve`` subprocess, one ``requests.Session``;
* ``http xC``     -- the same server, C concurrent clients (threads), each with
                     its own session, n scans in total.

Every scan must succeed (HTTP 200); latencies are per scan, wall-clock.  The
table goes to stdout, progress to stderr.  With ``--check`` the exit status is
1 when in-process p99 with FULL exceeds the 20 ms target.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import requests
import yaml

# run as `python bench/scan.py`: bench/ is sys.path[0], where bench/sync.py would shadow
# the `sync` package; the project's own packages come first
sys.path[0] = str(Path(__file__).resolve().parents[1])

from agent import link as agent_link  # noqa: E402
from kiosk import config as config_mod  # noqa: E402
from kiosk import tokens  # noqa: E402
from kiosk.instance import Instance  # noqa: E402
from kiosk.scan import ScanService  # noqa: E402

KIOSK = Path(sys.executable).parent / "kiosk"
KIOSK_CLOUD = Path(sys.executable).parent / "kiosk-cloud"
HOTEL = "demo"
TARGET_P99_MS = 20.0
MODES = ("FULL", "NORMAL")


# --- helpers --------------------------------------------------------------------------------------


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return float("nan")
    k = max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)
    return sorted_ms[k]


def summarise(name: str, mode: str, lat_s: list[float], wall_s: float) -> dict:
    ms = sorted(x * 1000 for x in lat_s)
    return {"how": name, "sync": mode, "n": len(ms), "rate": len(ms) / wall_s if wall_s else 0.0,
            "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": ms[-1] if ms else float("nan")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Progress:
    """A click progress bar on stderr that several threads may advance."""

    def __init__(self, total: int, label: str):
        self._bar = click.progressbar(length=total, label=label.ljust(24), file=sys.stderr, width=30)
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._bar.update(n)


class Server:
    """``kiosk serve`` on a free port; killed (whole process group) by :meth:`stop`."""

    def __init__(self, data_dir: Path, config_file: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [str(KIOSK), "--config", str(config_file), "--data-dir", str(data_dir), "serve",
                 "--port", str(self.port)],
                stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"kiosk serve exited {self.proc.returncode}; see {log}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"kiosk serve did not come up; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class CloudServer:
    """``kiosk-cloud serve`` (SQLite) on a free port, for the claim row; :meth:`stop` kills it."""

    def __init__(self, root: Path, log: Path):
        self.dir = root / "cloud"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [str(KIOSK_CLOUD), "serve", "--data-dir", str(self.dir), "--port", str(self.port)],
                stdout=f, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"kiosk-cloud serve exited {self.proc.returncode}; see {log}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"kiosk-cloud serve did not come up; see {log}")

    def device(self, device_id: str, hotel: str) -> str:
        p = subprocess.run([str(KIOSK_CLOUD), "--data-dir", str(self.dir), "device", "add", device_id,
                            "--hotel", hotel], capture_output=True, text=True, env=self.env, timeout=60)
        if p.returncode != 0:
            raise SystemExit(f"kiosk-cloud device add failed: {p.stderr}")
        return p.stdout.strip()

    def consumptions(self) -> int:
        db = sqlite3.connect(str(self.dir / "cloud.db"))
        try:
            return db.execute("SELECT count(*) FROM consumptions").fetchone()[0]
        finally:
            db.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


# --- one synchronous mode -------------------------------------------------------------------------


def issue_tokens(inst: Instance, count: int, label: str) -> list[str]:
    keys = inst.load_keys()
    db = inst.connect()
    prop = inst.config.property
    out = []
    with Progress(count, label) as bar:
        for i in range(count):
            # a guest's name on every code: the scan reads it and writes it to the session (sealed
            # under the guest's key where the kiosk keeps personal fields sealed, kiosk/guest_keys.py)
            tok, _row = tokens.issue(db, keys, hotel_id=HOTEL, role="guest", now=time.time(),
                                     ttl_seconds=3600, issuer=prop.issuer, node=prop.kiosk_id,
                                     issued_by="bench", name=f"Bench Guest {i}")
            out.append(tok)
            bar.advance()
    db.conn.close()
    return out


def bench_in_process(inst: Instance, toks: list[str], warm: int, mode: str, how: str = "in-process") -> dict:
    svc = ScanService(inst, inst.load_keys())
    db = inst.connect()
    for tok in toks[:warm]:
        svc.scan(db, {"qrToken": tok, "hotelId": HOTEL})
    lat = []
    with Progress(len(toks) - warm, f"{mode} {how}") as bar:
        t0 = time.perf_counter()
        for tok in toks[warm:]:
            s = time.perf_counter()
            svc.scan(db, {"qrToken": tok, "hotelId": HOTEL})
            lat.append(time.perf_counter() - s)
            bar.advance()
        wall = time.perf_counter() - t0
    db.conn.close()
    return summarise(how, mode, lat, wall)


def bench_claim(inst: Instance, root: Path, toks: list[str], warm: int, mode: str) -> dict:
    """The in-process row with the kiosk linked to a cloud on 127.0.0.1: every scan claims its
    code there first.  Checks that the cloud holds one consumption per scan."""
    cloud = CloudServer(root, root / "cloud.log")
    try:
        kiosk_id = inst.config.property.kiosk_id
        agent_link.save(inst.root, cloud=cloud.url, device_id=kiosk_id, credential=cloud.device(kiosk_id, HOTEL))
        row = bench_in_process(inst, toks, warm, mode, how="in-process +claim")
        held = cloud.consumptions()
    finally:
        cloud.stop()
        agent_link.path(inst.root).unlink(missing_ok=True)
    assert held == len(toks), f"the cloud holds {held} claims for {len(toks)} scans"
    return row


def bench_http(url: str, toks: list[str], warm: int, clients: int, mode: str) -> dict:
    with requests.Session() as http:
        for tok in toks[:warm]:
            r = http.post(url + "/api/qr/scan", json={"qrToken": tok, "hotelId": HOTEL}, timeout=10)
            r.raise_for_status()
    work = toks[warm:]
    shares = [work[i::clients] for i in range(clients)]
    lats: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    go = threading.Barrier(clients + 1)

    with Progress(len(work), f"{mode} http x{clients}") as bar:
        def client(i: int) -> None:
            with requests.Session() as http:
                http.get(url + "/healthz", timeout=10)  # open the connection before the clock starts
                go.wait()
                for tok in shares[i]:
                    s = time.perf_counter()
                    r = http.post(url + "/api/qr/scan", json={"qrToken": tok, "hotelId": HOTEL},
                                  timeout=10)
                    lats[i].append(time.perf_counter() - s)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    bar.advance()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for th in threads:
            th.start()
        go.wait()
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{len(failures)} scans failed over HTTP, e.g. {failures[0]}")
    return summarise(f"http x{clients}", mode, [x for lat in lats for x in lat], wall)


def run_mode(base: Path, mode: str, n: int, clients: int, serialize: bool = True) -> list[dict]:
    root = base / (mode.lower() + ("" if serialize else "-nolock"))
    root.mkdir()
    over = {"store": {"synchronous": mode, "serialize_writers": serialize}}
    config_file = root / "kiosk.yaml"
    config_file.write_text(yaml.safe_dump(over))
    data_dir = root / "kiosk"
    inst = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(data_dir), **over}))
    inst.init()
    warm = min(50, max(1, n // 20))
    rows = 4 if serialize else 1
    toks = issue_tokens(inst, rows * (n + warm), f"{mode} issuing tokens")
    batches = [toks[i * (n + warm):(i + 1) * (n + warm)] for i in range(rows)]

    server = Server(data_dir, config_file, root / "server.log")
    if serialize:
        results = [bench_in_process(inst, batches[0], warm, mode)]
        try:
            results.append(bench_http(server.url, batches[1], warm, 1, mode))
            results.append(bench_http(server.url, batches[2], warm, clients, mode))
        finally:
            server.stop()
        results.append(bench_claim(inst, root, batches[3], warm, mode))
    else:  # the alternative to the in-process writer queue: only SQLite's busy handler
        try:
            results = [bench_http(server.url, batches[0], warm, clients, mode)]
            results[0]["how"] += " busy-wait"
        finally:
            server.stop()

    db = sqlite3.connect(str(inst.db_path))
    sessions = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    db.close()
    assert sessions == len(batches) * (n + warm), f"{sessions} sessions for {len(batches) * (n + warm)} scans"
    return results


# --- main -----------------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    head = f"{'how':<22} {'sync':<7} {'n':>6} {'scans/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    lines = [head, "-" * len(head)]
    order = {"in-process": 0, "in-process +claim": 1}
    for r in sorted(results, key=lambda r: (order.get(r["how"], 2), r["how"], MODES.index(r["sync"]))):
        lines.append(f"{r['how']:<22} {r['sync']:<7} {r['n']:>6} {r['rate']:>9.0f} {r['p50']:>8.2f} "
                     f"{r['p99']:>8.2f} {r['max']:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="timed scans per row (default 2000)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    ap.add_argument("--dir", type=Path, default=None,
                    help="where to put the temporary data dirs (default: the system temp dir); "
                         "use the disk the kiosk will run on")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 if in-process p99 with FULL exceeds {TARGET_P99_MS:g} ms")
    args = ap.parse_args(argv)
    if args.n < 1 or args.clients < 1:
        ap.error("--n and --clients must be positive")

    base = Path(tempfile.mkdtemp(prefix="kiosk-bench-", dir=args.dir))
    results: list[dict] = []
    try:
        for mode in MODES:
            results += run_mode(base, mode, args.n, args.clients)
            results += run_mode(base, mode, args.n, args.clients, serialize=False)
    finally:
        if args.keep:
            print(f"data kept in {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)

    print(f"kiosk scan benchmark: n={args.n} per row, {args.clients} concurrent clients, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"data under {base.parent}")
    print(table(results))
    full = next(r for r in results if r["how"] == "in-process" and r["sync"] == "FULL")
    met = full["p99"] <= TARGET_P99_MS
    print(f"target: in-process p99 with FULL <= {TARGET_P99_MS:g} ms: "
          f"{'met' if met else 'NOT met'} ({full['p99']:.2f} ms)")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
