"""The registry of sync kinds (sync/kinds): every kind declared once, and a new kind added
by a test — its own module (this one) and the registry, nothing else — goes up from one
kiosk to the cloud (validated and applied by the registry), down to another kiosk by pull,
and into a fresh kiosk by the cloud's snapshot."""

from __future__ import annotations

import json

import pytest
from replicas import HOTEL, Cloud, Site

from kiosk import outbox, store
from kiosk.clock import FakeClock
from sync import kinds
from sync.cloud import changelog
from sync.reference import BY_ENTITY

# --- the new kind: a guest's lost item reported at one kiosk, shown at every kiosk ---------------

KIOSK_TABLE = ("CREATE TABLE IF NOT EXISTS lost_items (hotel_id TEXT NOT NULL, item_id TEXT NOT NULL,"
               " what TEXT NOT NULL, PRIMARY KEY (hotel_id, item_id))")


def cloud_apply(db, e, now):
    """The cloud's side: check the payload, then log the change for the hotel's kiosks."""
    from sync.cloud.results import Rejected

    what = e.payload.get("what")
    if not isinstance(what, str) or not what:
        raise Rejected("INVALID_ENTRY", "payload.what: a lost item needs its description")
    changelog.record(db, hotel_id=e.hotelId, entity_type="lost_item", entity_id=e.entityId, data={"what": what},
                     hlc_stamp=e.hlc, now=now)


def kiosk_apply(ctx, hotel_id, ch):
    ctx.db.execute(KIOSK_TABLE)
    ctx.db.execute("INSERT OR REPLACE INTO lost_items (hotel_id, item_id, what) VALUES (?, ?, ?)",
                   [hotel_id, ch["entityId"], ch["data"]["what"]])


def hub_apply(db, hotel_id, ch, now):
    """A hub's side: the change the chain's cloud sent, logged for the hub's kiosks."""
    changelog.record(db, hotel_id=hotel_id, entity_type="lost_item", entity_id=ch["entityId"], data=ch["data"],
                     hlc_stamp=ch.get("hlc") or "", now=now)


def snapshot_rows(db, hotel_id, after, n, now):
    rows = db.execute("SELECT seq, entity_id, data, hlc FROM changes WHERE hotel_id = ? AND entity_type = 'lost_item'"
                      " AND seq > ? ORDER BY seq LIMIT ?", [hotel_id, int(after[0]) if after else 0, n]).fetchall()
    out = [((r[0],), {"entityType": "lost_item", "entityId": r[1], "op": "upsert", "data": json.loads(r[2]),
                      "hlc": r[3]}) for r in rows]
    return out, [str(rows[-1][0])] if rows else None, len(rows) < n


LOST_ITEM = kinds.Kind("lost_item", "lost items reported by guests (both ways)", push_entity="lost_item",
                       push=(kinds.Push("lost_item.reported", f"{__name__}:cloud_apply"),),
                       pull_entities=("lost_item",), pull=kiosk_apply,
                       snapshot=(("lost_item", f"{__name__}:snapshot_rows"),),
                       relay=f"{__name__}:hub_apply")


@pytest.fixture
def lost_item_kind():
    kinds.register(LOST_ITEM)
    yield LOST_ITEM
    kinds.unregister("lost_item")


@pytest.fixture
def cloud(tmp_path):
    return Cloud(tmp_path, FakeClock(1_780_000_000.0))


def report(site: Site, item_id: str, what) -> None:
    with store.transaction(site.db):
        outbox.enqueue(site.db, hotel_id=HOTEL, kind="lost_item.reported", entity_type="lost_item", entity_id=item_id,
                       payload={"what": what}, node=site.name, now=site.clock.now())


def lost_items(site: Site) -> dict[str, str]:
    site.db.execute(KIOSK_TABLE)
    return dict(site.db.execute("SELECT item_id, what FROM lost_items").fetchall())


def test_a_kind_added_in_a_test_goes_up_and_down(tmp_path, cloud, lost_item_kind):
    a, b = Site(tmp_path, "k-a", cloud), Site(tmp_path, "k-b", cloud)
    report(a, "L-1", "a blue umbrella")
    report(a, "L-2", "")  # refused by the kind's cloud side: a dead letter, nothing logged
    assert a.sync()["error"] is None
    assert b.sync()["error"] is None
    assert lost_items(b) == {"L-1": "a blue umbrella"}
    dead = a.db.execute("SELECT entity_id, last_error FROM outbox WHERE state = 'dead'").fetchall()
    assert [d[0] for d in dead] == ["L-2"] and "INVALID_ENTRY" in dead[0][1]

    fresh = Site(tmp_path, "k-fresh", cloud)  # a kiosk re-synced from the snapshot gets it too
    r = fresh.puller.resync(HOTEL)
    assert r.changes >= 1 and lost_items(fresh) == {"L-1": "a blue umbrella"}


def test_without_the_kind_the_cloud_refuses_the_entry_as_unknown(tmp_path, cloud):
    a = Site(tmp_path, "k-a", cloud)
    report(a, "L-1", "a blue umbrella")
    a.sync()
    row = a.db.execute("SELECT state, last_error FROM outbox WHERE entity_id = 'L-1'").fetchone()
    assert row[0] == "dead" and "UNKNOWN_KIND" in row[1]


def test_the_registry_declares_each_kind_once_and_whole():
    declared = kinds.kinds()
    assert [k.name for k in declared] == list(kinds.MODULES)
    entries = kinds.entry_kinds()
    assert {"work_order.created", "work_order.updated", "ticket.created", "ticket.updated", "token.issued",
            "token.used", "token.revoked", "session.opened", "session.ended", "task.created", "message.send",
            "pms.update", "audit.checkpoint", "guest.erase_requested"} == set(entries)
    for k in declared:
        for p in k.push:
            assert callable(kinds.resolve(p.cloud)), p
        for _, target in k.snapshot:
            assert callable(kinds.resolve(target)), target
        assert (k.pull is None) == (not k.pull_entities), k.name
    pulled = {e for k in declared for e in k.pull_entities}
    assert set(BY_ENTITY) <= pulled
    # the snapshot serves its sections in the order page tokens were numbered by before the registry
    assert [s for s, _ in kinds.snapshot_sections()] == [
        "trust_key", "reference", "work_order", "ticket", "token_revocation", "token_consumption", "conflict",
        "security_event", "guest_erasure"]


def test_a_kind_cannot_claim_what_another_declares():
    with pytest.raises(ValueError, match="claims"):
        kinds.register(kinds.Kind("twin", "a second ticket", push_entity="ticket",
                                  push=(kinds.Push("ticket.created", "sync.cloud.tickets:create"),)))
    with pytest.raises(ValueError, match="declared twice"):
        kinds.register(kinds.Kind("ticket", "again"))
    with pytest.raises(ValueError, match="no relay function"):
        kinds.register(kinds.Kind("hubless", "sent down, but a hub could not pass it on",
                                  pull_entities=("hubless",), pull=kiosk_apply))
    assert kinds.get("ticket").push[0].cloud == "sync.cloud.tickets:create"


def test_the_kiosk_side_loads_no_cloud_code():
    """Pulling with the registry imports no sync.cloud module: the agent stays a kiosk program."""
    import subprocess
    import sys

    code = ("import sys; from sync import kinds, pull; kinds.kinds(); "
            "print(sorted(m for m in sys.modules if m.startswith('sync.cloud')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
