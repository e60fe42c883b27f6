"""Files that hold secrets: written atomically and durably, mode 0600 from the first byte.

A power cut must find such a file either as it was or complete (docs/durability.md):
the bytes go to a temporary file in the same directory, which is fsync'ed, renamed
over the old file, and then the directory is fsync'ed so the rename itself is on disk.
Directories made on the way are made the same way (each new one's parent fsync'ed).

Files that grow in place (databases, logs) are opened with :func:`open_private`: created
0600 whatever the process's umask, and an older one readable by others made owner-only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600


def open_private(path: str | os.PathLike, flags: int = os.O_RDONLY) -> int:
    """``os.open(path, flags | O_CREAT)`` whose file is never readable by another user: a new
    one is 0600 whatever the umask, an existing one loses its group and other bits (one of
    another user's, or on a read-only mount, is left as it is).  Returns the descriptor."""
    flags |= os.O_CLOEXEC
    while True:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        except FileExistsError:
            pass
        else:
            try:
                os.fchmod(fd, PRIVATE_FILE)  # the umask may have taken more than group and other
            except BaseException:
                os.close(fd)
                raise
            return fd
        try:
            fd = os.open(path, flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC))
        except FileNotFoundError:  # removed since: create it after all
            continue
        try:
            _owner_only(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd


def make_private(path: str | os.PathLike) -> None:
    """Take the group and other bits off the file ``path`` if it exists and is ours.

    By path, never by opening it: closing any descriptor of a file drops every POSIX lock
    this process holds on it, and SQLite's locks on a database and its -shm are such locks,
    so opening and closing a database another connection of this process has open breaks
    that connection's locking (``disk I/O error``, or worse, a write without its lock)."""
    try:
        st = os.lstat(path)
    except OSError:  # missing, or not ours to look at
        return
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or not mode & 0o077:
        return  # a symbolic link, another user's file, or private already
    try:
        os.chmod(path, mode & 0o700)
    except OSError as e:  # a read-only mount (EROFS), removed since (ENOENT): nothing to do here
        if e.errno not in (errno.EPERM, errno.EROFS, errno.ENOENT):
            raise


def _owner_only(fd: int) -> None:
    st = os.fstat(fd)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode) and mode & 0o077:
        try:
            os.fchmod(fd, mode & 0o700)
        except OSError as e:  # not ours (EPERM), a read-only mount (EROFS): nothing to do here
            if e.errno not in (errno.EPERM, errno.EROFS):
                raise


def private_umask(ctx=None) -> None:
    """umask 077 for a program's run: what it creates (databases, logs, exports) is its user's
    only, whatever umask it was started with.  Given a click context, the old umask comes
    back when the context closes (a test running a command in its own process keeps its own)."""
    old = os.umask(0o077)
    if ctx is not None:
        ctx.call_on_close(lambda: os.umask(old))


def fsync_dir(path: Path) -> None:
    """fsync a directory, so the entries made or renamed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:  # a few file systems cannot sync a directory (and need not)
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def make_dirs(path: Path, mode: int = 0o700) -> None:
    """``mkdir -p`` whose new directories survive a power cut (each one's parent is fsync'ed)."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=mode)
        except FileExistsError:
            continue
        fsync_dir(d.parent)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically and durably to ``path`` with mode 0600 from the first byte."""
    path = Path(path)
    make_dirs(path.parent)
    # a temporary name of its own: two writers of one file never write into each other's
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.chmod(path, 0o600)
    fsync_dir(path.parent)
