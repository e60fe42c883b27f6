"""One guest's flood of recordings and many open staff terminals, against a real kiosk.

    .venv/bin/python bench/capacity.py [--voice 16] [--streams 64] [--seconds 30] [--dir BASE]
                                       [--against REV]

Starts ``kiosk serve`` (a real process, the demo property, real model workers) on this
machine with the shipped ``capacity`` bounds, then with them opened wide (every model run
and every feed admitted, each feed on a thread of its own), and with ``--against REV``
also the code of git revision REV (e.g. the commit before the bounds: eight threads for
everything), and in each run at the same time:

* opens ``--streams`` staff event streams (``/api/staff/events``, four per staff session)
  and keeps them open;
* sends ``--voice`` recordings of ``--seconds`` seconds at once from ONE guest session
  (``POST /api/guest/voice``);
* while they run, asks ``/healthz``, another guest's home screen and the staff listing
  again and again, and measures each answer.

It prints one table: the answers' median / p99 / worst in ms, how many recordings and
feeds were admitted or refused with ``429 BUSY``, and how long a closed feed held its
place.  ``tests/test_capacity.py`` runs :func:`load` once with the shipped bounds.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def noise_wav(seconds: float, seed: int = 7) -> bytes:
    """``seconds`` of quiet noise with a wandering tone, 16 kHz mono 16-bit: the recogniser
    works through every frame of it, as it does through speech."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    pcm = 1500 * rng.standard_normal(n) + 3000 * np.sin(2 * np.pi * (180 + 60 * np.sin(t)) * t)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())
    return buf.getvalue()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else float("nan")


def open_stream(url: str, bearer: str, timeout: float = 60.0) -> tuple[socket.socket, int, dict]:
    """GET /api/staff/events on a raw socket: (the open socket, the status, the JSON body of a refusal)."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(f"GET /api/staff/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {bearer}\r\n"
              f"Accept: text/event-stream\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    body = {}
    if status != 200:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")),
                      0)
        while len(rest) < length:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        try:
            body = json.loads(rest[:length] or b"{}")
        except ValueError:
            body = {}
        s.close()
    return s, status, body


@dataclass
class Figures:
    voice: list[tuple[int, float, str]] = field(default_factory=list)   # (status, seconds, code)
    streams: list[tuple[int, str]] = field(default_factory=list)        # (status, scope of a refusal)
    health: list[float] = field(default_factory=list)
    home: list[float] = field(default_factory=list)
    listing: list[float] = field(default_factory=list)
    probe_errors: list[str] = field(default_factory=list)
    freed_after: float | None = None  # seconds from closing the feeds until a new one was admitted

    def summary(self) -> dict:
        admitted = [t for st, t, _ in self.voice if st == 200]
        busy = [t for st, t, c in self.voice if c == "BUSY"]
        ms = lambda xs: {"n": len(xs), "p50": round(1000 * statistics.median(xs), 1) if xs else None,  # noqa: E731
                         "p99": round(1000 * pct(xs, 99), 1) if xs else None,
                         "max": round(1000 * max(xs), 1) if xs else None}
        return {"voiceAdmitted": len(admitted), "voiceBusy": len(busy),
                "voiceOther": [(st, c) for st, _, c in self.voice if st != 200 and c != "BUSY"],
                "voiceRunS": round(max(admitted), 2) if admitted else None,
                "busyAnswerMsMax": round(1000 * max(busy), 1) if busy else None,
                "streamsAdmitted": sum(1 for st, _ in self.streams if st == 200),
                "streamsBusy": sum(1 for st, _ in self.streams if st == 429),
                "healthz": ms(self.health), "guestHome": ms(self.home), "staffListing": ms(self.listing),
                "probeErrors": self.probe_errors[:5], "freedAfterS": self.freed_after}


def load(url: str, *, guest: str, other_guest: str, staff: list[str], spare_staff: str, audio: bytes,
         voice: int = 16, streams: int = 64, min_probes: int = 30, deadline: float = 600.0,
         probe_timeout: float = 60.0) -> Figures:
    """The scenario (sessions are Bearer JWTs; ``staff`` holds one per four feeds)."""
    f = Figures()
    socks: list[socket.socket] = []
    from concurrent.futures import ThreadPoolExecutor

    def feed(i):
        try:
            return open_stream(url, staff[i // 4], timeout=probe_timeout)
        except OSError:  # no answer: the server has no thread left for it
            return None, 0, {}

    with ThreadPoolExecutor(max_workers=16) as pool:
        for s, status, body in pool.map(feed, range(streams)):
            f.streams.append((status, ((body.get("error") or {}).get("details") or {}).get("scope", "")))
            if status == 200:
                socks.append(s)
    payload = {"audio": base64.b64encode(audio).decode()}
    go = threading.Barrier(voice + 1)
    lock = threading.Lock()

    def speak():
        go.wait()
        t = time.perf_counter()
        try:
            r = requests.post(url + "/api/guest/voice", json=payload, timeout=deadline,
                              headers={"Authorization": "Bearer " + guest})
            code = "" if r.status_code == 200 else r.json()["error"]["code"]
            status = r.status_code
        except requests.RequestException as e:
            status, code = 0, type(e).__name__
        with lock:
            f.voice.append((status, time.perf_counter() - t, code))

    threads = [threading.Thread(target=speak, daemon=True) for _ in range(voice)]
    for t in threads:
        t.start()
    go.wait()
    probes = [("health", url + "/healthz", None), ("home", url + "/api/guest/home", other_guest),
              ("listing", url + "/api/staff/tasks", spare_staff)]
    end = time.monotonic() + deadline
    rounds = 0
    pace = threading.Event()
    while time.monotonic() < end and (rounds < min_probes or any(t.is_alive() for t in threads)):
        for name, u, bearer in probes:
            t0 = time.perf_counter()
            try:
                r = requests.get(u, timeout=probe_timeout, headers={"Authorization": "Bearer " + bearer} if bearer else {})
                if r.status_code != 200:
                    f.probe_errors.append(f"{name}: {r.status_code}")
            except requests.RequestException as e:
                f.probe_errors.append(f"{name}: {type(e).__name__}")
            getattr(f, name).append(time.perf_counter() - t0)
        rounds += 1
        pace.wait(0.05)  # pacing of the probes, not a wait for a result
    for t in threads:
        t.join(timeout=max(1.0, end - time.monotonic()))
    # the feeds' clients leave: their places come back without waiting for a keep-alive to fail
    for s in socks:
        s.close()
    closed = time.monotonic()
    fresh = None
    while time.monotonic() < closed + 60:
        try:
            s, status, _ = open_stream(url, spare_staff, timeout=probe_timeout)
        except OSError:
            status = 0
        if status == 200:
            fresh = s
            f.freed_after = round(time.monotonic() - closed, 2)
            break
        pace.wait(0.2)
    if fresh is not None:
        fresh.close()
    return f


# --- a kiosk to measure ------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kiosk:
    """``kiosk serve`` with the demo property in ``root``, for :func:`load`."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, code: Path | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("KIOSK")},
                    "KIOSK_DATA_DIR": str(self.root / "kiosk"), **(env or {})}
        # another revision's code (a git worktree) runs as `python -m` with it first on the path
        self.cmd = [str(BIN / "kiosk")]
        if code is not None:
            self.env["PYTHONPATH"] = str(code)
            self.cmd = [sys.executable, "-c", "import sys; from kiosk.cli import main; sys.exit(main())"]
        # (from the data's folder: `python -c` puts the working directory first on the path)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._cli("init")
        self.seed = json.loads(self._cli("demo", "seed").strip().splitlines()[-1])

    def _cli(self, *args: str) -> str:
        return subprocess.run([*self.cmd, *args], env=self.env, cwd=self.root, check=True, capture_output=True,
                              text=True, timeout=300).stdout

    def start(self) -> Kiosk:
        log = open(self.root / "serve.log", "ab")
        self.proc = subprocess.Popen([*self.cmd, "serve", "--port", str(self.port)], env=self.env, cwd=self.root,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"kiosk serve exited: {(self.root / 'serve.log').read_text()[-2000:]}")
            threading.Event().wait(0.1)
        raise RuntimeError("kiosk serve did not answer /healthz within 120 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()

    def session(self, role: str, user: str | None = None) -> str:
        args = ["token", "create", "--role", role, "--hotel", "demo"] + (["--user", user] if user else [])
        token = self._cli(*args).strip()
        r = requests.post(self.url + "/api/qr/scan", json={"qrToken": token, "hotelId": "demo"}, timeout=60)
        r.raise_for_status()
        return r.json()["sessionJWT"]

    def in_house(self, n: int) -> list[str]:
        """Confirmations of ``n`` guests in the house today."""
        import sqlite3

        db = sqlite3.connect(self.root / "kiosk" / "kiosk.db")
        try:
            rows = db.execute("SELECT confirmation FROM reservations WHERE hotel_id = 'demo'"
                              " AND status = 'InHouse' ORDER BY confirmation LIMIT ?", [n]).fetchall()
        finally:
            db.close()
        return [r[0] for r in rows]


def scenario(root: Path, *, voice: int, streams: int, seconds: float, env: dict[str, str] | None = None,
             code: Path | None = None, deadline: float = 600.0, probe_timeout: float = 60.0) -> dict:
    k = Kiosk(root, env, code).start()
    try:
        guests = k.in_house(2)
        staff = [k.session("staff") for _ in range((streams + 3) // 4)]
        f = load(k.url, guest=k.session("guest", guests[0]), other_guest=k.session("guest", guests[1]),
                 staff=staff, spare_staff=k.session("staff"), audio=noise_wav(seconds), voice=voice,
                 streams=streams, deadline=deadline, probe_timeout=probe_timeout)
        return f.summary()
    finally:
        k.stop()


WIDE_OPEN = {"KIOSK__CAPACITY__MODEL_RUNS": "64", "KIOSK__CAPACITY__MODEL_RUNS_PER_SESSION": "16",
             "KIOSK__CAPACITY__STREAMS": "256", "KIOSK__CAPACITY__STREAMS_PER_SESSION": "64"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voice", type=int, default=16)
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--deadline", type=float, default=120.0, help="stop probing after this many seconds")
    ap.add_argument("--against", metavar="REV", help="also run the code of this git revision")
    a = ap.parse_args()
    base = Path(a.dir or tempfile.mkdtemp(prefix="bench-capacity-"))
    runs = [("bounded (shipped)", {}, None), ("wide open", WIDE_OPEN, None)]
    if a.against:
        tree = base / "against"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), a.against], check=True,
                       capture_output=True)
        runs.append((f"at {a.against}", {}, tree))
    rows = {}
    try:
        for name, env, code in runs:
            print(f"running: {name} …", file=sys.stderr)
            rows[name] = scenario(base / name.split()[0].strip("()"), voice=a.voice, streams=a.streams,
                                  seconds=a.seconds, env=env, code=code, deadline=a.deadline, probe_timeout=10.0)
    finally:
        if a.against:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base / "against")],
                           capture_output=True)
    print(f"{a.voice} recordings of {a.seconds:g} s from one guest, {a.streams} staff feeds, "
          f"{os.cpu_count()} cores")
    keys = ["voiceAdmitted", "voiceBusy", "voiceRunS", "busyAnswerMsMax", "streamsAdmitted", "streamsBusy",
            "healthz", "guestHome", "staffListing", "freedAfterS", "probeErrors"]
    print(f"{'':18}" + "".join(f"{n:>40}" for n in rows))
    for key in keys:
        cells = []
        for r in rows.values():
            v = r[key]
            cells.append(f"p50 {v['p50']} p99 {v['p99']} max {v['max']} ms" if isinstance(v, dict) else str(v))
        print(f"{key:18}" + "".join(f"{c:>40}" for c in cells))


if __name__ == "__main__":
    main()
