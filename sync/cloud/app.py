"""The reference cloud's app factory (docs/sync-protocol.md).  Nothing happens at import time.

The routes are blueprints in sync/cloud/routes/ (one per area: health, the sync
protocol, fleet, the central office's read side); the factory opens the storage
(sync/cloud/storage.py), keeps the app's settings in its config, gives each request a
connection (``g.db``) and wires the blueprints and the error handlers.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, g, request

from kiosk.clock import SystemClock

from . import fleet, quota, routes, storage, validation
from .routes import errors, health


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
    app.config.update(MAX_CONTENT_LENGTH=validation.MAX_BODY_BYTES, CLOUD_STORAGE=st,
                      CLOUD_CLOCK=clock or SystemClock(), CLOUD_MAX_SKEW=max_clock_skew,
                      CLOUD_FLEET=fleet_policy or fleet.Policy(), CLOUD_QUOTA=push_quota or quota.Quota())
    app.json.sort_keys = False
    errors.install(app)
    app.before_request(_open_db)
    app.teardown_request(_close_db)
    routes.register(app)
    return app


def _open_db() -> None:
    """A connection for the request (SQLite: the thread's own; PostgreSQL: one out of the
    pool), before anything else, so a database that does not answer is DATABASE_UNAVAILABLE
    whatever the path; ``/healthz`` opens its own, to answer 503 in its own shape."""
    if request.endpoint not in health.OWN_CONNECTION:
        g.db = current_app.config["CLOUD_STORAGE"].acquire()


def _close_db(_exc) -> None:
    db = g.pop("db", None)
    if db is not None:
        current_app.config["CLOUD_STORAGE"].release(db)
