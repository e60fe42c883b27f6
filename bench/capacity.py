"""One guest's flood of recordings and many open staff terminals, against a real kiosk.

    .venv/bin/python bench/capacity.py [--voice 16] [--streams 64] [--seconds 30] [--dir BASE]

Starts ``kiosk serve`` (a real process, the demo property, real model workers) twice on
this machine, once with the shipped ``capacity`` bounds and once with them opened wide
(the alternative: every model run and every feed admitted, as before the bounds), and in
each run at the same time:

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
         voice: int = 16, streams: int = 64, min_probes: int = 30, deadline: float = 600.0) -> Figures:
    """The scenario (sessions are Bearer JWTs; ``staff`` holds one per four feeds)."""
    f = Figures()
    socks: list[socket.socket] = []
    for i in range(streams):
        s, status, body = open_stream(url, staff[i // 4])
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
                r = requests.get(u, timeout=60, headers={"Authorization": "Bearer " + bearer} if bearer else {})
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
        s, status, _ = open_stream(url, spare_staff)
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

    def __init__(self, root: Path, env: dict[str, str] | None = None):
        self.root = Path(root)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("KIOSK")},
                    "KIOSK_DATA_DIR": str(self.root / "kiosk"), **(env or {})}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._cli("init")
        self.seed = json.loads(self._cli("demo", "seed").strip().splitlines()[-1])

    def _cli(self, *args: str) -> str:
        return subprocess.run([str(BIN / "kiosk"), *args], env=self.env, check=True, capture_output=True,
                              text=True, timeout=300).stdout

    def start(self) -> Kiosk:
        log = open(self.root / "serve.log", "ab")
        self.proc = subprocess.Popen([str(BIN / "kiosk"), "serve", "--port", str(self.port)], env=self.env,
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


def scenario(root: Path, *, voice: int, streams: int, seconds: float, env: dict[str, str] | None = None) -> dict:
    k = Kiosk(root, env).start()
    try:
        guests = k.in_house(2)
        staff = [k.session("staff") for _ in range((streams + 3) // 4)]
        f = load(k.url, guest=k.session("guest", guests[0]), other_guest=k.session("guest", guests[1]),
                 staff=staff, spare_staff=k.session("staff"), audio=noise_wav(seconds), voice=voice,
                 streams=streams)
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
    a = ap.parse_args()
    base = Path(a.dir or tempfile.mkdtemp(prefix="bench-capacity-"))
    rows = {}
    for name, env in (("bounded (shipped)", {}), ("wide open", WIDE_OPEN)):
        print(f"running: {name} …", file=sys.stderr)
        rows[name] = scenario(base / name.split()[0], voice=a.voice, streams=a.streams, seconds=a.seconds, env=env)
    print(f"{a.voice} recordings of {a.seconds:g} s from one guest, {a.streams} staff feeds, "
          f"{os.cpu_count()} cores")
    keys = ["voiceAdmitted", "voiceBusy", "voiceRunS", "busyAnswerMsMax", "streamsAdmitted", "streamsBusy",
            "healthz", "guestHome", "staffListing", "freedAfterS", "probeErrors"]
    print(f"{'':18}" + "".join(f"{n:>34}" for n in rows))
    for key in keys:
        cells = []
        for r in rows.values():
            v = r[key]
            cells.append(f"p50 {v['p50']} p99 {v['p99']} max {v['max']} ms" if isinstance(v, dict) else str(v))
        print(f"{key:18}" + "".join(f"{c:>34}" for c in cells))


if __name__ == "__main__":
    main()
