"""Real ``kiosk`` processes for tests and benchmarks.

:func:`kiosk` runs the installed console script (the one next to the running
interpreter) to completion; :class:`Server` starts ``kiosk serve`` on a free
port, waits for ``/healthz`` and is killed with SIGKILL by :meth:`Server.kill`
(always call it, e.g. from a fixture finalizer).  Nothing here reads the
caller's ``KIOSK_*`` environment: every process gets a clean one plus what
the caller passes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import harness
import loaded
import requests

KIOSK = Path(sys.executable).parent / "kiosk"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment without any ``KIOSK*`` variable, plus generous model and store
    timeouts (tests/loaded.py) and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    env.update(loaded.env())
    env.update(extra or {})
    return env


def kiosk(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``kiosk ARGS…``; returns the completed process (text stdout/stderr), never raises on exit code."""
    return subprocess.run([str(KIOSK), *args], capture_output=True, text=True, env=clean_env(env),
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``kiosk --data-dir DIR serve --port P`` as a child process in its own process group."""

    def __init__(self, data_dir: Path, log: Path, *, env: dict[str, str] | None = None,
                 config: Path | None = None):
        self.data_dir = Path(data_dir)
        self.log = Path(log)
        self.env = env or {}
        self.config = config
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> Server:  # generous: a loaded box starts slowly
        assert self.proc is None or self.proc.poll() is not None, "already running"
        for _attempt in range(3):  # a free port can be taken between bind and serve
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            args = [str(KIOSK)]
            if self.config is not None:
                args += ["--config", str(self.config)]
            args += ["--data-dir", str(self.data_dir), "serve", "--port", str(self.port)]
            with open(self.log, "ab") as f:
                self.proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                             env=clean_env(self.env), start_new_session=True)
            if self._wait_healthy(timeout):
                return self
            self.kill()
        raise AssertionError(f"kiosk serve did not come up; log:\n{self.log.read_text()[-4000:]}")

    def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                # the answer must come from this server, not another test's that took the port
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200 and \
                        harness.listens(self.proc.pid, self.port):
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig`` to the server's process group and reap it; harmless if already dead."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode
