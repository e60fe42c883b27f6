"""The kiosks' sync protocol (docs/sync-protocol.md): push, pull, snapshot, health."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time

from flask import Blueprint, current_app, g, jsonify, request

from kiosk.errors import KioskError, ValidationError
from sync import kinds

from .. import changelog, pushes, quota, retention, snapshot, storage, validation
from .common import device, hotel, json_body, now, seen

log = logging.getLogger("kiosk.cloud")

bp = Blueprint("sync", __name__, url_prefix="/sync/v1")

_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,200}")


@bp.post("/push")
def push():
    started = time.monotonic()
    dev = device()
    data = request.get_data(cache=False)
    device_id, entries = validation.push_body(json_body(data))
    if device_id != dev.device_id:
        raise KioskError(f"deviceId {ascii(device_id)[:80]} is not the device of this credential",
                         {"field": "deviceId"}, code="FORBIDDEN")
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationError("Idempotency-Key must be 1-200 printable ASCII characters",
                              {"field": "Idempotency-Key"})
    quota.charge(g.db, current_app.config["CLOUD_QUOTA"], dev.device_id, len(entries), len(data), now())
    erasing = kinds.erasing_push(entries)
    with storage.secure_delete(g.db) if erasing else contextlib.nullcontext():
        body, replayed = pushes.respond(g.db, dev, entries, now(), key, current_app.config["CLOUD_MAX_SKEW"])
    if erasing:
        storage.checkpoint(g.db)  # an erased guest's old bytes leave the WAL too
    counts: dict[str, int] = {}
    for r in body["results"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    log.info("push", extra={"deviceId": dev.device_id, "entries": len(entries), "replayed": replayed,
                            "counts": counts, "ms": round((time.monotonic() - started) * 1000, 1)})
    seen(dev, "push")
    return jsonify(body)


@bp.get("/health")
def health():
    device()
    return jsonify({"status": "ok", "serverTime": now()})


#: the longest a pull may wait for a change (``wait=``, seconds); a proxy's idle timeout of
#: 30 s or more lets a waiting pull through
MAX_WAIT_SECONDS = 25
#: how often a waiting pull asks the database for the hotel's newest change (a fresh short
#: read each time: works across worker processes and machines, holds no connection between)
WAIT_POLL_SECONDS = 0.1
#: waiting pulls a process holds at once, when neither ``CLOUD_MAX_WAITING_PULLS`` (the app's
#: config) nor ``$KIOSK_CLOUD_MAX_WAITING_PULLS`` says: half the server's threads (the
#: PostgreSQL pool is one connection per thread; SQLite: half of ``serve``'s default 8), so
#: long-polls never take the threads pushes need.  Past it a pull is answered as with wait=0.
DEFAULT_SERVER_THREADS = 8
MAX_WAITING_PULLS_ENV = "KIOSK_CLOUD_MAX_WAITING_PULLS"

_slots_lock = threading.Lock()


def waiting_slots(app) -> threading.BoundedSemaphore:
    """The app's (so the process's) semaphore of waiting pulls, made on first use."""
    with _slots_lock:
        sem = app.extensions.get("sync.waiting_pulls")
        if sem is None:
            sem = app.extensions["sync.waiting_pulls"] = threading.BoundedSemaphore(max_waiting_pulls(app))
        return sem


def max_waiting_pulls(app) -> int:
    """How many pulls of this process may wait at once (module constants above)."""
    value = app.config.get("CLOUD_MAX_WAITING_PULLS")
    if value is None:
        raw = os.environ.get(MAX_WAITING_PULLS_ENV, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                log.warning(f"${MAX_WAITING_PULLS_ENV} is not a whole number; using the default",
                            extra={"value": raw[:40]})
    if value is None:
        threads = getattr(app.config["CLOUD_STORAGE"], "max_size", None) or DEFAULT_SERVER_THREADS
        value = threads // 2
    return max(0, int(value))


def _server_stopping() -> bool:
    """The server is shutting down (waitress closed its listening socket at SIGTERM): a
    waiting pull answers at once rather than hold the stop up.  Unknown servers: never."""
    check = request.environ.get("waitress.client_disconnected")
    server = getattr(getattr(check, "__self__", None), "server", None)
    try:
        return bool(check()) or (server is not None and not server.accepting)
    except Exception:
        return False


def _wait_for_change(hotel_id: str, after: int, wait: int) -> None:
    """Until the hotel has a change after ``after``, ``wait`` seconds pass or the server stops;
    at once if this process already holds its cap of waiting pulls.

    The request's connection (``g.db``) goes back to the storage while waiting; each look at
    the log takes one for a single short read and gives it back (PostgreSQL: out of the pool,
    sized one per thread; SQLite: the thread's own), and ``g.db`` is taken again at the end."""
    slots = waiting_slots(current_app)
    if not slots.acquire(blocking=False):
        log.debug("pull not waiting: the cap of waiting pulls is reached", extra={"hotelId": hotel_id})
        return
    st = current_app.config["CLOUD_STORAGE"]
    try:
        if changelog.head(g.db, hotel_id) > after:
            return
        st.release(g.pop("db"))
        deadline = time.monotonic() + wait
        while not _server_stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(WAIT_POLL_SECONDS, left))
            d = st.acquire()
            try:
                newest = changelog.head(d, hotel_id)
            finally:
                st.release(d)
            if newest > after:
                break
        g.db = st.acquire()
    finally:
        slots.release()


@bp.get("/pull")
def pull():
    hotel_id = request.args.get("hotel", "")
    dev = hotel(hotel_id)
    after = validation.ascii_int(request.args.get("after"), "after", 0)
    limit = validation.ascii_int(request.args.get("limit"), "limit", 500)
    if limit < 1:
        raise ValidationError("after must be >= 0 and limit >= 1", {"fields": [{"field": "after"}]})
    wait = validation.ascii_int(request.args.get("wait"), "wait", 0)
    if wait > MAX_WAIT_SECONDS:
        raise ValidationError(f"wait must be 0-{MAX_WAIT_SECONDS} seconds (ASCII digits)",
                              {"fields": [{"field": "wait"}]})
    if wait:
        # an expired cursor is answered at once (410), not after the wait
        retention.check_cursor(g.db, hotel_id, after)
        _wait_for_change(hotel_id, after, wait)
    body = changelog.page(g.db, hotel_id, after, limit)
    # 410 CURSOR_EXPIRED (re-sync from the snapshot) if changes after `after` were purged;
    # asked after the page, so a purge that commits in between is never passed over
    retention.check_cursor(g.db, hotel_id, after)
    body["serverTime"] = now()
    seen(dev, "pull")
    return jsonify(body)


@bp.get("/snapshot")
def snapshot_page():
    hotel_id = request.args.get("hotel", "")
    dev = hotel(hotel_id)
    limit = validation.ascii_int(request.args.get("limit"), "limit", 500)
    if limit < 1:
        raise ValidationError("limit must be >= 1", {"fields": [{"field": "limit"}]})
    body = snapshot.page(g.db, hotel_id, request.args.get("page") or None, limit, now())
    body["serverTime"] = now()
    seen(dev, "pull")
    return jsonify(body)
