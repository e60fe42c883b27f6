"""Power cuts: the real programs on LazyFS, cut at random moments (issue 15).

Killing a process keeps the operating system's page cache; a power cut does not.  Here
the kiosk box (``kiosk serve``, ``kiosk-agent run``, and now and then ``kiosk init`` and
``kiosk-agent link`` of a second instance) keeps its data on one LazyFS mount and the
cloud (``kiosk-cloud serve``, and its CLI creating and retiring signing keys and revoking
tokens: key rotation) on another.  Between them a recording proxy (the network, in this
process) notes every answer the cloud gives.  Clients in this process scan tokens (fresh
one-time ones, reusable ones, invalid ones, and used ones again) and post PMS updates
and tickets all the while.

A cut, at a random moment: kill -9 of every process of the box, of the cloud or of both,
``lazyfs::clear-cache`` (every byte not fsync'ed is gone), unmount, mount.  Then, on
what the disk holds, before anything starts again:

* every scan answered success still has its token consumed and its session (a token
  usable again would be a replay); a refused scan left neither; a scan that got no
  answer committed all of it or nothing;
* every PMS update and ticket answered ``queued`` is in the outbox;
* every entry the kiosk marked delivered was answered by the cloud (the proxy saw it)
  and the cloud holds it; every entry the cloud answered applied or duplicate is still
  in the cloud after a cut of the cloud;
* the pull cursor never covers a change that is not applied (trust keys in
  ``keys/trust.json``, revocations in the store); keys, session secret, trust list and
  link file are complete; what ``init``, ``link`` and the cloud's key commands
  acknowledged is there;

then every program that was cut starts again (time to ready = the recovery time; one
that does not come up is a failed start), and used tokens are scanned again (a success
is a replay).  Every few cuts the load pauses, the backlog drains, and the cloud must
hold every acknowledged action exactly once and agree with the kiosk.

With a hub in the path (``World(hub=True)``): the kiosk box's agent links to a property
hub (``kiosk-cloud serve`` linked upstream with ``kiosk-cloud link``) on a third LazyFS
mount, whose relay pushes on to the chain cloud ("cloud") through a second recording
proxy.  The hub is a machine of its own on the property (the back office's PC, the comms
room's server: docs/deployment.md), so it has its own disk and its own power: cuts hit the
box, the hub or the chain alone, the box and the hub together (the property's power
fails), the hub and the chain, or all three; and they are aimed at the hub's moments too
(the chain answered a relayed push and the hub has not heard, the hub marking relayed
entries delivered, the hub applying a page of the chain's log, the hub's WAL fsync).  After
a cut of the hub: every push it answered is on its disk and queued for the chain in the
same transaction; every entry its relay marked delivered was answered by the chain and
the chain holds it; its cursor on the chain's log covers nothing it lacks; its link file
is whole.  At a drain the hub's relay outbox must be empty (none waiting, none dead) and
the chain must hold every acknowledged action exactly once: its entry keys are the
kiosk's outbox keys, no more, no fewer, each once (at the hub too).

Figures go to stdout and test-artifacts/powercut-<label>.json.  CI runs a short run
(``POWERCUT_CUTS`` cuts, default 6), a short run with a hub (``POWERCUT_HUB_CUTS``, default
4) and a control with ``store.synchronous: NORMAL`` that must lose acknowledged writes
(else the suite could not see a loss).  The long runs are marked slow (``pytest -m slow
tests/test_powercut.py``; ``POWERCUT_LONG_CUTS``, default 200, ``POWERCUT_HUB_LONG_CUTS``,
default 100, for the one with a hub, and ``POWERCUT_NORMAL_CUTS``, default 50, for the
NORMAL comparison).  docs/durability.md has the figures and what each setting promises.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import stat
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import lazyfs
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from harness import BIN, free_port, wait_for

from kiosk import config as config_mod
from kiosk import files, tokens, workorders
from kiosk.instance import Instance
from kiosk.trust import key_id

SEED = int(os.environ.get("POWERCUT_SEED", "20261201"))
SHORT_CUTS = int(os.environ.get("POWERCUT_CUTS", "6"))
LONG_CUTS = int(os.environ.get("POWERCUT_LONG_CUTS", "200"))
HUB_CUTS = int(os.environ.get("POWERCUT_HUB_CUTS", "4"))
HUB_LONG_CUTS = int(os.environ.get("POWERCUT_HUB_LONG_CUTS", "100"))
NORMAL_CUTS = int(os.environ.get("POWERCUT_NORMAL_CUTS", "50"))
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

HOTEL = "demo"
KIOSK_ID = "lobby"
HUB_ID = "hub-1"  # the hub's device at the chain cloud
WORK_ORDERS = 6
START_DEADLINE = 180.0  # seconds a program may take to come up after a cut (a loaded 2-core box)

#: the moments a cut is aimed at, with their shares of the cuts, and the sides they belong to
#: (None: any).  "random" is a random delay into the load; the proxy fires the "push"/"pull"
#: ones on the cloud's answer; the others are LazyFS crash faults (a cut at exactly that
#: file operation: LazyFS kills itself and its cache, before or after the operation).
MOMENTS: dict[str, tuple[float, str | None]] = {
    "random": (0.34, None),
    "push answered by the cloud, not yet relayed": (0.10, None),
    "push answer relayed (agent marking delivered)": (0.10, "box"),
    "pull page relayed (agent applying it)": (0.08, "box"),
    "kiosk commit (WAL fsync)": (0.08, "box"),
    "trust list written by a pull": (0.08, "box"),
    "cloud commit (WAL fsync)": (0.08, "cloud"),
    "init/link file operation": (0.14, "box"),
}
#: with a hub: the box pushes to the hub, whose relay pushes to the chain cloud ("cloud")
HUB_MOMENTS: dict[str, tuple[float, str | None]] = {
    "random": (0.30, None),
    "push answered by the hub, not yet relayed": (0.07, None),
    "push answer relayed (agent marking delivered)": (0.07, "box"),
    "pull page relayed (agent applying it)": (0.05, "box"),
    "kiosk commit (WAL fsync)": (0.05, "box"),
    "relay push answered by the chain, not yet relayed": (0.09, None),
    "relay push answer relayed (hub marking delivered)": (0.09, "hub"),
    "chain pull page relayed (hub applying it)": (0.07, "hub"),
    "hub commit (WAL fsync)": (0.09, "hub"),
    "chain commit (WAL fsync)": (0.05, "cloud"),
    "trust list written by a pull": (0.03, "box"),
    "init/link file operation": (0.04, "box"),
}
#: the moments that come only while the hub's relay runs
RELAY_MOMENTS = ("relay push", "chain pull")
#: the sides a cut hits, and their shares: without a hub, and with one (box + hub: the
#: property's power fails)
SIDES = ((("box",), 0.45), (("cloud",), 0.25), (("box", "cloud"), 0.30))
HUB_SIDES = ((("box",), 0.20), (("hub",), 0.30), (("cloud",), 0.10), (("box", "hub"), 0.20),
             (("hub", "cloud"), 0.05), (("box", "hub", "cloud"), 0.15))
#: a cut aimed at a commit: the LazyFS crash fault at the fsync of that database's WAL
WAL_FSYNCS = {"kiosk commit (WAL fsync)": ("box", "kiosk/kiosk.db-wal"),
              "cloud commit (WAL fsync)": ("cloud", "cloud/cloud.db-wal"),
              "chain commit (WAL fsync)": ("cloud", "cloud/cloud.db-wal"),
              "hub commit (WAL fsync)": ("hub", "hub/cloud.db-wal")}
INIT_FILES = ("issuer.pem", "trust.json", "session.secret", "cloud.json", "kiosk.db")

_UNUSABLE = lazyfs.unusable()
needs_lazyfs = pytest.mark.skipif(_UNUSABLE is not None, reason=_UNUSABLE or "")


# --- the network: a proxy that remembers what the cloud answered ------------------------------

class Recorder:
    """HTTP proxy agent -> cloud (or hub -> chain cloud) on 127.0.0.1; ``answers`` maps every
    entry key the cloud answered ``applied`` or ``duplicate`` to that status (noted before the
    agent sees it); ``seen_at``: when each request came (monotonic)."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.answers: dict[str, str] = {}
        self.in_flight: Counter = Counter()
        self.seen_at: list[float] = []
        self.lock = threading.Lock()
        self.armed: tuple | None = None  # (what, when, predicate, event): see arm()
        self.released = threading.Event()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                what = "push" if self.path.startswith("/sync/v1/push") else \
                    "pull" if self.path.startswith("/sync/v1/pull") else "other"
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection", "transfer-encoding")}
                with rec.lock:
                    rec.in_flight[what] += 1
                    rec.seen_at.append(time.monotonic())
                try:
                    r = requests.request(self.command, rec.upstream + self.path, data=body, headers=headers,
                                         timeout=60)
                except requests.RequestException:
                    return self._reply(502, b'{"error": "cloud unreachable"}', "application/json")
                finally:
                    with rec.lock:
                        rec.in_flight[what] -= 1
                if what == "push" and r.status_code == 200:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        done = {x["key"]: x["status"] for x in r.json()["results"]
                                if x.get("status") in ("applied", "duplicate")}
                        with rec.lock:
                            rec.answers.update(done)
                fire = None
                with rec.lock:
                    a = rec.armed
                    if a is not None and a[0] == what and r.status_code == 200:
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            if a[2](r.json()):
                                fire, rec.armed = a, None
                if fire is not None and fire[1] == "before":  # the cloud answered; the kiosk has not heard
                    fire[3].set()
                    rec.released.wait(120)
                self._reply(r.status_code, r.content, r.headers.get("Content-Type", "application/json"))
                if fire is not None and fire[1] == "after":  # the kiosk has the answer and acts on it
                    fire[3].set()

            def _reply(self, code: int, content: bytes, ctype: str):
                with contextlib.suppress(OSError):
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # an agent killed mid-request: expected
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arm(self, what: str, when: str, predicate) -> threading.Event:
        """The event is set at the next ``what`` (push/pull) answer for which ``predicate(body)``
        holds: ``before`` relaying it (which then waits for :meth:`release`) or ``after``."""
        with self.lock:
            self.released.clear()
            self.armed = (what, when, predicate, threading.Event())
            return self.armed[3]

    def release(self) -> None:
        with self.lock:
            self.armed = None
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


class NotifySocket:
    """A stand-in for systemd's notify socket: the agent says READY=1 on it once it runs."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.5)
        self.ready_at: list[float] = []
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.closed:
            try:
                msg = self.sock.recv(4096).decode(errors="replace")
            except (TimeoutError, OSError):
                continue
            if "READY=1" in msg.split("\n"):
                self.ready_at.append(time.monotonic())

    def ready_since(self, t: float) -> bool:
        return any(at >= t for at in self.ready_at)

    def close(self):
        self.closed = True
        self.sock.close()


def eio_retried(f):
    """A look at a SQLite file, tried again when LazyFS failed it with EIO (see World.lazyfs_error)."""
    def look(self, *a, **kw):
        for attempt in range(3):
            try:
                return f(self, *a, **kw)
            except sqlite3.OperationalError as e:
                if "disk I/O error" not in str(e) or attempt == 2:
                    raise
                self.lazyfs_error(str(e), f.__name__)
    return look


@contextlib.contextmanager
def opened(path: Path):
    """A short-lived read-only look at a SQLite file (closed before the next unmount)."""
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        conn.execute("PRAGMA query_only = 1")
        yield conn
    finally:
        conn.close()


# --- the world: two disks, three programs, clients ----------------------------------------

class World:
    """The programs, their disks, the clients and the ledger.  ``hub``: the box syncs through a
    property hub (side "hub", its own disk) to the chain cloud (side "cloud"); without it,
    straight to the cloud.  ``self.proxy`` is always the agent's way to its upstream (the hub
    or the cloud); ``self.relay_proxy`` the hub's way to the chain."""

    def __init__(self, base: Path, *, synchronous: str = "FULL", label: str = "full", seed: int = SEED,
                 hub: bool = False, sides: tuple[tuple[str, ...], ...] | None = None,
                 side_weights: tuple[float, ...] | None = None, init_share: float = 0.25,
                 drain_every: int = 10, moments: dict | None = None):
        self.base, self.label, self.synchronous, self.hub = base, label, synchronous, hub
        self.rng = random.Random(seed)
        self.seed = seed
        default_sides = HUB_SIDES if hub else SIDES
        self.sides = sides or tuple(s for s, _ in default_sides)
        self.side_weights = side_weights or tuple(w for _, w in default_sides)
        self.init_share, self.drain_every = init_share, drain_every
        self.moments = moments or (HUB_MOMENTS if hub else MOMENTS)
        self.box_crash = False  # a crash fault is armed on the box: 5xx answers may come after the cut
        self.side_names = ("box", "hub", "cloud") if hub else ("box", "cloud")
        self.disks = {s: lazyfs.LazyFS(base, s) for s in self.side_names}
        self.kdir = self.disks["box"].mnt / "kiosk"
        self.cdir = self.disks["cloud"].mnt / "cloud"
        self.hdir = self.disks["hub"].mnt / "hub" if hub else None
        self.logs = base / "logs"
        self.logs.mkdir(exist_ok=True)
        self.cloud_port, self.kiosk_port, self.hub_port = free_port(), free_port(), free_port()
        self.cloud_url = f"http://127.0.0.1:{self.cloud_port}"
        self.kiosk_url = f"http://127.0.0.1:{self.kiosk_port}"
        self.hub_url = f"http://127.0.0.1:{self.hub_port}"
        # the agent's upstream: the hub, or the cloud
        self.up_side, self.up_dir, self.up_url = ("hub", self.hdir, self.hub_url) if hub else \
            ("cloud", self.cdir, self.cloud_url)
        self.program_names = ("cloud", "hub", "kiosk", "agent") if hub else ("cloud", "kiosk", "agent")
        self.proxy: Recorder | None = None
        self.relay_proxy: Recorder | None = None
        self.hub_back_at: list[float] = []  # when the hub had power again (monotonic), for relayResume
        self.notify: NotifySocket | None = None
        self.kenv = {
            "KIOSK_DATA_DIR": str(self.kdir), "KIOSK__PROPERTY__HOTELS": json.dumps([HOTEL]),
            "KIOSK__PROPERTY__KIOSK_ID": KIOSK_ID, "KIOSK__STORE__SYNCHRONOUS": synchronous,
            "KIOSK__SCAN__MAX_FAILURES": "1000000", "KIOSK__SCAN__MAX_FAILURES_PER_CODE": "1000000",
            "KIOSK__SCAN__PENALTY_SECONDS": "0",
            "KIOSK__AGENT__POLL_INTERVAL_SECONDS": "0.05", "KIOSK__AGENT__PUSH_INTERVAL_SECONDS": "0.2",
            "KIOSK__AGENT__BACKOFF_BASE_SECONDS": "0.05", "KIOSK__AGENT__BACKOFF_MAX_SECONDS": "0.5",
            "KIOSK__AGENT__PULL_INTERVAL_SECONDS": "0.3", "KIOSK__AGENT__BATCH_SIZE": "8",
            "KIOSK__AGENT__PULL_PAGE_SIZE": "16", "KIOSK__AGENT__SCHEDULED_MODELS": "[]",
            "NOTIFY_SOCKET": "", "KIOSK_DEBUG": "1"}
        self.lock = threading.RLock()
        self.power = dict.fromkeys(self.side_names, True)
        self.programs: dict[str, subprocess.Popen] = {}
        self.short: dict[str, set[subprocess.Popen]] = {s: set() for s in self.side_names}
        self.kiosk_up = threading.Event()
        self.load_on = threading.Event()
        self.stopping = threading.Event()
        self.busy = 0
        self.idle = threading.Condition(self.lock)
        self.in_flight: Counter = Counter()
        self.threads: list[threading.Thread] = []
        self.cycle = -1
        self.n = 0  # unique numbers for titles, notes, rooms
        # the ledger: what was acknowledged, refused, or left without an answer
        self.acked_scans: dict[str, tuple[str, int]] = {}  # one-time jti -> (session id, cycle)
        self.acked_reusable: dict[str, int] = {}  # session id -> cycle
        self.refused_only: set[str] = set()  # jtis that were only ever refused
        self.doubt_scans: dict[str, bool] = {}  # jti whose scan got no answer -> one-time?
        self.acked_writes: dict[str, dict] = {}  # outbox key -> {"kind", "entity", "cycle"}
        self.doubt_writes = 0
        self.cloud_keys: dict[str, str] = {}  # kid -> status the cloud's CLI acknowledged
        self.cloud_revoked: set[str] = set()
        self.used_tokens: dict[str, str] = {}  # one-time jti -> token, for scanning it again
        self.extras: list[dict] = []  # second instances made by init + link
        self.init_seconds: list[float] = []
        # the figures
        self.fig: dict = {"label": label, "synchronous": synchronous, "seed": seed, "cuts": 0,
                          "cutsBySide": Counter(), "moments": Counter(), "aimedAt": Counter(), "acknowledged": Counter(),
                          "noAnswer": Counter(), "recoverySeconds": [], "recoveryBySide": {}, "failedStarts": [],
                          "drains": 0, "drainSeconds": [], "deadLetters": 0, "lazyfsIoErrors": 0,
                          "hub": hub}
        self.problems: dict[str, set] = {k: set() for k in (
            "lost", "duplicates", "replayed", "refusedLeftTrace", "halfScans", "deliveredUnanswered",
            "tornFiles", "diverged")}
        self.events: list[str] = []
        self.t0 = time.monotonic()

    # -- processes ------------------------------------------------------------------------------

    def spawn(self, side: str, args: list[str], *, env: dict, log: str | None = None,
              capture: bool = False) -> subprocess.Popen | None:
        """Start a program on ``side`` unless that side has no power (then None)."""
        with self.lock:
            if not self.power[side]:
                return None
            out = subprocess.PIPE if capture else open(self.logs / (log or "cli.log"), "ab")
            try:
                p = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=out,
                                     stderr=subprocess.PIPE if capture else subprocess.STDOUT,
                                     env={**os.environ, **env}, start_new_session=True, text=capture or None)
            finally:
                if not capture:
                    out.close()
            self.short[side].add(p)
            return p

    def cli(self, side: str, args: list[str], env: dict, timeout: float = 120) -> tuple[int | None, str, str]:
        """Run a CLI command to its end (None if the power went first or it did not start)."""
        p = self.spawn(side, args, env=env, capture=True)
        if p is None:
            return None, "", "no power"
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        with self.lock:
            self.short[side].discard(p)
        return p.returncode, out, err

    def cli_retrying(self, side: str, args: list[str], env: dict) -> tuple[int | None, str, str]:
        """:meth:`cli`, tried again (up to twice) when LazyFS itself failed it (see lazyfs_error)."""
        for _ in range(3):
            rc, out, err = self.cli(side, args, env)
            if rc == 0 or not self.lazyfs_error(out + err, " ".join(args[:2])):
                break
        return rc, out, err

    def lazyfs_error(self, text: str, what: str) -> bool:
        """Under load LazyFS now and then fails an operation of a program just starting on a
        fresh SQLite file with EIO (SQLite says "disk I/O error"), with no cut involved; no
        real disk does that, and it is no durability question.  Such a start is counted
        (``lazyfsIoErrors``) and tried again; anything else is a failed start."""
        if "disk I/O error" not in text:
            return False
        self.fig["lazyfsIoErrors"] += 1
        self.events.append(f"{time.monotonic() - self.t0:7.1f} s: LazyFS EIO in {what}; starting it again")
        return True

    def program_args(self, name: str) -> tuple[str, list[str], dict]:
        if name in ("cloud", "hub"):  # the hub is the same program, linked upstream: it relays
            root, port = (self.cdir, self.cloud_port) if name == "cloud" else (self.hdir, self.hub_port)
            return name, ["kiosk-cloud", "serve", "--data-dir", str(root), "--port", str(port),
                          "--threads", "4", "--log-level", "WARNING"], {"KIOSK_DEBUG": "1"}
        if name == "kiosk":
            return "box", ["kiosk", "serve", "--port", str(self.kiosk_port)], self.kenv
        return "box", ["kiosk-agent", "run"], {**self.kenv, "NOTIFY_SOCKET": str(self.notify.path)}

    def ready(self, name: str, since: float) -> bool:
        try:
            if name in ("cloud", "hub"):  # each with the credential of the device that talks to it
                url, cred = (self.cloud_url, self.cloud_credential) if name == "cloud" else \
                    (self.hub_url, self.credential)
                return requests.get(url + "/sync/v1/health", timeout=2,
                                    headers={"Authorization": f"Bearer {cred}"}).status_code == 200
            if name == "kiosk":
                return requests.get(self.kiosk_url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
        return self.notify.ready_since(since)

    def start_programs(self, names: list[str]) -> float | None:
        """Start ``names`` together; seconds until all are ready (None: one failed to start)."""
        t0 = time.monotonic()
        log_at: dict[str, int] = {}

        def start(name: str) -> None:
            side, args, env = self.program_args(name)
            with self.lock:
                self.short[side].clear()
                log = open(self.logs / f"{name}.log", "ab")
                log_at[name] = log.tell()
                self.programs[name] = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=log,
                                                       stderr=subprocess.STDOUT, env={**os.environ, **env},
                                                       start_new_session=True)
                log.close()
        for name in names:
            start(name)
        retries = Counter()
        pending = set(names)
        while pending and time.monotonic() - t0 < START_DEADLINE:
            for name in sorted(pending):
                if self.programs[name].poll() is not None:
                    with open(self.logs / f"{name}.log", "rb") as f:
                        f.seek(log_at[name])
                        said = f.read().decode(errors="replace")
                    if retries[name] < 2 and self.lazyfs_error(said, name):
                        retries[name] += 1
                        start(name)
                        continue
                    self.failed_start(name, f"exited {self.programs[name].returncode}")
                    return None
                if self.ready(name, t0):
                    pending.discard(name)
            if pending:
                time.sleep(0.05)
        for name in pending:
            self.failed_start(name, f"not ready after {START_DEADLINE:.0f} s")
            return None
        if "kiosk" in names:
            self.kiosk_up.set()
        return time.monotonic() - t0

    def failed_start(self, name: str, why: str) -> None:
        try:
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            tail = ""
        self.fig["failedStarts"].append({"cycle": self.cycle, "program": name, "why": why, "log": tail})

    def kill(self, sides: tuple[str, ...]) -> None:
        """kill -9 every process of ``sides`` (all at once), then reap them."""
        with self.lock:
            victims = [p for name, p in self.programs.items() if self.program_args(name)[0] in sides]
            victims += [p for s in sides for p in self.short[s]]
        for p in victims:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        for p in victims:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)

    # -- set-up ---------------------------------------------------------------------------------

    def setup(self) -> None:
        try:
            self.disks["box"].mount()
        except RuntimeError as e:
            pytest.skip(f"LazyFS does not mount here: {e}"[:500])
        for side in self.side_names[1:]:
            self.disks[side].mount()
        self.proxy = Recorder(self.up_url)
        self.notify = NotifySocket(self.base / "notify.sock")
        rc, out, err = self.cli_retrying("box", ["kiosk", "init"], self.kenv)
        assert rc == 0, err
        # --rotate: a try the EIO retry repeats may have registered the device already (not linked yet)
        if self.hub:  # the hub's identity at the chain, and its link there (through the relay proxy)
            self.relay_proxy = Recorder(self.cloud_url)
            rc, out, err = self.cli_retrying("cloud", ["kiosk-cloud", "device", "add", HUB_ID, "--hotel", HOTEL,
                                                       "--rotate", "--data-dir", str(self.cdir)], {})
            assert rc == 0, err
            self.cloud_credential = out.strip()
            rc, out, err = self.cli_retrying("hub", ["kiosk-cloud", "link", "--cloud", self.relay_proxy.url,
                                                     "--device-id", HUB_ID, "--credential", self.cloud_credential,
                                                     "--data-dir", str(self.hdir)], {})
            assert rc == 0, err
        rc, out, err = self.cli_retrying(self.up_side, ["kiosk-cloud", "device", "add", KIOSK_ID, "--hotel", HOTEL,
                                                        "--rotate", "--data-dir", str(self.up_dir)], {})
        assert rc == 0, err
        self.credential = out.strip()
        if not self.hub:
            self.cloud_credential = self.credential
        rc, out, err = self.cli_retrying("box", ["kiosk-agent", "link", "--cloud", self.proxy.url,
                                                 "--device-id", KIOSK_ID, "--credential", self.credential], self.kenv)
        assert rc == 0, err
        self.make_work_orders()
        self.key = load_pem_private_key((self.kdir / "keys" / "issuer.pem").read_bytes(), password=None)
        self.kid = key_id(self.key.public_key())
        self.stranger = Ed25519PrivateKey.generate()
        assert self.start_programs(list(self.program_names)) is not None, self.fig["failedStarts"]

    @eio_retried
    def make_work_orders(self) -> None:
        inst = Instance(config_mod.load(None, env=self.kenv))
        db = inst.connect()
        try:
            for i in range(WORK_ORDERS):
                if db.execute("SELECT 1 FROM work_orders WHERE work_order_id = ?", [f"WO-{i}"]).fetchone() is None:
                    workorders.create(db, hotel_id=HOTEL, work_order_id=f"WO-{i}", by="pms", now=time.time(),
                                      node=KIOSK_ID, room_number=str(100 + i))
        finally:
            db.conn.close()

    def close(self) -> None:
        self.stopping.set()
        self.load_on.set()
        self.kiosk_up.set()
        self.kill(self.side_names)
        for t in self.threads:
            t.join(30)
        for proxy in (self.proxy, self.relay_proxy):
            if proxy:
                proxy.close()
        if self.notify:
            self.notify.close()
        for d in self.disks.values():
            d.unmount()

    # -- tokens ---------------------------------------------------------------------------------

    def token(self, kind: str = "fresh", role: str = "guest") -> tuple[str, str]:
        now = time.time()
        key, kid, hotel, iat, ttl = self.key, self.kid, HOTEL, now, 6 * 3600  # outlives a long run
        if kind == "expired":
            iat, ttl = now - 7200, 60
        elif kind == "stranger":
            key, kid = self.stranger, key_id(self.stranger.public_key())
        elif kind == "other-hotel":
            hotel = "elsewhere"
        tok, claims = tokens.sign(key, kid, issuer="demo", hotel_id=hotel, role=role, user_id=None, now=iat,
                                  ttl_seconds=ttl, reusable=kind in ("reusable", "staff"))
        return tok, claims["jti"]

    def post(self, path: str, body: dict, session: requests.Session | None = None) -> requests.Response | None:
        """POST to the kiosk; None when no answer came (the kiosk died under the request)."""
        with self.lock:
            self.busy += 1
        try:
            return (session or requests).post(self.kiosk_url + path, json=body, timeout=30)
        except requests.RequestException:
            return None
        finally:
            with self.lock:
                self.busy -= 1
                self.idle.notify_all()

    def wait_load(self) -> bool:
        self.load_on.wait()
        self.kiosk_up.wait()
        return not self.stopping.is_set()

    # -- the clients ----------------------------------------------------------------------------

    def scanner(self, wid: int) -> None:
        rng = random.Random(self.seed * 10 + wid)
        while self.wait_load():
            r = rng.random()
            if r < 0.72:
                kind = "fresh"
            elif r < 0.77:
                kind = "reusable"
            elif r < 0.87:
                kind = rng.choice(["expired", "stranger", "other-hotel"])
            else:
                kind = "again"
            if kind == "again":
                with self.lock:
                    earlier = [j for j, (_, c) in self.acked_scans.items() if c < self.cycle] or list(self.acked_scans)
                if not earlier:
                    continue
                self.scan_again(rng.choice(earlier))
                continue
            tok, jti = self.token(kind)
            with self.lock:
                self.in_flight["scan"] += 1
            try:
                resp = self.post("/api/qr/scan", {"qrToken": tok, "hotelId": HOTEL})
            finally:
                with self.lock:
                    self.in_flight["scan"] -= 1
            with self.lock:
                if resp is None:
                    self.doubt_scans[jti] = kind != "reusable"
                    self.fig["noAnswer"]["scans"] += 1
                elif resp.status_code == 200:
                    self.fig["acknowledged"]["scans"] += 1
                    if kind == "reusable":
                        self.acked_reusable[resp.json()["sessionId"]] = self.cycle
                    else:
                        self.acked_scans[jti] = (resp.json()["sessionId"], self.cycle)
                        self.used_tokens[jti] = tok
                elif resp.status_code >= 500 and self.box_crash:  # maybe given after the cut: no answer
                    self.doubt_scans[jti] = kind != "reusable"
                    self.fig["noAnswer"]["scans"] += 1
                else:
                    self.fig["acknowledged"]["refusedScans"] += 1
                    self.refused_only.add(jti)

    def scan_again(self, jti: str) -> None:
        """Scan a used one-time token again: TOKEN_ALREADY_USED, or it is a replay."""
        tok = self.used_tokens.get(jti)
        if tok is None:
            return
        resp = self.post("/api/qr/scan", {"qrToken": tok, "hotelId": HOTEL})
        with self.lock:
            self.fig["acknowledged"]["rescans"] += resp is not None
            if resp is not None and resp.status_code == 200:
                self.problems["replayed"].add(jti)

    def staff(self) -> None:
        rng = random.Random(self.seed * 10 + 99)
        session = None
        staff_token, _ = self.token("staff", role="staff")
        while self.wait_load():
            if session is None:
                resp = self.post("/api/qr/scan", {"qrToken": staff_token, "hotelId": HOTEL})
                if resp is None or resp.status_code != 200:
                    continue
                session = requests.Session()
                session.headers["Authorization"] = "Bearer " + resp.json()["sessionJWT"]
            with self.lock:
                self.n += 1
                n = self.n
            if rng.random() < 0.5:
                wo = f"WO-{rng.randrange(WORK_ORDERS)}"
                kind, entity = "pms", wo
                body, path = {"workOrderId": wo, "changes": {"notes": f"note {n}"}}, "/api/pms/update"
            else:
                kind, entity = "ticket", None
                body, path = {"type": "housekeeping", "title": f"towels {n}", "roomNumber": f"R{n}"}, "/api/tickets/auto"
            with self.lock:
                self.in_flight["write"] += 1
            try:
                resp = self.post(path, body, session)
            finally:
                with self.lock:
                    self.in_flight["write"] -= 1
            with self.lock:
                if resp is None or (resp.status_code >= 500 and self.box_crash):
                    self.doubt_writes += 1
                    self.fig["noAnswer"]["writes"] += 1
                elif resp.status_code == 401:
                    session = None
                elif resp.status_code in (200, 201) and resp.json().get("syncStatus") == "queued":
                    d = resp.json()
                    entity = entity or d["ticket"]["ticketId"]
                    self.acked_writes[d["outboxKey"]] = {"kind": kind, "entity": entity, "cycle": self.cycle}
                    self.fig["acknowledged"]["writes"] += 1

    def operator(self) -> None:
        """The cloud's operator: creates and retires signing keys, revokes tokens (CLI, on the cloud)."""
        rng = random.Random(self.seed * 10 + 77)
        while self.wait_load():
            if self.stopping.wait(rng.uniform(0.2, 1.5)):
                return
            with self.lock:
                active = [k for k, s in self.cloud_keys.items() if s == "active"]
            r = rng.random()
            if r < 0.4 or not active:
                op, args = "key create", ["kiosk-cloud", "key", "create", "--hotel", HOTEL]
            elif r < 0.6:
                kid = rng.choice(active)
                op, args = "key retire", ["kiosk-cloud", "key", "retire", kid]
            else:
                _, jti = self.token("fresh")
                op, args = "token revoke", ["kiosk-cloud", "token", "revoke", jti, "--hotel", HOTEL]
            with self.lock:  # a pause (load_on cleared, then a look at what is in flight) sees this one
                if not self.load_on.is_set():
                    continue
                self.in_flight["cloud " + op] += 1
            try:
                rc, out, _ = self.cli("cloud", [*args, "--data-dir", str(self.cdir)], {})
            finally:
                with self.lock:
                    self.in_flight["cloud " + op] -= 1
                    self.idle.notify_all()  # a pause waits for it
            if rc != 0:
                continue
            data = json.loads(out)
            with self.lock:
                self.fig["acknowledged"]["cloudKeyOps"] += 1
                if op == "key create":
                    self.cloud_keys[data["kid"]] = "active"
                elif op == "key retire":
                    self.cloud_keys[data["kid"]] = "retired"
                else:
                    self.cloud_revoked.add(data["jti"])

    def init_and_link(self, extra: dict) -> None:
        """``kiosk init`` then ``kiosk-agent link`` of a second instance, as an installer runs them."""
        env = {**self.kenv, "KIOSK_DATA_DIR": str(extra["dir"]), "KIOSK__PROPERTY__KIOSK_ID": extra["id"]}
        t0 = time.monotonic()
        extra["phase"] = "init"
        rc, _, _ = self.cli("box", ["kiosk", "init"], env)
        if rc != 0:
            return
        extra["init"] = True
        extra["phase"] = "link"
        rc, _, _ = self.cli("box", ["kiosk-agent", "link", "--cloud", self.proxy.url, "--device-id", extra["id"],
                                    "--credential", extra["credential"]], env)
        if rc != 0:
            return
        extra["link"] = True
        extra["phase"] = "done"
        with self.lock:
            self.init_seconds.append(time.monotonic() - t0)

    # -- the cut --------------------------------------------------------------------------------

    def moment(self) -> list[str]:
        with self.lock:
            now = [k for k, v in self.in_flight.items() if v > 0]
        for proxy, at in ((self.proxy, self.up_side), (self.relay_proxy, "chain")):
            if proxy is not None:
                with proxy.lock:
                    now += [f"{k} at the {at}" for k, v in proxy.in_flight.items() if v > 0]
        return now

    def relay_running(self) -> bool:
        """The hub's relay asked the chain for something in the last 2 s.  (After a cut of the hub
        its relay waits for the dead process's lease to run out, up to a minute: a moment on the
        relay's answers is aimed at only while it runs, or the wait for it would time out.)"""
        with self.relay_proxy.lock:
            return bool(self.relay_proxy.seen_at) and time.monotonic() - self.relay_proxy.seen_at[-1] < 2.0

    def pick_sides(self, moment: str) -> tuple[str, ...]:
        own = self.moments[moment][1]
        choices = [(s, w) for s, w in zip(self.sides, self.side_weights, strict=True) if own is None or own in s]
        return self.rng.choices([s for s, _ in choices], [w for _, w in choices])[0]

    def arm(self, moment: str, sides: tuple[str, ...], extra: dict | None):
        """Aim the cut at ``moment``: returns (has it come?, how long to wait for it, its label)."""
        rng = self.rng
        if moment == "random":
            # with an init chain: anywhere in it, or (a third of the time) just after it acknowledged
            typical = statistics.median(self.init_seconds) if self.init_seconds else 10.0
            delay = rng.uniform(0.0, 1.5 * typical) if extra is not None else rng.uniform(0.3, 3.0)
            return None, delay, moment
        if "push answer" in moment or "pull page" in moment:  # on an answer the hub's relay (or the agent) gets
            proxy = self.relay_proxy if moment.startswith(("relay", "chain")) else self.proxy
            if "push answer" in moment:
                when = "before" if "not yet" in moment else "after"
                ev = proxy.arm("push", when, lambda b: any(x.get("status") == "applied" for x in b["results"]))
            else:
                ev = proxy.arm("pull", "after", lambda b: bool(b.get("changes")))
            return ev.is_set, 30.0, moment
        timing = rng.choice(["before", "after"])
        if moment in WAL_FSYNCS:
            (side, path), op, to = WAL_FSYNCS[moment], "fsync", None
        elif moment == "trust list written by a pull":
            side, op = "box", rng.choice(["write", "fsync", "rename"])
            path, to = "kiosk/keys/.trust.json.", "kiosk/keys/trust.json"
        else:
            side, name = "box", rng.choice(INIT_FILES)
            op = rng.choice(["create", "write", "fsync"] + ([] if name == "kiosk.db" else ["rename"]))
            base = f"{extra['id']}/" + ("kiosk.db" if name == "kiosk.db" else f"keys/.{name}.")
            path, to = base, f"{extra['id']}/keys/{name}"
            moment = f"{moment}: {timing} {op} of {name}"
        self.box_crash = side == "box"
        disk = self.disks[side]
        disk.crash_at(timing, op, path=None if op == "rename" else path, to=to)
        label = moment if moment.startswith("init") else f"{moment}: {timing} {op}"
        return (lambda: not disk.alive()), 60.0 if extra is not None else 30.0, label

    def wait_moment(self, came, timeout: float, chain: threading.Thread | None) -> bool:
        """Wait for an armed moment; False if it did not come in time (or the init chain ended)."""
        deadline = time.monotonic() + timeout
        chain_done_at = None
        while time.monotonic() < deadline:
            if came():
                return True
            if chain is not None and not chain.is_alive():
                chain_done_at = chain_done_at or time.monotonic()
                if time.monotonic() - chain_done_at > 0.5:
                    return False
            time.sleep(0.005)
        return False

    def cut(self, sides: tuple[str, ...], extra: dict | None, label: str) -> None:
        moment = self.moment()
        if extra is not None:
            moment.append(f"init/link: {extra.get('phase', 'not started')}")
        self.fig["aimedAt"][label] += 1
        with self.lock:
            for s in sides:
                self.power[s] = False
            if "box" in sides:
                self.kiosk_up.clear()
        self.kill(sides)
        for s in sides:
            self.disks[s].cut()
        self.fig["cuts"] += 1
        self.fig["cutsBySide"]["+".join(sides)] += 1
        for m in moment:
            self.fig["moments"][m] += 1
        self.events.append(f"{time.monotonic() - self.t0:7.1f} s: cut {self.fig['cuts']}: {'+'.join(sides)}"
                           f" at {label}; in flight: {', '.join(moment) or 'nothing'}")

    # -- what the disks hold after a cut ---------------------------------------------------------

    @eio_retried
    def cloud_view(self, root: Path | None = None) -> dict:
        """What a cloud's disk holds: the chain cloud's (or the only one's), or the hub's (``root``)."""
        with opened((root or self.cdir) / "cloud.db") as c:
            return {
                "applied": {r[0] for r in c.execute("SELECT key FROM applied_entries")},
                "answered": {k for k, result in c.execute("SELECT key, result FROM applied_entries")
                             if json.loads(result).get("status") in ("applied", "duplicate")},
                "entries": c.execute("SELECT count(*) FROM applied_entries WHERE hotel_id = ?", [HOTEL]).fetchone()[0],
                "key_dupes": c.execute("SELECT key, count(*) FROM applied_entries GROUP BY key HAVING count(*) > 1"
                                       ).fetchall(),
                "pushed_by": {r[0] for r in c.execute("SELECT DISTINCT device_id FROM applied_entries")},
                # a hub's: its relay outbox, and how far it pulled the chain's log
                "relay": dict(c.execute("SELECT key, status FROM relay_outbox WHERE hotel_id = ?", [HOTEL]).fetchall()),
                "upstream_cursor": (c.execute("SELECT after FROM upstream_cursors WHERE hotel_id = ?", [HOTEL])
                                    .fetchone() or [0])[0],
                "keys": dict(c.execute("SELECT kid, status FROM trust_keys").fetchall()),
                "revoked": {r[0] for r in c.execute("SELECT jti FROM revocations WHERE hotel_id = ?", [HOTEL])},
                "changes": c.execute("SELECT seq, entity_type, entity_id, data FROM changes WHERE hotel_id = ?"
                                     " AND entity_type IN ('trust_key', 'token_revocation') ORDER BY seq",
                                     [HOTEL]).fetchall(),
                "max_seq": c.execute("SELECT coalesce(max(seq), 0) FROM changes WHERE hotel_id = ?",
                                     [HOTEL]).fetchone()[0],
                "consumed": {r[0] for r in c.execute("SELECT jti FROM consumptions WHERE kiosk_id = ?", [KIOSK_ID])},
                "tickets": {r[0] for r in c.execute("SELECT ticket_id FROM tickets WHERE hotel_id = ?", [HOTEL])},
                "history_dupes": c.execute(
                    "SELECT work_order_id, field, hlc, count(*) FROM work_order_history WHERE hotel_id = ?"
                    " GROUP BY work_order_id, field, hlc HAVING count(*) > 1", [HOTEL]).fetchall(),
                "history": dict(c.execute("SELECT work_order_id, count(*) FROM work_order_history WHERE hotel_id = ?"
                                          " GROUP BY work_order_id", [HOTEL]).fetchall()),
            }

    @eio_retried
    def kiosk_view(self, root: Path | None = None) -> dict:
        with opened((root or self.kdir) / "kiosk.db") as c:
            return {
                "consumed": dict(c.execute("SELECT jti, session_id FROM consumed_tokens").fetchall()),
                "sessions": dict(c.execute("SELECT id, jti FROM sessions").fetchall()),
                "session_jtis": Counter(r[0] for r in c.execute("SELECT jti FROM sessions")),
                "outbox": dict(c.execute("SELECT idempotency_key, state FROM outbox").fetchall()),
                "token_used": {r[0] for r in c.execute("SELECT entity_id FROM outbox WHERE kind = 'token.used'")},
                "session_opened": {r[0] for r in c.execute("SELECT entity_id FROM outbox WHERE kind = 'session.opened'")},
                "cursor": int((c.execute("SELECT value FROM sync_state WHERE key = ?", [f"pull_cursor:{HOTEL}"])
                               .fetchone() or [0])[0] or 0),
                "revoked": {r[0] for r in c.execute("SELECT jti FROM remote_revocations")},
                "tickets": {r[0] for r in c.execute("SELECT ticket_id FROM tickets WHERE hotel_id = ?", [HOTEL])},
                "history": dict(c.execute("SELECT work_order_id, count(*) FROM work_order_history WHERE hotel_id = ?"
                                          " AND by != 'cloud' GROUP BY work_order_id", [HOTEL]).fetchall()),
            }

    def up_view(self) -> dict:
        """The disk of the agent's upstream: the hub's, or the cloud's."""
        return self.cloud_view(self.up_dir)

    def complete_files(self, root: Path, *, link: dict | None) -> list[str]:
        """Names of the instance's key and link files that exist but are not whole."""
        torn = []
        checks = {
            "keys/issuer.pem": lambda b: load_pem_private_key(b, password=None),
            "keys/session.secret": lambda b: bytes.fromhex(b.decode()) if len(b.strip()) == 64 else 1 / 0,
            "keys/trust.json": lambda b: [k["kid"] for k in json.loads(b)["keys"]],
            "keys/cloud.json": lambda b: json.loads(b)["credential"] if link is None
            else (json.loads(b) == link or 1 / 0),
        }
        for name, check in checks.items():
            p = root / name
            if not p.exists():
                continue
            try:
                check(p.read_bytes())
            except Exception:
                torn.append(str(p.relative_to(self.disks["box"].mnt)))
        return torn

    def check_box(self, cloud: dict) -> None:
        """The box's disk after a cut, before anything on it starts again (``cloud``: the view of
        the agent's upstream, the hub's with a hub)."""
        k = self.kiosk_view()
        lost, p = self.problems["lost"], self.problems
        with self.lock:
            acked_scans = dict(self.acked_scans)
            acked_reusable = dict(self.acked_reusable)
            refused = set(self.refused_only)
            doubt = dict(self.doubt_scans)
            writes = dict(self.acked_writes)
            answers = dict(self.proxy.answers)
        for jti, (sid, _) in acked_scans.items():
            if k["consumed"].get(jti) != sid or sid not in k["sessions"]:
                lost.add(("scan", jti))
        for sid in acked_reusable:
            if sid not in k["sessions"]:
                lost.add(("reusable scan", sid))
        for jti in refused:
            if jti in k["consumed"] or k["session_jtis"][jti]:
                p["refusedLeftTrace"].add(jti)
        for jti, one_time in doubt.items():  # no answer: all of it or nothing
            sids = [s for s, j in k["sessions"].items() if j == jti]
            opened = all(s in k["session_opened"] for s in sids)  # each session with its outbox row
            if one_time:
                parts = (jti in k["consumed"], bool(sids) and opened, jti in k["token_used"])
                if any(parts) and not all(parts):
                    p["halfScans"].add(jti)
            elif not opened or jti in k["consumed"] or jti in k["token_used"]:  # a reusable token is never consumed
                p["halfScans"].add(jti)
        for key in writes:
            if key not in k["outbox"]:
                lost.add(("write", key))
        for key, state in k["outbox"].items():
            if state == "delivered" and key not in answers:
                p["deliveredUnanswered"].add(key)
            if state == "delivered" and key not in cloud["applied"]:
                lost.add(("delivered, not in the cloud", key))
        self.check_pull(k, cloud)
        for f in self.complete_files(self.kdir, link=None):
            p["tornFiles"].add(f)

    def check_pull(self, k: dict, cloud: dict) -> None:
        """A page and its cursor together: no change at or below the kiosk's cursor is missing here."""
        try:
            trust = {t["kid"]: t["status"] for t in json.loads((self.kdir / "keys" / "trust.json").read_text())["keys"]}
        except (OSError, ValueError, KeyError):  # counted as a torn file
            trust = {}
        self.check_cursor("kiosk", k["cursor"], trust, k["revoked"], cloud)

    def check_cursor(self, who: str, cursor: int, trust: dict[str, str], revoked: set[str], cloud: dict) -> None:
        """No trust key or revocation at or below ``who``'s cursor on ``cloud``'s log is missing at ``who``."""
        if cursor > cloud["max_seq"]:
            self.problems["lost"].add((f"change log behind the {who}'s cursor", cursor))
        as_of: dict[str, str] = {}
        for seq, kind, entity, data in cloud["changes"]:
            if seq > cursor:
                break
            if kind == "trust_key":
                as_of[entity] = json.loads(data).get("status", "active")
            elif entity not in revoked:
                self.problems["lost"].add((f"revocation pulled by the {who}", entity))
        for kid, status in as_of.items():  # a later page may already be there, never an earlier one missing
            if kid not in trust or (status == "retired" and trust[kid] != "retired"):
                self.problems["lost"].add((f"trust key pulled by the {who}", kid, status))

    def check_cloud(self, cloud: dict) -> None:
        """The cloud's disk after a cut (the chain's, with a hub): what it answered (the agent,
        or the hub's relay) and what its CLI acknowledged."""
        with self.lock:
            answers = dict((self.relay_proxy or self.proxy).answers)
            keys = dict(self.cloud_keys)
            revoked = set(self.cloud_revoked)
        for key in answers:
            if key not in cloud["applied"]:
                self.problems["lost"].add(("answered by the cloud", key))
        for kid, status in keys.items():
            if cloud["keys"].get(kid) not in ((status,) if status == "retired" else ("active", "retired")):
                self.problems["lost"].add(("cloud key", kid, status))
        for jti in revoked - cloud["revoked"]:
            self.problems["lost"].add(("cloud revocation", jti))
        # what pushes to it (cut too, or still running) holds nothing as delivered that the cloud lost
        if self.hub:
            delivered = [key for key, state in self.up_view()["relay"].items() if state == "delivered"]
        else:
            delivered = [key for key, state in self.kiosk_view()["outbox"].items() if state == "delivered"]
        for key in delivered:
            if key not in cloud["applied"]:
                self.problems["lost"].add(("delivered, not in the cloud", key))

    def check_hub(self, hub: dict, chain: dict) -> None:
        """The hub's disk after a cut, before it starts again: every push it answered is there and
        queued for the chain (one transaction); every entry its relay marked delivered was
        answered by the chain, which holds it; its cursor on the chain's log covers nothing it
        lacks; its link file is whole."""
        lost = self.problems["lost"]
        with self.lock:
            answers = dict(self.proxy.answers)
            relayed = dict(self.relay_proxy.answers)
        for key in answers:
            if key not in hub["applied"]:
                lost.add(("answered by the hub", key))
        for key, state in self.kiosk_view()["outbox"].items():
            if state == "delivered" and key not in hub["applied"]:
                lost.add(("delivered, not in the hub", key))
        for key in hub["answered"] - set(hub["relay"]):
            lost.add(("applied at the hub, never queued for the chain", key))
        for key, state in hub["relay"].items():
            if state != "delivered":
                continue
            if key not in relayed:
                self.problems["deliveredUnanswered"].add(key)
            if key not in chain["applied"]:
                lost.add(("relayed, not in the chain", key))
        self.check_cursor("hub", hub["upstream_cursor"], hub["keys"], hub["revoked"], chain)
        link = {"url": self.relay_proxy.url, "deviceId": HUB_ID, "credential": self.cloud_credential}
        try:
            whole = json.loads((self.hdir / "upstream.json").read_bytes()) == link
        except (OSError, ValueError):
            whole = False
        if not whole:
            self.problems["tornFiles"].add("hub/upstream.json")

    def check_extra(self, extra: dict) -> None:
        """A second instance cut during (or after) init + link: whole files, then it starts."""
        root = extra["dir"]
        link = {"url": self.proxy.url, "deviceId": extra["id"], "credential": extra["credential"]}
        for f in self.complete_files(root, link=link):
            self.problems["tornFiles"].add(f)
        if extra.get("init"):
            for name in ("keys/issuer.pem", "keys/session.secret", "keys/trust.json", "kiosk.db"):
                if not (root / name).exists():
                    self.problems["lost"].add(("init", str(root.name), name))
        if extra.get("link") and not (root / "keys" / "cloud.json").exists():
            self.problems["lost"].add(("link", str(root.name)))
        env = {**self.kenv, "KIOSK_DATA_DIR": str(root), "KIOSK__PROPERTY__KIOSK_ID": extra["id"]}
        steps = [] if extra.get("init") else [("kiosk init (again)", ["kiosk", "init"])]
        if not extra.get("link"):
            steps.append(("kiosk-agent link (again)", ["kiosk-agent", "link", "--cloud", self.proxy.url,
                                                       "--device-id", extra["id"], "--credential",
                                                       extra["credential"]]))
        steps.append(("kiosk token list", ["kiosk", "token", "list", "--json"]))
        for name, args in steps:
            rc, out, err = self.cli_retrying("box", args, env)
            if rc != 0:
                self.fig["failedStarts"].append({"cycle": self.cycle, "program": f"{name} ({root.name})",
                                                 "why": f"exited {rc}", "log": (out + err)[-3000:]})
                return

    def check_replays(self) -> None:
        """After a cut of the box, tokens used before it are still used."""
        with self.lock:
            earlier = [j for j, (_, c) in self.acked_scans.items() if c <= self.cycle]
        for jti in self.rng.sample(earlier, min(3, len(earlier))):
            self.scan_again(jti)

    # -- draining and exactly once --------------------------------------------------------------

    def pause(self) -> None:
        self.load_on.clear()
        with self.lock:
            self.idle.wait_for(lambda: self.busy == 0 and not any(v for k, v in self.in_flight.items()
                                                                  if k.startswith("cloud ")), timeout=120)

    def drain_and_check(self) -> None:
        self.pause()
        self.events.append(f"{time.monotonic() - self.t0:7.1f} s: draining")

        def settled():  # read in the order things flow: the kiosk's outbox, the hub's relay, the pulls
            if any(s == "pending" for s in self.kiosk_view()["outbox"].values()):
                return False
            if self.hub:
                if any(s == "pending" for s in self.up_view()["relay"].values()):
                    return False
                if self.up_view()["upstream_cursor"] < self.cloud_view()["max_seq"]:
                    return False
            return self.kiosk_view()["cursor"] >= self.up_view()["max_seq"]
        began = time.monotonic()
        wait_for(settled, timeout=300, interval=0.2, what="the outbox to drain and the pull to catch up")
        self.fig["drainSeconds"].append(round(time.monotonic() - began, 1))
        k, cloud = self.kiosk_view(), self.cloud_view()
        self.fig["drains"] += 1
        self.fig["deadLetters"] = sum(1 for s in k["outbox"].values() if s == "dead")
        self.check_exactly_once(k, cloud)
        with self.lock:
            writes = dict(self.acked_writes)
            acked_scans = dict(self.acked_scans)
        for key in writes:
            if key not in cloud["applied"]:
                self.problems["lost"].add(("acknowledged write never reached the cloud", key))
        for jti in acked_scans:
            if jti not in cloud["consumed"]:
                self.problems["lost"].add(("acknowledged scan never reached the cloud", jti))
        for row in cloud["history_dupes"]:
            self.problems["duplicates"].add(("cloud work-order history", *row[:3]))
        for jti, n in k["session_jtis"].items():
            if n > 1 and jti in acked_scans:
                self.problems["duplicates"].add(("sessions of one one-time token", jti))
        if k["tickets"] != cloud["tickets"]:
            self.problems["diverged"].add(("tickets", len(k["tickets"] ^ cloud["tickets"])))
        if k["history"] != cloud["history"]:
            self.problems["diverged"].add(("work-order history", json.dumps(k["history"]),
                                           json.dumps(cloud["history"])))
        trust = {t["kid"]: t["status"] for t in json.loads((self.kdir / "keys" / "trust.json").read_text())["keys"]}
        for kid, status in cloud["keys"].items():
            if trust.get(kid) != status:
                self.problems["diverged"].add(("trust list", kid, status, trust.get(kid)))
        self.load_on.set()

    def check_exactly_once(self, k: dict, cloud: dict) -> None:
        """Drained: the cloud (and the hub) hold exactly the kiosk's outbox entries, each key
        once, all from the one device that pushes to each; the hub's relay outbox is empty."""
        keys = set(k["outbox"])
        views = [("cloud", cloud, HUB_ID if self.hub else KIOSK_ID)]
        if self.hub:
            hub = self.up_view()
            views.append(("hub", hub, KIOSK_ID))
            relay = Counter(hub["relay"].values())
            self.fig["relayOutbox"] = dict(relay)
            if relay["dead"]:
                self.problems["lost"].add(("refused by the chain", relay["dead"]))
            if set(hub["relay"]) != keys:
                self.problems["diverged"].add(("relay outbox and kiosk outbox", len(set(hub["relay"]) ^ keys)))
        for who, view, pusher in views:
            for key in keys - view["applied"]:
                self.problems["lost"].add((f"kiosk entry not at the {who}", key))
            for key in view["applied"] - keys:
                self.problems["duplicates"].add((f"an entry at the {who} the kiosk never made", key))
            for key, n in view["key_dupes"]:
                self.problems["duplicates"].add((f"one key {n} times at the {who}", key))
            if view["entries"] != len(keys):
                self.problems["diverged"].add((f"entries at the {who}", view["entries"], len(keys)))
            if view["pushed_by"] - {pusher}:
                self.problems["diverged"].add((f"pushed to the {who} by", *sorted(view["pushed_by"])))
        self.fig["entriesAtTheCloud"] = cloud["entries"]

    # -- the run --------------------------------------------------------------------------------

    def run(self, cuts: int, *, final_drain: bool = True) -> dict:
        self.setup()
        self.events.append(f"{time.monotonic() - self.t0:7.1f} s: set up")
        for target, args in ((self.scanner, (0,)), (self.scanner, (1,)), (self.staff, ()), (self.operator, ())):
            t = threading.Thread(target=target, args=args, daemon=True)
            t.start()
            self.threads.append(t)
        self.load_on.set()
        started = time.monotonic()
        for i in range(cuts):
            self.cycle = i
            names = [m for m in self.moments if not m.startswith(RELAY_MOMENTS) or self.relay_running()]
            moment = self.rng.choices(names, [self.moments[m][0] for m in names])[0]
            sides = self.pick_sides(moment)
            extra, chain = None, None
            if "box" in sides and (moment.startswith("init") or
                                   (moment == "random" and self.rng.random() < self.init_share)):
                n = len(self.extras)
                extra = {"dir": self.disks["box"].mnt / f"extra-{n}", "id": f"extra-{n}",
                         "credential": uuid.uuid4().hex}
                self.extras.append(extra)
                chain = threading.Thread(target=self.init_and_link, args=(extra,), daemon=True)
            came, wait, label = self.arm(moment, sides, extra)  # armed before the chain starts
            if chain is not None:
                chain.start()
            if came is None:
                self.stopping.wait(wait)  # the random moment
            elif not self.wait_moment(came, wait, chain):
                label += " (did not come: cut then)"
            elif "relayed" in moment:
                self.stopping.wait(self.rng.uniform(0.0, 0.05))  # somewhere in what the agent does next
            self.cut(sides, extra, label)
            for proxy in (self.proxy, self.relay_proxy):
                if proxy is not None:
                    proxy.release()
            self.box_crash = False
            if chain is not None:
                chain.join(60)
            cloud = self.cloud_view()
            up = self.up_view() if self.hub else cloud
            if "box" in sides:
                self.check_box(up)
            if "hub" in sides:
                self.check_hub(up, cloud)
            if "cloud" in sides:
                self.check_cloud(cloud)
            if extra is not None:
                checker = threading.Thread(target=self.check_extra, args=(extra,), daemon=True)
            with self.lock:
                for s in sides:
                    self.power[s] = True
            if extra is not None:
                checker.start()
            names = [n for n in self.program_names if self.program_args(n)[0] in sides]
            if "hub" in sides:
                self.hub_back_at.append(time.monotonic())
            took = self.start_programs(names)
            if extra is not None:
                checker.join(300)
            if took is None:
                break
            self.fig["recoverySeconds"].append(round(took, 3))
            self.fig["recoveryBySide"].setdefault("+".join(sides), []).append(round(took, 3))
            if "box" in sides:
                self.check_replays()
            if (i + 1) % self.drain_every == 0 or (final_drain and i == cuts - 1):
                self.drain_and_check()
        self.events.append(f"{time.monotonic() - self.t0:7.1f} s: done")
        self.fig["seconds"] = round(time.monotonic() - started, 1)
        return self.report()

    def report(self) -> dict:
        rec = self.fig["recoverySeconds"]
        out = dict(self.fig)
        out["recovery"] = ({"median": round(statistics.median(rec), 2),
                            "p95": round(sorted(rec)[math.ceil(len(rec) * 0.95) - 1], 2),
                            "max": round(max(rec), 2)} if rec else None)
        out["recoveryBySide"] = {k: {"median": round(statistics.median(v), 2), "max": round(max(v), 2)}
                                 for k, v in self.fig["recoveryBySide"].items()}
        del out["recoverySeconds"]
        out["problems"] = {k: len(v) for k, v in self.problems.items()}
        out["examples"] = {k: [list(x) if isinstance(x, tuple) else x for x in sorted(v, key=str)[:5]]
                           for k, v in self.problems.items() if v}
        out["failedStarts"] = len(self.fig["failedStarts"])
        out["events"] = self.events[-40:]
        out["failedStartDetails"] = self.fig["failedStarts"][:3]
        # distinct things lost (a scan lost at the kiosk also never reaches the cloud: one loss)
        out["acknowledgedThenLost"] = len({x[1] for x in self.problems["lost"]})
        out["lostByKind"] = dict(Counter(x[0] for x in self.problems["lost"]))
        out["duplicates"] = len(self.problems["duplicates"]) + len(self.problems["replayed"])
        out["extras"] = {"made": len(self.extras), "initAcknowledged": sum(1 for e in self.extras if e.get("init")),
                         "linkAcknowledged": sum(1 for e in self.extras if e.get("link"))}
        for k in ("cutsBySide", "moments", "aimedAt", "acknowledged", "noAnswer"):
            out[k] = dict(sorted(self.fig[k].items()))
        if self.hub:
            out["relayResume"] = self.relay_resume()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"powercut-{self.label}.json").write_text(json.dumps(out, indent=2, default=str))
        shown = ("cuts", "acknowledgedThenLost", "lostByKind", "duplicates", "failedStarts", "recovery",
                 "recoveryBySide", "problems", "acknowledged", "cutsBySide", "lazyfsIoErrors", "drainSeconds",
                 "seconds") + (("relayResume", "relayOutbox", "entriesAtTheCloud") if self.hub else ())
        print(f"\npower cuts ({self.label}, synchronous={self.synchronous}{', with a hub' if self.hub else ''}):",
              json.dumps({k: out.get(k) for k in shown}))
        return out

    def relay_resume(self) -> dict:
        """Seconds from the hub's power coming back to its relay's first request to the chain,
        for each cut of the hub (``stalled``: none before the hub's next cut or the end)."""
        seen = sorted(self.relay_proxy.seen_at)
        took, stalled = [], 0
        for i, back in enumerate(self.hub_back_at):
            until = self.hub_back_at[i + 1] if i + 1 < len(self.hub_back_at) else math.inf
            at = bisect.bisect_left(seen, back)
            if at < len(seen) and seen[at] < until:
                took.append(seen[at] - back)
            else:
                stalled += 1
        return {"cutsOfTheHub": len(self.hub_back_at), "stalled": stalled,
                "median": round(statistics.median(took), 2) if took else None,
                "max": round(max(took), 2) if took else None}


def powercut_run(cuts: int, final_drain: bool = True, **kw) -> dict:
    """One run in a directory of its own (not pytest's tmp_path: a pytest run elsewhere on the
    machine may clean old tmp_paths away, and that must not reach into a live mount).  The
    programs' logs are kept in test-artifacts/powercut-<label>-logs/."""
    base = Path(tempfile.mkdtemp(prefix="powercut."))
    w = World(base, **kw)
    try:
        return w.run(cuts, final_drain=final_drain)
    finally:
        w.close()
        keep = ARTIFACTS / f"powercut-{w.label}-logs"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(w.logs, keep, dirs_exist_ok=True)
        for d in w.disks.values():
            with contextlib.suppress(OSError):
                shutil.copy(d.log, keep)
        if not any(d.mounted() for d in w.disks.values()):
            shutil.rmtree(base, ignore_errors=True)


# --- the tests -----------------------------------------------------------------------------------

def test_write_private_fsyncs_the_file_then_its_directory(tmp_path, monkeypatch):
    """LazyFS keeps renames and new directory entries whatever happens (it drops only file
    data), so the directory fsyncs that make a rename durable are checked here instead."""
    synced: list[tuple[str, int]] = []
    real = os.fsync

    def spy(fd):
        st = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        return real(fd)
    monkeypatch.setattr(files.os, "fsync", spy)
    target = tmp_path / "new" / "keys" / "trust.json"
    files.write_private(target, b'{"keys": []}')
    assert synced[0] == ("dir", tmp_path.stat().st_ino)  # "new" made: its parent synced
    assert synced[1] == ("dir", (tmp_path / "new").stat().st_ino)  # "keys" made
    assert synced[2][0] == "file"  # the data, before the rename
    assert synced[-1] == ("dir", target.parent.stat().st_ino)  # the rename, after it
    assert target.read_bytes() == b'{"keys": []}' and stat.S_IMODE(target.stat().st_mode) == 0o600
    synced.clear()
    files.write_private(target, b'{"keys": [1]}')
    assert [k for k, _ in synced] == ["file", "dir"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["trust.json"]  # no temporary file left


def test_write_private_leaves_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "cloud.json"
    files.write_private(target, b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError):
        files.write_private(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["cloud.json"]


def test_the_cloud_starts_while_a_command_closing_the_database_deletes_its_wal_files(tmp_path, monkeypatch):
    """Found by the long run: `kiosk-cloud serve` started after a cut while the operator's
    `kiosk-cloud key create` closed the database (its last close deletes cloud.db-wal and
    -shm); serve saw the -shm exist, then chmod found it gone, and serve exited 1."""
    from sync.cloud import storage

    st = storage.SqliteStorage(tmp_path / "cloud")
    st.prepare()
    shm = st.path.with_name(st.path.name + "-shm")
    shm.write_bytes(b"")
    real = Path.chmod

    def vanishing(self, mode, **kw):
        if self.name.endswith(("-wal", "-shm")):
            self.unlink(missing_ok=True)  # the other command's last close, just now
        return real(self, mode, **kw)
    monkeypatch.setattr(Path, "chmod", vanishing)
    st.prepare()  # no FileNotFoundError
    assert not shm.exists()


def _assert_nothing_lost(fig: dict, cuts: int) -> None:
    details = json.dumps({k: fig[k] for k in ("examples", "failedStartDetails")}, default=str)[:6000]
    assert fig["failedStarts"] == 0, details
    assert fig["cuts"] == cuts, details
    assert fig["acknowledgedThenLost"] == 0, details
    assert fig["duplicates"] == 0, details
    assert all(n == 0 for n in fig["problems"].values()), details
    assert fig["deadLetters"] == 0, details
    assert fig["acknowledged"].get("scans", 0) > 0 and fig["acknowledged"].get("writes", 0) > 0


@needs_lazyfs
@pytest.mark.timeout(900)
def test_power_cuts_lose_nothing_acknowledged():
    fig = powercut_run(SHORT_CUTS, label="short", drain_every=max(SHORT_CUTS, 1))
    _assert_nothing_lost(fig, SHORT_CUTS)


@needs_lazyfs
@pytest.mark.timeout(900)
def test_with_synchronous_normal_a_power_cut_loses_acknowledged_writes():
    """The control: what store.synchronous FULL (the default) protects against.  With NORMAL
    a commit is answered before the WAL reaches the disk, and a cut of the box loses it."""
    fig = powercut_run(2, synchronous="NORMAL", label="short-normal", sides=(("box",),),
                       side_weights=(1.0,), init_share=0.0, drain_every=1000, final_drain=False,
                       moments={"random": (1.0, None)})
    assert fig["acknowledgedThenLost"] > 0, fig


@pytest.mark.slow
@needs_lazyfs
@pytest.mark.timeout(4 * 3600)
def test_power_cuts_long_run():
    fig = powercut_run(LONG_CUTS, label="long")
    _assert_nothing_lost(fig, LONG_CUTS)


@pytest.mark.slow
@needs_lazyfs
@pytest.mark.timeout(4 * 3600)
def test_power_cuts_long_run_with_synchronous_normal():
    fig = powercut_run(NORMAL_CUTS, synchronous="NORMAL", label="long-normal")
    assert fig["acknowledgedThenLost"] > 0, fig


@needs_lazyfs
@pytest.mark.timeout(900)
def test_power_cuts_with_a_hub_in_the_path_lose_and_double_nothing():
    """The box syncs through a hub to the chain cloud; every cut here hits the hub (alone, with
    the box: the property's power, with the chain, or all three).  Every acknowledged action
    reaches the chain exactly once and the hub's relay outbox drains."""
    sides = tuple((s, w) for s, w in HUB_SIDES if "hub" in s)
    fig = powercut_run(HUB_CUTS, hub=True, label="hub-short", drain_every=max(HUB_CUTS, 1),
                       sides=tuple(s for s, _ in sides), side_weights=tuple(w for _, w in sides))
    _assert_nothing_lost(fig, HUB_CUTS)
    assert fig["relayOutbox"] == {"delivered": fig["entriesAtTheCloud"]}, fig["relayOutbox"]
    assert fig["relayResume"]["cutsOfTheHub"] == HUB_CUTS
    # the restarted hub took its dead self's relay lease over instead of waiting for it to run out
    from sync.cloud.upstream import LEASE_SECONDS
    assert fig["relayResume"]["max"] is not None and fig["relayResume"]["max"] < LEASE_SECONDS, fig["relayResume"]


@pytest.mark.slow
@needs_lazyfs
@pytest.mark.timeout(6 * 3600)
def test_power_cuts_with_a_hub_long_run():
    """Cuts of every side and combination (box, hub, chain), at every moment of HUB_MOMENTS."""
    fig = powercut_run(HUB_LONG_CUTS, hub=True, label="hub-long")
    _assert_nothing_lost(fig, HUB_LONG_CUTS)
    assert fig["relayOutbox"] == {"delivered": fig["entriesAtTheCloud"]}, fig["relayOutbox"]
