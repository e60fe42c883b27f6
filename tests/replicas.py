"""In-process replicas for the sync-down tests: several kiosks (each its own SQLite
file, keys and clock) and one reference-cloud database, joined by the real push
and pull code over an in-memory transport that can be cut (a partition).

tests/test_sync_down_integration.py runs the same scenarios with real processes
over HTTP; this module is for the rules and for many seeded random runs.
"""

from __future__ import annotations

import json
import random

from kiosk import config as config_mod
from kiosk import tickets, workorders
from kiosk.clock import FakeClock
from kiosk.instance import Instance
from kiosk.scan import ScanService
from sync import delivery, pull
from sync.cloud import db as cloud_db
from sync.cloud import keys as cloud_keys
from sync.cloud.devices import Device
from sync.transport import InMemoryTransport

HOTEL = "demo"
WO_FIELDS = ("status", "assignee", "priority", "notes", "description")


def work_orders_of(db) -> dict[str, dict]:
    return {r["work_order_id"]: {f: r[f] for f in WO_FIELDS}
            for r in db.query("SELECT * FROM work_orders WHERE hotel_id = ?", [HOTEL])}


def tickets_of(db) -> dict[str, str | None]:
    return {r[0]: r[1] for r in db.execute("SELECT ticket_id, merged_into FROM tickets WHERE hotel_id = ?", [HOTEL])}


class Cloud:
    def __init__(self, root, clock: FakeClock):
        self.clock = clock
        self.db = cloud_db.connect(root / "cloud.db")

    def key(self) -> dict:
        return cloud_keys.create(self.db, [HOTEL], self.clock.now())

    def token(self, role="guest", *, reusable=False, user=None) -> str:
        return cloud_keys.sign(self.db, hotel_id=HOTEL, role=role, now=self.clock.now(), ttl_seconds=86400,
                               reusable=reusable, user_id=user)

    def work_orders(self) -> dict[str, dict]:
        return work_orders_of(self.db)

    def tickets(self) -> dict[str, str | None]:
        return tickets_of(self.db)


class Site:
    """One kiosk: its instance, its clock (possibly skewed) and its link to the cloud."""

    def __init__(self, root, name: str, cloud: Cloud, *, skew: float = 0.0):
        self.name, self.cloud, self.skew = name, cloud, skew
        self.clock = FakeClock(cloud.clock.now() + skew)
        cfg = config_mod.load(None, env={}, overrides={
            "data_dir": str(root / name), "property": {"hotels": [HOTEL], "issuer": HOTEL, "kiosk_id": name}})
        self.inst = Instance(cfg, clock=self.clock)
        self.inst.init()
        # sites run up to two hours off: the cloud accepts that much skew here (its default is 1 h)
        self.transport = InMemoryTransport(cloud.db, Device(name, (HOTEL,)), cloud.clock, max_skew=3 * 3600)
        self.reopen()

    def reopen(self) -> None:
        """A restart: new connections, new pusher and puller (state is only what is on disk)."""
        self.db = self.inst.connect()
        self.pusher = delivery.Pusher(self.db, self.transport, device_id=self.name, clock=self.clock,
                                      backoff_base=0.001, backoff_max=0.001, rng=random.Random(0))
        self.puller = pull.Puller(self.db, self.transport, hotels=[HOTEL], node=self.name, clock=self.clock,
                                  trust_path=self.inst.trust_path, page_size=50)

    def tick(self, seconds: float) -> None:
        self.clock.t = self.cloud.clock.now() + self.skew + seconds

    @property
    def online(self) -> bool:
        return not self.transport.down

    @online.setter
    def online(self, value: bool) -> None:
        self.transport.down = not value

    def sync(self) -> dict:
        # time passes between syncs (past the test backoff of 1 ms); the clock never goes back
        self.clock.t = max(self.clock.t, self.cloud.clock.now() + self.skew) + 0.01
        pushed = self.pusher.drain()
        if pushed.error:
            return {"error": pushed.error}
        pulled = self.puller.pull()
        return {"error": pulled.error, "conflicts": pushed.conflicts, "pulled": pulled.changes,
                "replays": pulled.replays}

    # --- actions ------------------------------------------------------------------------
    def create_wo(self, wo_id: str, **kw) -> dict:
        return workorders.create(self.db, hotel_id=HOTEL, work_order_id=wo_id, by=f"staff@{self.name}",
                                 now=self.clock.now(), node=self.name, **kw)

    def edit_wo(self, wo_id: str, **changes) -> dict:
        self.clock.advance(0.001)
        return workorders.update(self.db, {"workOrderId": wo_id, "changes": changes}, hotel_id=HOTEL,
                                 by=f"staff@{self.name}", now=self.clock.now(), node=self.name)

    def ticket(self, title: str, room: str = "101", type_: str = "maintenance") -> dict:
        return tickets.create(self.db, {"type": type_, "title": title, "roomNumber": room}, hotel_id=HOTEL,
                              by=f"staff@{self.name}", now=self.clock.now(), node=self.name, window=3600)

    def scan(self, token: str) -> dict:
        svc = ScanService(self.inst, self.inst.load_keys())
        return svc.scan(self.db, {"qrToken": token, "hotelId": HOTEL}, client=f"test-{self.name}")

    # --- what the replica holds ---------------------------------------------------------
    def work_orders(self) -> dict[str, dict]:
        return work_orders_of(self.db)

    def tickets(self) -> dict[str, str | None]:
        return tickets_of(self.db)

    def conflicts(self) -> list[dict]:
        return [dict(r) | {"local_version": json.loads(r["local_version"] or "null")}
                for r in self.db.query("SELECT * FROM conflicts WHERE hotel_id = ? ORDER BY id", [HOTEL])]

    def security_events(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM security_events WHERE hotel_id = ? ORDER BY id", [HOTEL]))

    def session_ended(self, session_id: str) -> str | None:
        row = self.db.execute("SELECT end_reason FROM sessions WHERE id = ?", [session_id]).fetchone()
        return row[0] if row else "missing"

    def pending(self) -> int:
        return self.db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
