"""Real processes for integration tests: kiosk, agent and reference cloud on 127.0.0.1.

Each process gets its own data dir and port, logs to a file under the test's
tmp dir, and is killed (SIGKILL if SIGTERM does not do) when the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import loaded
import requests

BIN = Path(sys.executable).parent
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict | None = None, check: bool = True, timeout: float = 120,
        wrap: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    p = subprocess.run([*wrap, str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


#: no deadline here is shorter: a wait ends when its condition holds, so a generous deadline
#: costs time only when the test fails anyway, and a 2-core machine running other work
#: (or two suites at once) takes many times longer to start a process than an idle one
MIN_DEADLINE_SECONDS = 180.0


class PortTaken(AssertionError):
    """The server could not listen: another process took the port between :func:`free_port`
    and the server's start (tests in other workers pick ports too)."""


def _listener_inode(port: int) -> str | None:
    """The inode of the socket listening on 127.0.0.1:``port`` (``/proc/net/tcp``), if any."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and f[1] == f"0100007F:{port:04X}":  # 0A: LISTEN
            return f[9]
    return None


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on 127.0.0.1:``port``: the answer a
    wait gets is from the server it started, not another test's that took the port."""
    inode = _listener_inode(port)
    if inode is None:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                return True
        except OSError:
            continue
    return False


def wait_http(url: str, timeout: float = 15.0, proc: Proc | None = None) -> None:
    """Until ``url`` answers; with the ``proc`` that serves it, only an answer from ``proc``
    counts (the port's listening socket is its own), and an AssertionError with the end of its
    log comes as soon as it has exited (not the whole deadline later): :class:`PortTaken` when
    it could not listen because another process holds the port."""
    deadline = time.monotonic() + max(timeout, MIN_DEADLINE_SECONDS)
    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=0.5)
            if proc is None or proc.p is None or listens(proc.p.pid, port):
                return
        except requests.RequestException:
            pass
        if proc is not None and proc.p is not None and proc.p.poll() is not None:
            tail = proc.log.read_bytes()[proc.log_from:].decode(errors="replace")[-3000:] if proc.log.exists() else ""
            error = PortTaken if "ADDRESS_IN_USE" in tail else AssertionError
            raise error(f"{url}: {proc.args[:2]} exited {proc.p.returncode} before it answered;"
                        f" the end of its log:\n{tail}") from None
        time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def serve_on_a_free_port(owner, start, attempts: int = 5) -> None:
    """``start()`` (which keeps and returns the :class:`Proc` serving ``owner.url``) until that
    process answers; while the port it was given turns out taken, again on a new one."""
    for attempt in range(attempts):
        try:
            wait_http(owner.url + "/healthz", proc=start())
            return
        except PortTaken:
            if attempt == attempts - 1:
                raise
            owner.port = free_port()
            owner.url = f"http://127.0.0.1:{owner.port}"


def wait_for(pred, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """``pred()``'s first true value, polled every ``interval`` s; AssertionError past the deadline
    (``timeout``, at least :data:`MIN_DEADLINE_SECONDS`)."""
    deadline = time.monotonic() + max(timeout, MIN_DEADLINE_SECONDS)
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict | None = None, wrap: tuple[str, ...] = ()):
        self.args, self.log, self.wrap = args, log, wrap
        self.env = {**os.environ, **(env or {})}
        self.p: subprocess.Popen | None = None
        self.log_from = 0

    def start(self) -> Proc:
        self.log_from = self.log.stat().st_size if self.log.exists() else 0  # this run's part of the log
        f = open(self.log, "ab")
        self.p = subprocess.Popen([*self.wrap, str(BIN / self.args[0]), *self.args[1:]], stdout=f,
                                  stderr=subprocess.STDOUT,
                                  env=self.env, start_new_session=True)
        f.close()
        return self

    def kill(self, sig=signal.SIGKILL) -> int | None:
        if self.p and self.p.poll() is None:
            # the whole process group: a wrapper such as faketime runs the real process as a child
            os.killpg(self.p.pid, sig)
            try:
                return self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                return self.p.wait(10)
        return self.p.returncode if self.p else None

    def stop(self) -> int | None:
        return self.kill(signal.SIGTERM)


class Cloud:
    #: where new clouds keep their data: None (SQLite in their data dir) or a callable that
    #: gives a fresh PostgreSQL database URL (the ``cloud_backend`` fixture sets it)
    database_factory = None

    def __init__(self, root: Path, *, database: str | None = None, workers: int = 1):
        self.dir = root / "cloud"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Proc | None = None
        if database is None and Cloud.database_factory is not None:
            database = Cloud.database_factory()
        self.database, self.workers = database, workers
        self.env = {"KIOSK_CLOUD_DATABASE": database} if database else {}

    def start(self, env: dict | None = None) -> Cloud:
        def start() -> Proc:
            args = ["kiosk-cloud", "serve", "--data-dir", str(self.dir), "--port", str(self.port)]
            if self.workers > 1:
                args += ["--workers", str(self.workers)]
            self.proc = Proc(args, self.dir.parent / "cloud.log", env={**self.env, **(env or {})}).start()
            return self.proc

        serve_on_a_free_port(self, start)  # no credential needed for /healthz
        return self

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """A kiosk-cloud command on this cloud's data (its data dir or database)."""
        return run("kiosk-cloud", *args, "--data-dir", str(self.dir), env=self.env)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def device(self, kiosk_id: str, *hotels: str, rotate: bool = False) -> str:
        args = ["device", "add", kiosk_id] + (["--rotate"] if rotate else [])
        for h in hotels:
            args += ["--hotel", h]
        return self.cli(*args).stdout.strip()

    def list(self, what: str, hotel: str) -> list[dict]:
        return json.loads(self.cli(what, "--hotel", hotel, "--json").stdout)


class Kiosk:
    """A kiosk instance (data dir + optional server) and its agent."""

    def __init__(self, root: Path, name: str = "kiosk", hotels=("demo",), agent_env: dict | None = None,
                 clock_offset: str | None = None):
        # clock_offset ("-2h", "+2h"): every process of this kiosk runs with libfaketime
        # preloaded, a wall clock that is wrong by that much (the machine's clock is left
        # alone).  Only the wall clock: a box with a wrong date still has a working
        # monotonic clock, and timed waits (threading, sleeps) hang if that is faked too.
        # The library is preloaded directly rather than through the `faketime` wrapper,
        # whose per-PID shared-memory semaphore outlives a SIGKILL and then makes a later
        # process with the same PID fail to start ("sem_open: File exists").
        self.wrap = ("env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={clock_offset}",
                     "FAKETIME_DONT_FAKE_MONOTONIC=1", "FAKETIME_NO_CACHE=1") if clock_offset else ()
        self.dir = root / name
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"KIOSK_DATA_DIR": str(self.dir), "KIOSK__PROPERTY__HOTELS": json.dumps(list(hotels)),
                    "KIOSK__PROPERTY__KIOSK_ID": name, **loaded.env()}
        self.agent_env = {**self.env, "KIOSK__AGENT__POLL_INTERVAL_SECONDS": "0.05",
                          "KIOSK__AGENT__PUSH_INTERVAL_SECONDS": "0.2",
                          "KIOSK__AGENT__BACKOFF_BASE_SECONDS": "0.05",
                          "KIOSK__AGENT__BACKOFF_MAX_SECONDS": "0.5",
                          "KIOSK__AGENT__PULL_INTERVAL_SECONDS": "0.2", **(agent_env or {})}
        run("kiosk", "init", env=self.env, wrap=self.wrap)
        self.server: Proc | None = None
        self.agent: Proc | None = None

    def cli(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        return run(*args, env={**self.agent_env, **(env or {})}, check=check, wrap=self.wrap)

    def serve(self) -> Kiosk:
        def start() -> Proc:
            self.server = Proc(["kiosk", "serve", "--port", str(self.port)], self.dir.parent / f"{self.name}.log",
                               env=self.env, wrap=self.wrap).start()
            return self.server

        serve_on_a_free_port(self, start)
        return self

    def link(self, cloud_url: str, credential: str) -> None:
        self.cli("kiosk-agent", "link", "--cloud", cloud_url, "--device-id", self.name, "--credential", credential)

    def start_agent(self) -> Proc:
        self.agent = Proc(["kiosk-agent", "run"], self.dir.parent / f"{self.name}-agent.log",
                          env=self.agent_env, wrap=self.wrap).start()
        return self.agent

    def status(self) -> dict:
        return json.loads(self.cli("kiosk-agent", "status", "--json").stdout)

    def token(self, role: str, hotel: str = "demo", **kw) -> str:
        # a flag as True (walk_in=True: --walk-in); any other value as --option=value
        extra = [f"--{k.replace('_', '-')}" if v is True else f"--{k}={v}" for k, v in kw.items()]
        return self.cli("kiosk", "token", "create", "--role", role, "--hotel", hotel, *extra).stdout.strip()

    def scan(self, token: str, hotel: str = "demo") -> requests.Response:
        return requests.post(self.url + "/api/qr/scan", json={"qrToken": token, "hotelId": hotel}, timeout=60)

    def screen(self, role: str = "staff", hotel: str = "demo", token: str | None = None) -> requests.Session:
        """A session signed in the way a screen's script is: the scan marked ``X-Kiosk-Screen``
        sets the bound cookie, and the answer's ``screenKey`` goes with every request
        (``X-Kiosk-Key``).  The scan's answer is ``.scan``."""
        s = requests.Session()
        r = s.post(self.url + "/api/qr/scan", json={"qrToken": token or self.token(role, hotel), "hotelId": hotel},
                   headers={"X-Kiosk-Screen": "1"}, timeout=60)
        assert r.status_code == 200, r.text
        s.headers["X-Kiosk-Key"] = r.json()["screenKey"]
        s.scan = r.json()
        return s

    def session(self, role: str = "staff", hotel: str = "demo", token: str | None = None) -> requests.Session:
        s = requests.Session()
        r = s.post(self.url + "/api/qr/scan", json={"qrToken": token or self.token(role, hotel), "hotelId": hotel},
                   timeout=60)
        assert r.status_code == 200, r.text
        s.headers["Authorization"] = "Bearer " + r.json()["sessionJWT"]
        return s

    def stop_all(self) -> None:
        for p in (self.agent, self.server):
            if p:
                p.kill()
