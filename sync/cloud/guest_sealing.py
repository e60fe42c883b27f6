"""Guests' fields an earlier version of the cloud stored in clear, sealed under their keys
(docs/privacy.md, "A key per guest at the cloud and the hub"): run by ``kiosk-cloud purge`` and
by ``serve``'s periodic purge, each table through its owner, a batch per transaction.

Reservations (``ref_data``) and their changes, and guests' requests (``tickets``: a creator with
a key here) are sealed; event payloads and the PMS outbox from before are not (an old entry
names no guest, docs/privacy.md), and neither are copies a PostgreSQL base backup or an older
``cloud.db`` backup already holds (they age out with those backups).
"""

from __future__ import annotations

import logging
import threading

from . import changelog, guest_vault, refdata, storage, tickets

BATCH = 500
log = logging.getLogger("kiosk.cloud")


def run(db, now: float | None = None, *, batch: int = BATCH) -> dict[str, int]:
    """Seal what is still in clear; returns the rows sealed, by table (nothing to do without a
    vault)."""
    out = {"reservations": 0, "changes": 0, "requests": 0}
    if guest_vault.of(db) is None:
        return out
    for name, step, start in (("reservations", refdata.seal_existing, ("", "")),
                              ("changes", changelog.seal_existing, ("", -1)),
                              ("requests", tickets.seal_existing, ("", ""))):
        after = start
        while after is not None:
            with storage.secure_delete(db), storage.transaction(db):
                n, after = step(db, after, batch)
            out[name] += n
    if any(out.values()):
        storage.checkpoint(db)
    return out


def start(connect) -> threading.Thread:
    """``serve``'s pass at start (an upgraded cloud seals its old rows once, in the background,
    serving meanwhile): a daemon thread on a connection of its own; its counts or its failure
    are logged."""
    def work():
        try:
            db = connect()
            sealed = run(db)
            if any(sealed.values()):
                log.info("sealed guests' fields stored in clear by an earlier version", extra=sealed)
        except Exception:
            log.exception("sealing guests' fields stored in clear failed (kiosk-cloud purge tries again)")

    t = threading.Thread(target=work, name="guest-sealing", daemon=True)
    t.start()
    return t
