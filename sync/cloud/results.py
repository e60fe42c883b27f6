"""The four per-entry results of a push (docs/sync-protocol.md, "Push")."""

from __future__ import annotations


class Rejected(Exception):
    """A permanent refusal of one entry; ``reason`` is ``CODE: text``."""

    def __init__(self, code: str, text: str):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.reason = f"{code}: {text}"[:500]


def applied(key: str, conflicts: list[dict] | None = None) -> dict:
    """Applied; ``conflicts`` lists what the cloud resolved (docs/conflicts.md), if anything."""
    out = {"key": key, "status": "applied"}
    if conflicts:
        out["conflicts"] = conflicts
    return out


def duplicate(key: str, original: dict) -> dict:
    return {"key": key, "status": "duplicate", "original": original}


def rejected(key: str, reason: str) -> dict:
    return {"key": key, "status": "rejected", "reason": reason}


def retry(key: str, reason: str) -> dict:
    return {"key": key, "status": "retry", "reason": reason}
