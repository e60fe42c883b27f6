"""Files that hold secrets: written atomically and durably, mode 0600 from the first byte.

A power cut must find such a file either as it was or complete (docs/durability.md):
the bytes go to a temporary file in the same directory, which is fsync'ed, renamed
over the old file, and then the directory is fsync'ed so the rename itself is on disk.
Directories made on the way are made the same way (each new one's parent fsync'ed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path


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
