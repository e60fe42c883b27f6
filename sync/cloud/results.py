"""The four per-entry results of a push (docs/sync-protocol.md, "Push")."""

from __future__ import annotations


class Rejected(Exception):
    """A permanent refusal of one entry; ``reason`` is ``CODE: text``.

    ``after_rollback(reason)``, if given, is called once the entry's own writes were rolled
    back, in the push's transaction: what a refusal must keep (evidence of a rewritten audit
    log, a security event) is written there and outlives the refused entry."""

    def __init__(self, code: str, text: str, after_rollback=None):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.reason = f"{code}: {text}"[:500]
        self.after_rollback = after_rollback


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
