"""A throwaway PostgreSQL server for tests: initdb in a temporary directory, started on a
free port on 127.0.0.1, removed at the end.  A real server (Debian's postgresql package,
installed by scripts/setup.sh --test), never a mock.

PostgreSQL refuses to run as root; as root the cluster belongs to the ``postgres`` user
the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import free_port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def available() -> str | None:
    """None if a throwaway server can be started here, else why not."""
    if pg_bin() is None:
        return "PostgreSQL is not installed (scripts/setup.sh --test installs Debian's postgresql)"
    if os.getuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user"
    return None


class PgServer:
    def __init__(self) -> None:
        self.bin = pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        self.port = free_port()
        self.user = "kiosk"
        self.url = f"postgresql://{self.user}@127.0.0.1:{self.port}/cloud"
        self._as: list[str] = []
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        p = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {p.stdout}\n{p.stderr}")

    def start(self) -> PgServer:
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
                        " -c shared_buffers=64MB", "start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "cloud")
        return self

    def postmaster_pid(self) -> int:
        """The server's main process (its backends are its children)."""
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def new_database(self, name: str) -> str:
        """A fresh, empty database on this server; its URL."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        """``name`` dropped (its pages leave the server's buffers unwritten)."""
        self._run(str(self.bin / "dropdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "--force", name)

    def stop(self) -> None:
        data = self.dir / "data"
        if data.exists():
            subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                shutil.rmtree(self.dir)
                return
            except OSError:
                time.sleep(0.1)
