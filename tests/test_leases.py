"""A lease held by a process of this host that is gone is taken over at once (a hub or cloud
restarted after kill -9 or a power cut works at once); a live holder's, another host's, or one
whose process id was reused by a live process that started later is judged as it should be."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from kiosk.clock import FakeClock
from sync.cloud import leases, pms_links, storage, upstream

HOLD = "from sync.cloud import leases; import sys, time; print(leases.owner(), flush=True); time.sleep(600)"


@pytest.fixture
def holder():
    """A real process that printed its own lease owner and sleeps; killed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    owner = proc.stdout.readline().strip()
    yield proc, owner
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_running_holder_is_not_gone_and_a_killed_one_is(holder):
    proc, owner = holder
    assert owner.split(":")[:2] == [socket.gethostname(), str(proc.pid)]
    assert not leases.gone(owner)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert leases.gone(owner)


def test_a_reused_process_id_is_gone_and_other_hosts_and_this_process_never_are(holder):
    proc, owner = holder
    host, pid, started, tag = owner.split(":")
    assert not leases.gone(owner)
    assert leases.gone(f"{host}:{pid}:{int(started) - 1}:{tag}")  # the id's process started at another time
    assert not leases.gone(f"elsewhere.example:{pid}:{int(started) - 1}:{tag}")  # another host: never judged
    assert not leases.gone(leases.owner())                       # this process
    assert not leases.gone(f"{host}:{pid}:{tag}")                # an owner without a start time: the id runs
    for junk in (None, "", "x", f"{host}:abc:1:t", f"{host}:1:1:t"):
        assert not leases.gone(junk)


@pytest.fixture
def cloud_db(tmp_path):
    st = storage.open_storage(tmp_path / "cloud")
    st.prepare()
    db = st.connect()
    yield db, tmp_path / "cloud"
    st.close()


def test_the_relays_lease_of_a_killed_hub_is_taken_at_once_a_live_ones_is_not(cloud_db, holder):
    db, root = cloud_db
    clock = FakeClock(1_800_000_000.0)
    proc, dead_owner = holder
    with storage.transaction(db):
        upstream.link(db, root, url="http://chain.example", device_id="hub-1", credential="x", now=clock.now())
        assert upstream.take_lease(db, dead_owner, clock.now())
    me = leases.owner()
    with storage.transaction(db):
        assert not upstream.take_lease(db, me, clock.now() + 1)  # its holder runs: the lease stands
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with storage.transaction(db):
        assert upstream.take_lease(db, me, clock.now() + 1)      # gone: taken long before it runs out
        assert upstream.get(db).lease_owner == me
    with storage.transaction(db):  # and a holder on another host still keeps it until it runs out
        db.execute("UPDATE upstream_link SET lease_owner = 'elsewhere.example:1234:5:ab', lease_until = ?",
                   [clock.now() + 60])
        assert not upstream.take_lease(db, me, clock.now() + 2)
        assert upstream.take_lease(db, me, clock.now() + 61)


def test_a_pms_connectors_lease_of_a_killed_worker_is_taken_at_once(cloud_db, holder):
    db, _ = cloud_db
    clock = FakeClock(1_800_000_000.0)
    proc, dead_owner = holder
    with storage.transaction(db):
        db.execute("INSERT INTO pms_links (hotel_id, kind, url, pms_hotel, charge_code, linked_at, lease_owner,"
                   " lease_until) VALUES ('demo', 'cloudbeds', 'http://pms.example', 'P1', 'KIOSK', ?, ?, ?)",
                   [clock.now(), dead_owner, clock.now() + pms_links.LEASE_SECONDS])
        assert not pms_links.take_lease(db, "demo", leases.owner(), clock.now())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with storage.transaction(db):
        assert pms_links.take_lease(db, "demo", leases.owner(), clock.now())
