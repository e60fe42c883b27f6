"""systemd's notify protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET.

Does nothing when not started by systemd (no NOTIFY_SOCKET).
"""

from __future__ import annotations

import os
import socket


def notify(state: str, env: dict | None = None) -> bool:
    """Send e.g. ``READY=1`` or ``WATCHDOG=1``; returns whether a message was sent."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(path)
            s.sendall(state.encode())
        except OSError:
            return False
    return True


def watchdog_interval(env: dict | None = None) -> float | None:
    """Half of WATCHDOG_USEC in seconds (how often to ping), or None if no watchdog."""
    env = env if env is not None else os.environ
    usec = env.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return None
    if env.get("WATCHDOG_PID") and env["WATCHDOG_PID"] != str(os.getpid()):
        return None
    return int(usec) / 1e6 / 2
