"""The agent daemon: APScheduler jobs for pushing, pulling and housekeeping.

The push job runs every ``poll_interval_seconds``: if new outbox entries
appeared (the highest id moved) or ``push_interval_seconds`` passed, it drains
what is due, a bounded number of batches per run, then tells systemd it is
alive (WATCHDOG=1) — from the loop that does the work, so a stuck push stops
the pings and systemd restarts the agent.  SIGTERM or SIGINT stops the scheduler after
the running job finishes, or after ``STOP_GRACE_SECONDS`` at most.
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
import signal
import threading
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

    def pull_job(self) -> None:
        """Pull the cloud's changes (a page per transaction) until it has no more."""
        try:
            gen = self.link_generation()
            if self._puller is None or self._puller_gen != gen:  # created on the job thread: its connection
                if self._puller_url != self._link_url:  # another cloud: its change log, from its start
                    db = self.instance.db()
                    with store.transaction(db):
                        sync_status.forget(db, "pull_cursor:")
                    log.info("pulling the new cloud's changes from its start", extra={"cloud": self._link_url})
                    self._puller_url = self._link_url
                self._puller = puller_for(self.instance, self.transport)
                self._puller_gen = gen
            r = self._puller.pull(max_pages=MAX_PULL_PAGES_PER_RUN)
            if r.changes or r.error or r.resynced:
                log.info("pulled", extra={"changes": r.changes, "pages": r.pages, "replays": r.replays,
                                          "resynced": r.resynced, "error": r.error})
        except Exception:
            log.exception("pull job failed")

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
        sdnotify.notify("READY=1")
        log.info("agent started", extra={"deviceId": self.device_id})
        while not caught and not self.stop_event.wait(STOP_POLL_SECONDS):
            pass
        sdnotify.notify("STOPPING=1")
        log.info("agent stopping", extra={"signal": signal.Signals(caught[0]).name if caught else None})
        stopper = threading.Thread(target=sched.shutdown, kwargs={"wait": True}, name="agent-stop", daemon=True)
        stopper.start()
        stopper.join(STOP_GRACE_SECONDS)
        if stopper.is_alive():
            log.warning("a job was still running at the stop; it ends with the process (its entries stay"
                        " in the outbox and are sent again)")
            return False
        log.info("agent stopped")
        return True
