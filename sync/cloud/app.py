"""The reference cloud's HTTP API (docs/sync-protocol.md).  Nothing happens at import time.

``POST /sync/v1/push``, ``GET /sync/v1/pull``, ``GET /sync/v1/snapshot``,
``GET /sync/v1/health``, ``GET /healthz`` (no credential: for load balancers) and the central office's ``GET /v1/hotels/<hotel>/tickets``,
``.../work-orders``, ``.../conflicts``, ``.../security-events`` and ``.../fleet``, and
``GET /v1/fleet``.  Every request but ``/healthz``
carries ``Authorization: Bearer <device credential>``.  Errors are
``{"error": {"code", "message", "details"}}``; bad input is never a 500.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from kiosk.clock import SystemClock
from kiosk.errors import KioskError, ValidationError
from kiosk.validation import loads_bounded

from . import (
    changelog,
    devices,
    fleet,
    pushes,
    quota,
    retention,
    snapshot,
    storage,
    tickets,
    validation,
    workorders,
)

log = logging.getLogger("kiosk.cloud")

_HTTP_CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


class Connections:
    """SQLite: one connection to ``cloud.db`` per thread, opened on first use.  PostgreSQL:
    a connection out of the process's pool for each request, given back after it."""

    def __init__(self, st):
        self.storage = st
        self._local = threading.local()

    def get(self):
        if self.storage.dialect == "postgresql":
            return self.storage.acquire()
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.storage.connect()
        return db

    def put(self, db) -> None:
        if self.storage.dialect == "postgresql":
            self.storage.release(db)


def create_app(data_dir: str | Path | None = None, clock=None,
               max_clock_skew: float = validation.MAX_CLOCK_SKEW_SECONDS, *, database: str | None = None,
               fleet_policy: fleet.Policy | None = None, pool_size: int = 16,
               push_quota: quota.Quota | None = None) -> Flask:
    """The cloud app over ``database`` (a PostgreSQL URL) or ``cloud.db`` in ``data_dir``
    (created and migrated here, once).

    ``max_clock_skew``: entries stamped further ahead of the cloud's clock are rejected
    (``HLC_AHEAD``); ``fleet_policy``: when the fleet endpoints flag a device; ``push_quota``:
    how much one device may push per window (429 ``RATE_LIMITED`` beyond it)."""
    st = storage.open_storage(data_dir, database, pool_size=pool_size)
    st.prepare()
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=validation.MAX_BODY_BYTES,
                      CLOUD_DB=Connections(st), CLOUD_STORAGE=st,
                      CLOUD_CLOCK=clock or SystemClock(), CLOUD_MAX_SKEW=max_clock_skew,
                      CLOUD_FLEET=fleet_policy or fleet.Policy(), CLOUD_QUOTA=push_quota or quota.Quota())
    app.json.sort_keys = False
    _install_errors(app)
    _install_routes(app)
    return app


_last_unavailable_log = [0.0]


def _log_unavailable(err: KioskError) -> None:
    """A database that does not answer is logged once a minute, not once per request."""
    if err.code == "DATABASE_UNAVAILABLE" and time.monotonic() - _last_unavailable_log[0] >= 60:
        _last_unavailable_log[0] = time.monotonic()
        log.error("database unavailable", extra={"reason": err.message})


def _unavailable(app: Flask, exc: Exception) -> KioskError:
    st = app.config["CLOUD_STORAGE"]
    if hasattr(st, "unavailable"):
        return st.unavailable(exc)
    return KioskError(f"the database did not answer: {str(exc).splitlines()[0][:300] if str(exc) else exc!r}",
                      {}, code="DATABASE_UNAVAILABLE")


def _error(err: KioskError):
    _log_unavailable(err)
    resp = jsonify({"error": err.to_dict()})
    resp.status_code = err.http_status
    if err.http_status == 401:
        resp.headers["WWW-Authenticate"] = "Bearer"
    if err.http_status == 429 and isinstance(err.details, dict) and "retryAfter" in err.details:
        resp.headers["Retry-After"] = str(err.details["retryAfter"])
    return resp


def _install_errors(app: Flask) -> None:
    app.register_error_handler(KioskError, _error)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = _HTTP_CODES.get(exc.code or 500)
        if code is None:
            return _unexpected(exc)
        resp = _error(KioskError(exc.description or exc.name, {}, code=code))
        if getattr(exc, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.error("unhandled error", exc_info=exc, extra={"path": request.path})
        return _error(KioskError("something went wrong in the cloud; try again later", {}))


def _device() -> devices.Device:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    device = devices.authenticate(g.db, credential.strip()) if scheme.lower() == "bearer" else None
    if device is None:
        log.warning("bad credential", extra={"path": request.path, "client": request.remote_addr})
        raise KioskError("a valid device credential is required (Authorization: Bearer …)", {},
                         code="UNAUTHORIZED")
    return device


def _json_body(data: bytes):
    """The body as JSON; not JSON (or not UTF-8) is a 400.  Lone surrogates (``"\\ud800"``)
    parse; what may hold them is judged where it is used (a push's entries: per entry)."""
    try:
        return loads_bounded(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ValidationError("the request body is not JSON", {"fields": [{"field": "(body)"}]}) from None


_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,200}")


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _install_routes(app: Flask) -> None:
    clock = app.config["CLOUD_CLOCK"]

    @app.before_request
    def _open_db():
        if request.endpoint != "healthz":  # it opens its own, to answer 503 in its own shape
            g.db = app.config["CLOUD_DB"].get()

    @app.get("/healthz")
    def healthz():
        """For load balancers and scripts, no credential: 200 after a round trip to the database,
        503 when the database does not answer."""
        conns = app.config["CLOUD_DB"]
        try:
            db = conns.get()
            try:
                db.execute("SELECT 1").fetchone()
            finally:
                conns.put(db)
        except Exception as e:
            err = e if isinstance(e, KioskError) else _unavailable(app, e)
            _log_unavailable(err)
            resp = jsonify({"success": False, "status": "unavailable", "error": err.to_dict()})
            resp.status_code = 503
            return resp
        return jsonify({"success": True, "status": "ok"})

    @app.teardown_request
    def _close_db(_exc):
        db = g.pop("db", None)
        if db is not None:
            app.config["CLOUD_DB"].put(db)

    @app.post("/sync/v1/push")
    def push():
        started = time.monotonic()
        device = _device()
        data = request.get_data(cache=False)
        device_id, entries = validation.push_body(_json_body(data))
        if device_id != device.device_id:
            raise KioskError(f"deviceId {ascii(device_id)[:80]} is not the device of this credential",
                             {"field": "deviceId"}, code="FORBIDDEN")
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ValidationError("Idempotency-Key must be 1-200 printable ASCII characters",
                                  {"field": "Idempotency-Key"})
        quota.charge(g.db, app.config["CLOUD_QUOTA"], device.device_id, len(entries), len(data), clock.now())
        body, replayed = pushes.respond(g.db, device, entries, clock.now(), key, app.config["CLOUD_MAX_SKEW"])
        counts: dict[str, int] = {}
        for r in body["results"]:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        log.info("push", extra={"deviceId": device.device_id, "entries": len(entries), "replayed": replayed,
                                "counts": counts, "ms": round((time.monotonic() - started) * 1000, 1)})
        _seen(device, "push")
        return jsonify(body)

    def _seen(device: devices.Device, kind: str) -> None:
        """Keep the fleet-health headers of this request (docs/sync-protocol.md); never fails it."""
        try:
            fleet.seen(g.db, device.device_id, fleet.report(request.headers), kind=kind, now=clock.now())
        except Exception:
            log.exception("fleet health not recorded", extra={"deviceId": device.device_id})

    @app.get("/sync/v1/health")
    def health():
        _device()
        return jsonify({"status": "ok", "serverTime": clock.now()})

    def _hotel(hotel_id: str) -> devices.Device:
        device = _device()
        if not device.serves(hotel_id):
            raise KioskError(f"this credential is not for hotel {hotel_id}", {"hotelId": hotel_id},
                             code="FORBIDDEN")
        return device

    @app.get("/sync/v1/pull")
    def pull():
        hotel_id = request.args.get("hotel", "")
        device = _hotel(hotel_id)
        after = validation.ascii_int(request.args.get("after"), "after", 0)
        limit = validation.ascii_int(request.args.get("limit"), "limit", 500)
        if limit < 1:
            raise ValidationError("after must be >= 0 and limit >= 1", {"fields": [{"field": "after"}]})
        body = changelog.page(g.db, hotel_id, after, limit)
        # 410 CURSOR_EXPIRED (re-sync from the snapshot) if changes after `after` were purged;
        # asked after the page, so a purge that commits in between is never passed over
        retention.check_cursor(g.db, hotel_id, after)
        body["serverTime"] = clock.now()
        _seen(device, "pull")
        return jsonify(body)

    @app.get("/sync/v1/snapshot")
    def snapshot_page():
        hotel_id = request.args.get("hotel", "")
        device = _hotel(hotel_id)
        limit = validation.ascii_int(request.args.get("limit"), "limit", 500)
        if limit < 1:
            raise ValidationError("limit must be >= 1", {"fields": [{"field": "limit"}]})
        body = snapshot.page(g.db, hotel_id, request.args.get("page") or None, limit, clock.now())
        body["serverTime"] = clock.now()
        _seen(device, "pull")
        return jsonify(body)

    # fleet health for the central office: a hotel's devices, or those of every hotel the
    # credential serves
    @app.get("/v1/hotels/<hotel_id>/fleet")
    def hotel_fleet(hotel_id: str):
        _hotel(hotel_id)
        return jsonify(fleet.overview(g.db, [hotel_id], app.config["CLOUD_FLEET"], clock.now()))

    @app.get("/v1/fleet")
    def all_fleet():
        device = _device()
        return jsonify(fleet.overview(g.db, list(device.hotels), app.config["CLOUD_FLEET"], clock.now()))

    # the central office's read side: what the cloud holds for a hotel
    for suffix, key, lister in (("tickets", "tickets", tickets.list_for_hotel),
                                ("work-orders", "workOrders", workorders.list_for_hotel),
                                ("conflicts", "conflicts", changelog.conflicts_for_hotel),
                                ("security-events", "securityEvents", changelog.security_events_for_hotel)):
        def read(hotel_id: str, key=key, lister=lister):
            _hotel(hotel_id)
            return jsonify({key: lister(g.db, hotel_id)})
        app.add_url_rule(f"/v1/hotels/<hotel_id>/{suffix}", f"hotel_{key}", read, methods=["GET"])
