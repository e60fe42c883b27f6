"""``GET /healthz``: for load balancers and scripts, no credential."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from kiosk.errors import KioskError

from . import errors

bp = Blueprint("health", __name__)

#: the endpoints that open no request connection before they run (sync/cloud/app.py)
OWN_CONNECTION = {"health.healthz"}


@bp.get("/healthz")
def healthz():
    """200 after a round trip to the database, 503 when the database does not answer."""
    st = current_app.config["CLOUD_STORAGE"]
    try:
        db = st.acquire()
        try:
            db.execute("SELECT 1").fetchone()
        finally:
            st.release(db)
    except Exception as e:
        err = e if isinstance(e, KioskError) else errors.unavailable(e)
        errors.log_unavailable(err)
        resp = jsonify({"success": False, "status": "unavailable", "error": err.to_dict()})
        resp.status_code = 503
        return resp
    return jsonify({"success": True, "status": "ok"})
