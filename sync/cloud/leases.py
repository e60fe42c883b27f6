"""Who holds a lease, and whether it is a process of this machine that is gone.

The cloud's background workers (a hub's relay, the PMS connectors) take a lease in a row of
the database so that one of several worker processes does the work.  A lease runs out by
itself (60 s) when its holder dies; until then nobody else takes it.  On one machine that
wait is needless: a hub killed or cut off its power, started again, would leave its relay
idle for up to a minute while the dead process's lease ran out.  An owner names its host,
its process id and the process's start time (``/proc/PID/stat``), so a process on the same
host can tell that the holder is gone — no process with that id, or one that started at
another time (the id was reused) — and take the lease over at once.

A holder on another host is never judged: its lease runs out as before.  Where the start
time cannot be read (no /proc), only a process id that is not running counts as gone.
"""

from __future__ import annotations

import os
import socket
import uuid


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


def owner() -> str:
    """A lease owner for this process: ``host:pid:start:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid()) or '-'}:{uuid.uuid4().hex[:8]}"


def gone(holder: str | None) -> bool:
    """Whether ``holder`` (an ``owner()`` of some process) is a process of this host that is no
    longer running.  False for another host, this very process, and anything unreadable."""
    if not holder:
        return False
    parts = holder.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid() or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # running, as another user
    except OSError:
        return False
    started = parts[2] if len(parts) >= 4 else None  # owners before the start time was written: host:pid:random
    now = _started(pid)
    return bool(started and started != "-" and now and now != started)


def holder_if_gone(db, sql: str, params: list) -> str | None:
    """The lease's holder read by ``sql`` (one row, one column) when it is gone (``gone``), else None:
    the value a conditional take-over may match."""
    row = db.execute(sql, params).fetchone()
    return row[0] if row and gone(row[0]) else None
