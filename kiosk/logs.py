"""JSON-lines logging on stdout (and into the instance's logs/ directory)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from .clock import iso
from .files import make_private, open_private

LOG_FILE = "kiosk.jsonl"
BACKUPS = 5

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": iso(record.created), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        for k, v in vars(record).items():
            if k not in _RESERVED and k not in ("message", "asctime"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are 0600 whatever the umask: the log names guests and rooms.
    (A rotation renames the file, keeping its mode, and opens the next one through here.)"""

    def _open(self):
        fd = open_private(self.baseFilename, os.O_WRONLY | os.O_APPEND)
        try:
            return open(fd, self.mode, encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise


def configure(level: str = "INFO", log_dir: Path | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_dir.chmod(0o700)  # logs name guests and rooms: owner only, like the data
        for k in range(1, BACKUPS + 1):  # rotated files an older version left readable
            make_private(log_dir / f"{LOG_FILE}.{k}")
        handlers.append(PrivateRotatingFileHandler(log_dir / LOG_FILE, maxBytes=10_000_000, backupCount=BACKUPS,
                                                   encoding="utf-8"))
    for h in handlers:
        h.setFormatter(JsonFormatter())
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # APScheduler logs every job run at INFO (four lines a second from the push job);
    # the agent logs what a run did itself, so keep only its warnings and errors.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
