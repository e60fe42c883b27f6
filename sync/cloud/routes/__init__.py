"""The reference cloud's HTTP API (docs/sync-protocol.md, docs/cloud-openapi.yaml), one
Flask blueprint per area; sync/cloud/app.py only wires them.

* :mod:`.health` — ``GET /healthz`` (no credential: for load balancers);
* :mod:`.sync_api` — the kiosks' protocol: ``POST /sync/v1/push``, ``GET /sync/v1/pull``,
  ``GET /sync/v1/snapshot``, ``GET /sync/v1/health``;
* :mod:`.claims` — ``POST /sync/v1/claims`` (a kiosk claims a one-time token before using it),
  ``POST /sync/v1/backup-key`` (the hotel's backup key for its kiosks' guest keys);
* :mod:`.fleet` — fleet health: ``GET /v1/hotels/<hotel>/fleet``, ``GET /v1/fleet``;
* :mod:`.hotels` — the central office's read side: ``GET /v1/hotels/<hotel>/tickets``,
  ``.../work-orders``, ``.../conflicts``, ``.../security-events``.

Every request but ``/healthz`` carries ``Authorization: Bearer <device credential>``
(:mod:`.common`).  Errors are ``{"error": {"code", "message", "details"}}``
(:mod:`.errors`); bad input is never a 500.
"""

from __future__ import annotations

from flask import Flask

from . import claims, fleet, health, hotels, sync_api

BLUEPRINTS = (health.bp, sync_api.bp, claims.bp, fleet.bp, hotels.bp)


def register(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
