"""LazyFS mounts for the power-cut tests: a directory that forgets what was never fsync'ed.

LazyFS (third_party/lazyfs, built by ``scripts/build-lazyfs.sh``) is a FUSE file system
with its own page cache: writes stay in it until the writer calls fsync.  A power cut
is :meth:`LazyFS.cut`: the command ``lazyfs::clear-cache`` on its fault FIFO drops
every unsynced byte (we wait for its "finished" answer), then the file system is
unmounted and mounted again, so not even the kernel's page cache of the old mount can
hand back data the "disk" never got.  Kill every process that writes there first.

What LazyFS does not simulate: directory entries.  ``create``, ``rename`` and
``unlink`` go straight to the underlying file system, so a rename whose directory was
never fsync'ed survives here though it may not survive a real cut; the directory
fsyncs are checked by a unit test instead (tests/test_powercut.py).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

CONFIG = """\
[faults]
fifo_path="{fifo}"
fifo_path_completed="{done}"
[cache]
apply_eviction=false
[cache.simple]
custom_size="{size}"
blocks_per_page=1
[filesystem]
log_all_operations=false
logfile=""
"""


def binary() -> Path:
    """``$LAZYFS_BIN``, or where scripts/build-lazyfs.sh puts it."""
    if os.environ.get("LAZYFS_BIN"):
        return Path(os.environ["LAZYFS_BIN"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hotel-kiosk" / "lazyfs" / "lazyfs"


def unusable() -> str | None:
    """Why LazyFS cannot run here (a skip reason), or None if it can be tried."""
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"/dev/fuse is not usable here ({e.strerror}); the power-cut tests need FUSE"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3); the power-cut tests need it"
    if not os.access(binary(), os.X_OK):
        return (f"LazyFS is not built ({binary()} is missing); `bash scripts/build-lazyfs.sh` builds it "
                "(scripts/setup.sh --test does) from third_party/lazyfs")
    return None


class LazyFS:
    """One LazyFS mount at ``base/name`` over ``base/name.root``."""

    def __init__(self, base: Path, name: str, cache_size: str = "256mb"):
        self.mnt = Path(base) / name
        self.root = Path(base) / f"{name}.root"
        self.fifo = Path(base) / f"{name}.fifo"
        self.done = Path(base) / f"{name}.done.fifo"
        self.config = Path(base) / f"{name}.toml"
        self.log = Path(base) / f"{name}.lazyfs.log"
        self.cache_size = cache_size
        self.proc: subprocess.Popen | None = None
        self._done_fd: int | None = None
        self.cuts = 0

    def mount(self, timeout: float = 60.0) -> LazyFS:
        for p in (self.mnt, self.root):
            p.mkdir(parents=True, exist_ok=True)
        for f in (self.fifo, self.done):
            if not f.exists():
                os.mkfifo(f)
        self.config.write_text(CONFIG.format(fifo=self.fifo, done=self.done, size=self.cache_size))
        # LazyFS opens the "finished" FIFO for writing when it starts, which blocks until a
        # reader is there: ours, opened non-blocking first.
        self._done_fd = os.open(self.done, os.O_RDONLY | os.O_NONBLOCK)
        # the config path is given relative to its directory: LazyFS takes any path containing
        # "-o" (as /tmp/pytest-of-root/... does) for a mount option and falls back to its default
        assert "-o" not in self.config.name.lower()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(binary()), str(self.mnt), "--config-path", self.config.name,
                                          "-o", "modules=subdir", "-o", f"subdir={self.root}", "-f"],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.config.parent)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.unmount()
                raise RuntimeError(f"LazyFS did not mount {self.mnt}; log:\n{self.tail()}")
            time.sleep(0.02)
        return self

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def mounted(self) -> bool:
        with open("/proc/self/mountinfo") as f:  # a dead FUSE mount is still listed (stat fails on it)
            return any(line.split()[4] == str(self.mnt) for line in f)

    def command(self, text: str) -> None:
        """Write one command to the fault FIFO (LazyFS reads at most 100 bytes at a time)."""
        data = text.encode() + b"\n"
        if len(data) > 100:
            raise ValueError(f"LazyFS command longer than 100 bytes: {text}")
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # LazyFS holds it open, so no wait
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def crash_at(self, timing: str, op: str, *, path: str | None = None, to: str | None = None) -> None:
        """Arm a power cut at one operation: LazyFS kills itself (its cache dies with it)
        ``timing`` (before/after) the first ``op`` on a path matching the regex ``path``
        (for ``rename``: whose new name matches ``to``).  :meth:`cut` then remounts."""
        # (a rename's from_rgx must be given and must not match "none", or LazyFS never fires)
        where = f"::from_rgx={path or '.'}::to_rgx={to}" if op == "rename" else f"::from_rgx={path}"
        armed = self.tail(10**9).count("VALID crash fault")
        self.command(f"lazyfs::crash::timing={timing}::op={op}{where}")
        deadline = time.monotonic() + 30
        while self.tail(10**9).count("VALID crash fault") <= armed:  # LazyFS takes it on another thread
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError(f"LazyFS did not take the crash fault; log:\n{self.tail()}")
            time.sleep(0.01)

    def clear_cache(self, timeout: float = 60.0) -> None:
        """``lazyfs::clear-cache``: every byte not fsync'ed is gone; returns once LazyFS says so."""
        while True:  # drop anything left over in the answer FIFO
            try:
                if not os.read(self._done_fd, 4096):
                    break
            except BlockingIOError:
                break
        self.command("lazyfs::clear-cache")
        got = b""
        deadline = time.monotonic() + timeout
        while b"finished::clear-cache" not in got:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"LazyFS did not confirm clear-cache; log:\n{self.tail()}")
            ready, _, _ = select.select([self._done_fd], [], [], min(left, 0.5))
            if ready:
                try:
                    got += os.read(self._done_fd, 4096)
                except BlockingIOError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"LazyFS exited; log:\n{self.tail()}")

    def unmount(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.mounted():
            if subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True).returncode == 0:
                break
            if time.monotonic() > deadline:  # something still holds a file open: detach anyway
                subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
                break
            time.sleep(0.1)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(10)  # the cache dies with it: nothing is flushed on the way out
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._done_fd is not None:
            os.close(self._done_fd)
            self._done_fd = None

    def cut(self) -> None:
        """The power cut and the power coming back: clear the cache, unmount, mount again.
        (After a :meth:`crash_at` that fired, LazyFS and its cache are gone already.)"""
        if self.alive():
            self.clear_cache()
        self.unmount()
        self.mount()
        self.cuts += 1
