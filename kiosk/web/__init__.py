"""The kiosk's Flask app factory.  Nothing happens at import time."""

from __future__ import annotations

from flask import Flask

from ..admission import Capacity
from ..config import Config
from ..events import Bus
from ..instance import Instance
from ..scan import ScanService
from . import (
    admin_api,
    admin_screens,
    ai_api,
    csrf,
    guest_api,
    lobby_api,
    ops_api,
    rbac,
    responses,
    scan_api,
    screens,
)
from .screen_binding import Claims


def create_app(config: Config | None = None, *, instance: Instance | None = None) -> Flask:
    """Build the app for one instance (which must be initialised)."""
    inst = instance or Instance(config or Config())
    keys = inst.load_keys()
    inst.connect().conn.close()  # run migrations once, before the first request
    app = Flask(__name__)
    app.config.update(
        KIOSK_INSTANCE=inst,
        KIOSK_KEYS=keys,
        KIOSK_SCAN=ScanService(inst, keys),
        KIOSK_EVENTS=Bus(),
        KIOSK_CLAIMS=Claims(inst.config.screen.claim_seconds),
        KIOSK_CAPACITY=Capacity(inst.config.capacity),
        MAX_CONTENT_LENGTH=inst.config.server.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    responses.install(app)
    rbac.install(app)
    app.register_blueprint(scan_api.bp)
    app.register_blueprint(lobby_api.bp)  # sign in with the booking
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(ops_api.bp)
    app.register_blueprint(guest_api.bp)
    app.register_blueprint(ai_api.bp)
    app.register_blueprint(screens.bp)
    app.register_blueprint(admin_screens.bp)  # the admin dashboard (/admin)
    csrf.install(app)  # after rbac.install: needs the session it found
    return app
