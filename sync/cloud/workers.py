"""Several worker processes behind one port, for a cloud on PostgreSQL.

gunicorn's pre-fork model: one arbiter binds the port and keeps ``workers`` processes
alive (a worker that dies is replaced); each worker builds its own app — its own
connection pool — after the fork, so nothing is shared but the database.  Workers are
stateless: the same command on more machines behind a load balancer scales out the same
way (docs/deployment.md).
"""

from __future__ import annotations

from pathlib import Path

from gunicorn.app.base import BaseApplication


class _CloudApp(BaseApplication):
    def __init__(self, options: dict, factory):
        self.options, self.factory = options, factory
        super().__init__()

    def load_config(self):
        for k, v in self.options.items():
            self.cfg.set(k, v)

    def load(self):
        return self.factory()


def serve_workers(*, host: str, port: int, workers: int, threads: int, database: str, data_dir: Path,
                  max_clock_skew: float, log_level: str, fleet_policy=None, push_quota=None,
                  pms_poll: float = 60.0) -> None:
    def factory():
        from kiosk.clock import SystemClock

        from . import planner_stats
        from .app import create_app
        from .pms_delivery import PmsRunner

        app = create_app(data_dir, max_clock_skew=max_clock_skew, database=database, fleet_policy=fleet_policy,
                         pool_size=threads, push_quota=push_quota)
        # every worker runs the PMS connectors; the lease in the database lets one per hotel send
        import atexit

        from .relay import Relay

        runner = PmsRunner(app.config["CLOUD_STORAGE"], data_dir, SystemClock(), poll=pms_poll)
        relay = Relay(app.config["CLOUD_STORAGE"], data_dir, SystemClock())  # a hub: one worker relays (a lease)
        runner.start()
        relay.start()
        planner_stats.Keeper(app.config["CLOUD_STORAGE"], SystemClock()).start()  # one at a time: a lock
        atexit.register(runner.stop)  # a worker's leases given up as it exits
        atexit.register(relay.stop)
        from kiosk.cliutil import tune_gc

        tune_gc()  # each worker's start-up objects out of the collector's way (kiosk.cliutil)
        return app

    _CloudApp({"bind": f"{host}:{port}", "workers": workers, "threads": threads, "worker_class": "gthread",
               "preload_app": False, "loglevel": log_level.lower(), "accesslog": None, "graceful_timeout": 10,
               # an idle keep-alive connection stays open 75 s (gunicorn's default is 2 s: a kiosk
               # pushing every few seconds met a connection the server had just closed, and the
               # push failed with "remote end closed connection"; bench/cloud.py saw it)
               "keepalive": 75, "timeout": 60, "proc_name": "kiosk-cloud"}, factory).run()
