"""The fake OPERA Cloud as the demo hotel's PMS (``scripts/run-demo.sh --pms opera``).

Seeded with the demo kiosk's current stays (arrivals, in-house guests and departures of the
coming days, read from its database), it serves the OHIP APIs on 127.0.0.1, validates every
request against the published specs like the tests' fake does, and says on standard output
what lands: each charge, service request and room status, and any request that broke the
spec.  Its credentials are written to a file for ``kiosk-cloud pms link``.

    python -m tests.fakepms.opera_demo --port 8095 --kiosk-db var/demo/kiosk/kiosk.db \\
        --credentials var/demo/opera-credentials.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sqlite3
import sys
import threading

from kiosk.clock import SystemClock
from tests.fakepms.opera import SPEC_DIR, FakeOpera

HOTEL_CODE = "DEMO"
CREDENTIALS = {"app_key": "41ecd082-8997-4c69-af34-2f72b83645ff", "client_id": "kiosk-client",
               "client_secret": "s3cret", "username": "kiosk", "password": "pw"}
#: the kiosk's reservation status -> OPERA's
TO_OPERA = {"Confirmed": "Reserved", "InHouse": "InHouse", "CheckedOut": "CheckedOut", "Canceled": "Cancelled",
            "NoShow": "NoShow"}


def stays(kiosk_db: str, hotel: str, today: dt.date, days: int = 7) -> list[dict]:
    """The demo kiosk's stays around today (not the bookings history it learns from)."""
    con = sqlite3.connect(f"file:{kiosk_db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT confirmation, guest_name, room_number, arrival, departure, status FROM reservations"
                           " WHERE hotel_id = ? AND confirmation NOT LIKE 'HB-%' AND departure >= ? AND arrival <= ?"
                           " ORDER BY arrival, confirmation",
                           [hotel, (today - dt.timedelta(days=1)).isoformat(),
                            (today + dt.timedelta(days=days)).isoformat()]).fetchall()
    finally:
        con.close()
    return [dict(zip(("confirmation", "guest_name", "room_number", "arrival", "departure", "status"), r, strict=True))
            for r in rows]


class LoudOpera(FakeOpera):
    """The fake, saying what lands."""

    def _say(self, text: str) -> None:
        print(f"[fake OPERA] {text}", flush=True)

    def _op_postBillingCharges(self, op, args):
        before = sum(len(v) for v in self.charges.values())
        out = super()._op_postBillingCharges(op, args)
        for posting in [p for v in self.charges.values() for p in v][before:]:
            self._say(f"charge posted on reservation {args['reservationId']}: {posting['price']['amount']:.2f}"
                      f" {posting['price']['currencyCode']} ({posting['remark']}), reference {posting['reference']}")
        return out

    def _op_postServiceRequests(self, op, args):
        out = super()._op_postServiceRequests(op, args)
        sr = list(self.service_requests.values())[-1]
        self._say(f"service request opened for room {sr.get('room')}: {sr.get('comment')}")
        return out

    def _op_putServiceRequests(self, op, args):
        out = super()._op_putServiceRequests(op, args)
        self._say("service request status changed")
        return out

    def _op_putRoomRelatedStatus(self, op, args):
        out = super()._op_putRoomRelatedStatus(op, args)
        self._say(f"room status: {request_json().get('roomList')} -> {request_json().get('housekeepingRoomStatus')}")
        return out


def request_json() -> dict:
    from flask import request
    return request.get_json(silent=True) or {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8095)
    ap.add_argument("--kiosk-db", required=True, help="the demo kiosk's kiosk.db (read only)")
    ap.add_argument("--hotel", default="demo", help="the kiosk's hotel id")
    ap.add_argument("--credentials", required=True, help="where to write the credentials for `kiosk-cloud pms link`")
    args = ap.parse_args(argv)
    if not SPEC_DIR.is_dir():
        print(f"error: NOT_FOUND: the fake OPERA needs the published specs in {SPEC_DIR}", file=sys.stderr)
        return 1
    fake = LoudOpera(SystemClock(), hotel_id=HOTEL_CODE, **{k: v for k, v in CREDENTIALS.items()})
    today = dt.date.today()
    for i, s in enumerate(stays(args.kiosk_db, args.hotel, today)):
        given, _, surname = (s["guest_name"] or "Guest").rpartition(" ")
        fake.add_reservation(pms_id=str(70001 + i), confirmation=s["confirmation"], given=given or surname,
                             surname=surname, room=s["room_number"], arrival=s["arrival"], departure=s["departure"],
                             status=TO_OPERA.get(s["status"], "Reserved"))
    fd = os.open(args.credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(CREDENTIALS, f)
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # what lands is said above, not every request

    server = make_server("127.0.0.1", args.port, fake.app, threaded=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"[fake OPERA] hotel {HOTEL_CODE} with {len(fake.reservations)} stays on http://127.0.0.1:{args.port}",
          flush=True)
    stop.wait()
    server.shutdown()
    if fake.violations:
        print(f"[fake OPERA] requests that broke the spec: {fake.violations}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
