"""JSON-lines logging on stdout (and into the instance's logs/ directory)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from pathlib import Path

from .clock import iso

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


def configure(level: str = "INFO", log_dir: Path | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_dir.chmod(0o700)  # logs name guests and rooms: owner only, like the data
        handlers.append(logging.handlers.RotatingFileHandler(
            log_dir / "kiosk.jsonl", maxBytes=10_000_000, backupCount=5))
    for h in handlers:
        h.setFormatter(JsonFormatter())
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # APScheduler logs every job run at INFO (four lines a second from the push job);
    # the agent logs what a run did itself, so keep only its warnings and errors.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
