"""The agent daemon: APScheduler jobs for pushing, pulling and housekeeping.

The push job runs every ``poll_interval_seconds``: if new outbox entries
appeared (the highest id moved) or ``push_interval_seconds`` passed, it drains
what is due, a bounded number of batches per run, then tells systemd it is
alive (WATCHDOG=1) — from the loop that does the work, so a stuck push stops
the pings and systemd restarts the agent.  SIGTERM or SIGINT stops the scheduler after
the running job finishes, or after ``STOP_GRACE_SECONDS`` at most.
Beside the scheduled jobs, a live pull (a thread per hotel, while ``agent.live_pull_wait_seconds``
is above 0) keeps a long-poll open at the cloud (``GET /sync/v1/pull?wait=``) and applies what
it brings at once, so another kiosk's change shows here within a second; the scheduled pull
stays as the fallback.  The two share a lock: the scheduled pull holds it for its run, the live
pull only to apply a page, and only if the cursor is still the one it asked after.  On errors
the live pull backs off; at a stop it applies nothing more and is not waited for while its
request is open (the process ends; the cursor says where to go on).
Each push and pull run first looks whether the link file (``keys/cloud.json``) changed —
``kiosk-agent link`` with a new credential or another cloud — and if so builds its
transport, pusher and puller anew from it (another cloud: the pull starts from its
change log's beginning).
The scheduled models (``agent.scheduled_models``) run daily at their ``HH:MM`` in the
hotel's zone (``property.timezone``; the zone database's summer time, not a fixed offset).
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from kiosk import store, sync_status
from sync.delivery import Pusher

from . import housekeeping, sdnotify
from . import link as link_mod
from .clients import puller_for, transport_for

log = logging.getLogger("agent")

#: how often the main thread looks whether a signal asked it to stop
STOP_POLL_SECONDS = 0.2
#: how long a stop waits for a running job (a push's request can take its whole timeout)
STOP_GRACE_SECONDS = 8.0

MAX_BATCHES_PER_RUN = 20
MAX_PULL_PAGES_PER_RUN = 20
#: how often the agent looks whether the audit chain needs a checkpoint (at most one per
#: kiosk.audit.CHECKPOINT_INTERVAL_SECONDS)
AUDIT_CHECKPOINT_POLL_SECONDS = 60
#: how often the agent looks for a hotel backup key it lacks or guest keys waiting to be unwrapped
GUEST_KEYS_POLL_SECONDS = 60
#: the live pull's pause after an error: backoff_base_seconds, doubled each time, at most this
#: (the scheduled pull goes on meanwhile)
LIVE_BACKOFF_MAX_SECONDS = 30.0
#: its pause after a long-poll the cloud answered at once with nothing (a cloud holding its cap
#: of waiting pulls, or one that does not wait): it asks again a second later, not in a hot loop
LIVE_IDLE_PAUSE_SECONDS = 1.0


class Agent:
    def __init__(self, instance, transport, *, device_id: str):
        self.instance = instance
        self.cfg = instance.config.agent
        self.clock = instance.clock
        self.transport = transport
        self.device_id = device_id
        self._seen_max_id = -1
        self._last_push = 0.0
        self._pusher: Pusher | None = None
        self._puller = None
        self.stop_event = threading.Event()
        # the link (keys/cloud.json) this agent's clients were built from: `kiosk-agent link`
        # run while the agent runs is picked up by the next push or pull, no restart
        self._link_lock = threading.Lock()
        self._link_bytes = self._read_link()
        self._link_url = self._url(self._link_bytes)
        self._link_gen = 0
        self._pusher_gen = self._puller_gen = 0
        self._puller_url = self._link_url
        # the scheduled pull holds it for its run, the live pull to apply a page (sync/pull.py)
        self._pull_lock = threading.Lock()
        self._live_stop = threading.Event()
        self._live_threads: list[threading.Thread] = []

    def _read_link(self) -> bytes | None:
        try:
            return link_mod.path(self.instance.root).read_bytes()
        except OSError:
            return None

    @staticmethod
    def _url(data: bytes | None) -> str | None:
        try:
            return json.loads(data)["url"] if data else None
        except (ValueError, KeyError, TypeError):
            return None

    def link_generation(self) -> int:
        """Re-read the link file; when its contents changed, build a new transport from it.
        Returns the link's generation: a job whose pusher or puller is older builds a new one."""
        with self._link_lock:
            data = self._read_link()
            if data is not None and data != self._link_bytes:
                try:
                    transport, link = transport_for(self.instance)
                except Exception as e:  # half a file, or not JSON: keep the old link, try again next run
                    log.warning("the cloud link changed but cannot be read; keeping the old one",
                                extra={"reason": getattr(e, "message", str(e))[:300]})
                    return self._link_gen
                self.transport, self.device_id = transport, link["deviceId"]
                self._link_bytes, self._link_url = data, link["url"]
                self._link_gen += 1
                log.info("cloud link changed: using the new one", extra={"cloud": link["url"],
                                                                          "deviceId": link["deviceId"]})
            return self._link_gen

    def pusher(self) -> Pusher:
        # created on the job thread: its connection belongs to that thread
        gen = self.link_generation()
        if self._pusher is None or self._pusher_gen != gen:
            self._pusher = Pusher(self.instance.db(), self.transport, device_id=self.device_id,
                                  clock=self.clock, batch_size=self.cfg.batch_size,
                                  backoff_base=self.cfg.backoff_base_seconds,
                                  backoff_max=self.cfg.backoff_max_seconds)
            self._pusher_gen = gen
        return self._pusher

    def push_job(self) -> None:
        try:
            p = self.pusher()
            now = self.clock.now()
            max_id = p.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
            if max_id != self._seen_max_id or now - self._last_push >= self.cfg.push_interval_seconds:
                self._seen_max_id = max_id
                self._last_push = now
                r = p.drain(max_batches=MAX_BATCHES_PER_RUN)
                if r.sent:
                    log.info("pushed", extra={"sent": r.sent, "applied": r.applied, "duplicate": r.duplicate,
                                              "rejected": r.rejected, "retried": r.retried, "error": r.error})
                if r.sent and not r.error:
                    self._seen_max_id = -1  # more may be due: look again on the next run
        except Exception:  # the loop must survive anything; the next run tries again
            log.exception("push job failed")
        sdnotify.notify("WATCHDOG=1")

    def _follow_link(self) -> int:
        """Under the pull lock: the link's generation (:meth:`link_generation`); when it names
        another cloud, the pull cursors are forgotten first (its change log, from its start)."""
        gen = self.link_generation()
        if self._puller_url != self._link_url:
            db = self.instance.db()
            with store.transaction(db):
                sync_status.forget(db, "pull_cursor:")
            log.info("pulling the new cloud's changes from its start", extra={"cloud": self._link_url})
            self._puller_url = self._link_url
        return gen

    def pull_job(self) -> None:
        """Pull the cloud's changes (a page per transaction) until it has no more."""
        try:
            with self._pull_lock:
                gen = self._follow_link()
                if self._puller is None or self._puller_gen != gen:  # created on the job thread: its connection
                    self._puller = puller_for(self.instance, self.transport)
                    self._puller_gen = gen
                r = self._puller.pull(max_pages=MAX_PULL_PAGES_PER_RUN)
            if r.changes or r.error or r.resynced:
                log.info("pulled", extra={"changes": r.changes, "pages": r.pages, "replays": r.replays,
                                          "resynced": r.resynced, "error": r.error})
        except Exception:
            log.exception("pull job failed")

    def start_live_pull(self) -> list[threading.Thread]:
        """The live pull's threads, one per hotel (none when ``live_pull_wait_seconds`` is 0)."""
        if self.cfg.live_pull_wait_seconds > 0 and not self._live_threads:
            for hotel_id in self.instance.config.property.hotels:
                t = threading.Thread(target=self.live_pull_loop, args=(hotel_id,), name=f"live-pull:{hotel_id}",
                                     daemon=True)  # a stop does not wait for its open request
                t.start()
                self._live_threads.append(t)
        return self._live_threads

    def stop_live_pull(self, timeout: float = STOP_GRACE_SECONDS) -> bool:
        """Stop the live pull: it applies nothing after this returns True (False: a page was
        still being applied after ``timeout``).  A thread waiting on its request is left to the
        process's end."""
        self._live_stop.set()
        if not self._pull_lock.acquire(timeout=max(timeout, 0.01)):
            return False
        self._pull_lock.release()  # whoever takes it next sees the stop before applying anything
        for t in self._live_threads:
            t.join(0.05)
        return True

    def live_pull_loop(self, hotel_id: str) -> None:
        """Long-poll the cloud for ``hotel_id`` and apply each answer, until :meth:`stop_live_pull`."""
        wait = self.cfg.live_pull_wait_seconds
        puller, gen, failures = None, -1, 0
        while not self._live_stop.is_set():
            pause = 0.0
            try:
                with self._pull_lock:
                    if self._live_stop.is_set():
                        break
                    current = self._follow_link()
                    if puller is None or gen != current:
                        if puller is not None:
                            puller.db.conn.close()
                        puller, gen = puller_for(self.instance, self.transport), current

                def still(gen=gen) -> bool:  # under the lock, before a page is applied
                    return not self._live_stop.is_set() and gen == self._link_gen and self._puller_url == self._link_url

                started = time.monotonic()
                r = puller.pull(max_pages=MAX_PULL_PAGES_PER_RUN, hotels=[hotel_id], wait=wait,
                                lock=self._pull_lock, guard=still)
                error = r.error or (f"pull refused for hotel {hotel_id}" if r.refused else None)
                if error is None and r.changes:
                    log.info("pulled live", extra={"hotelId": hotel_id, "changes": r.changes, "pages": r.pages,
                                                   "replays": r.replays})
                elif error is None and time.monotonic() - started < wait / 2:
                    pause = LIVE_IDLE_PAUSE_SECONDS  # answered at once with nothing: not a hot loop
            except Exception as e:
                error = f"{type(e).__name__}: {e}"[:300]
                log.exception("live pull failed", extra={"hotelId": hotel_id})
            if error is not None:
                failures += 1
                if failures == 1:
                    log.warning("live pull: no answer from the cloud; backing off (the scheduled pull goes on)",
                                extra={"hotelId": hotel_id, "error": error})
                pause = min(LIVE_BACKOFF_MAX_SECONDS, self.cfg.backoff_base_seconds * 2 ** min(failures - 1, 16))
                pause *= random.uniform(0.5, 1.0)  # kiosks that lost the cloud together come back spread out
            elif failures:
                log.info("live pull: the cloud answers again", extra={"hotelId": hotel_id, "after": failures})
                failures = 0
            if pause:
                self._live_stop.wait(pause)
        if puller is not None:
            puller.db.conn.close()

    def model_job(self, model_id: str) -> list[dict]:
        """Run a scheduled model for every hotel (its actions are applied and queued)."""
        from kiosk.models import runner

        out = []
        for hotel in self.instance.config.property.hotels:
            try:
                r = runner.run(self.instance, model_id, {}, hotel_id=hotel, actor="agent")
                out.append(r)
                log.info("scheduled model", extra={"modelId": model_id, "hotelId": hotel, "status": r["status"],
                                                   "ms": r["executionTimeMs"], "actions": len(r["actionsTriggered"])})
            except Exception:
                log.exception("scheduled model failed", extra={"modelId": model_id, "hotelId": hotel})
        return out

    def housekeeping_job(self) -> None:
        try:
            result = housekeeping.run_all(self.instance.db(), now=self.clock.now(),
                                          node=self.instance.config.property.kiosk_id,
                                          retention_days=self.cfg.delivered_retention_days)
            log.info("housekeeping", extra=result)
        except Exception:
            log.exception("housekeeping failed")

    def audit_checkpoint_job(self) -> None:
        """Sign a checkpoint of the audit chain and queue it, when the chain changed and the last
        one is old enough (kiosk/audit.py; docs/audit-log.md)."""
        from kiosk import audit

        try:
            prop = self.instance.config.property
            audit.checkpoint(self.instance.db(), self.instance.load_keys().signing_key, kiosk_id=prop.kiosk_id,
                             hotels=list(prop.hotels), now=self.clock.now())
        except Exception:
            log.exception("audit checkpoint failed")

    def guest_keys_job(self) -> None:
        """The hotels' backup keys from the upstream, and a restored backup's guest keys unwrapped
        (sync/key_escrow.py)."""
        from sync import key_escrow

        try:
            self.link_generation()
            if self.transport is not None:
                key_escrow.refresh(self.instance.db(), self.transport, list(self.instance.config.property.hotels))
        except Exception:
            log.exception("guest keys failed")

    def scheduler(self) -> BackgroundScheduler:
        """The scheduler with every job added, not started (a model no registry knows: ConfigError)."""
        sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(3)},
                                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        start = datetime.now(UTC)  # both jobs run at once, then on their interval
        sched.add_job(self.push_job, "interval", seconds=self.cfg.poll_interval_seconds, id="push",
                      next_run_time=start)
        sched.add_job(self.pull_job, "interval", seconds=self.cfg.pull_interval_seconds, id="pull",
                      next_run_time=start)
        sched.add_job(self.housekeeping_job, "interval", seconds=self.cfg.housekeeping_interval_seconds,
                      id="housekeeping", next_run_time=start)
        sched.add_job(self.audit_checkpoint_job, "interval", seconds=AUDIT_CHECKPOINT_POLL_SECONDS,
                      id="audit-checkpoint", next_run_time=start)
        sched.add_job(self.guest_keys_job, "interval", seconds=GUEST_KEYS_POLL_SECONDS, id="guest-keys",
                      next_run_time=start)
        from kiosk.errors import ConfigError
        from kiosk.models import registry

        zone = ZoneInfo(self.instance.config.property.timezone)  # validated when the config loaded
        for entry in self.cfg.scheduled_models:
            hhmm, model_id = entry.split(" ", 1)
            if registry.get(model_id) is None:
                raise ConfigError(f"agent.scheduled_models: no model {model_id!r}", {"key": "agent.scheduled_models"})
            sched.add_job(self.model_job, "cron", hour=int(hhmm[:2]), minute=int(hhmm[3:]), timezone=zone,
                          args=[model_id], id=f"model:{model_id}:{hhmm}")
        return sched

    def run(self) -> bool:
        """Run until SIGTERM or SIGINT (any mix, any number); False when a job was still running
        after :data:`STOP_GRACE_SECONDS` (the caller then ends the process: the job's work is in
        the outbox and is sent again, nothing is lost).

        The signal handlers only record the signal.  Setting an Event from a handler could
        deadlock: the handler runs in the main thread, perhaps while that thread holds the
        Event's own lock inside ``wait()``.
        """
        sched = self.scheduler()
        caught: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: caught.append(signum))
        sched.start()
        self.start_live_pull()
        sdnotify.notify("READY=1")
        log.info("agent started", extra={"deviceId": self.device_id})
        while not caught and not self.stop_event.wait(STOP_POLL_SECONDS):
            pass
        sdnotify.notify("STOPPING=1")
        log.info("agent stopping", extra={"signal": signal.Signals(caught[0]).name if caught else None})
        self._live_stop.set()  # the live pull applies nothing more; its open request is not waited for
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        stopper = threading.Thread(target=sched.shutdown, kwargs={"wait": True}, name="agent-stop", daemon=True)
        stopper.start()
        stopper.join(STOP_GRACE_SECONDS)
        if stopper.is_alive() or not self.stop_live_pull(deadline - time.monotonic()):
            log.warning("a job was still running at the stop; it ends with the process (its entries stay"
                        " in the outbox and are sent again)")
            return False
        log.info("agent stopped")
        return True
