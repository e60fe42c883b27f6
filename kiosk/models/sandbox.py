"""Models run in worker processes, so a timeout really ends the work and a memory budget holds.

A model thread cannot be stopped: a hostile payload (a WAV at 1 Hz resampled 16,000×, a
compressed 18,000-pixel image) would keep a core and gigabytes after its caller got
TIMEOUT.  Here each run goes to a worker process:

* the workers are forked from a ``forkserver`` that imported the models and their
  libraries once, so a new worker costs a fork (milliseconds), not the imports;
* each worker limits its own address space (``RLIMIT_AS``) to what it had after start-up
  plus ``models.memory_limit_mb``, so an allocation past the budget fails in the worker
  (MemoryError) instead of swapping the kiosk;
* the caller waits on the worker's pipe for the model's timeout; past it the worker is
  SIGKILLed and replaced — the work ends, its actions never arrive;
* at most ``models.workers`` runs at once; a run waiting for a free worker spends its
  own timeout waiting, so a flood costs each request its timeout, never the web server.

The worker only computes: it opens the store, runs the model and sends back the
:class:`~kiosk.models.base.Result` (or the error); the caller applies the actions.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kiosk.models")

#: how much lower the model workers' CPU priority is than the web server's
WORKER_NICENESS = 10

_ctx = None
_ctx_lock = threading.Lock()


def _mp():
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([f"{__package__}.preload"])
            _ctx = ctx
        return _ctx


@dataclass(frozen=True)
class Job:
    model_id: str
    run: Any                      # the model's run function (pickled by reference: module-level)
    payload: dict
    db_path: str
    busy_timeout_ms: int
    hotel_id: str
    now: float
    actor: str | None
    role: str | None
    session_id: str | None
    data_dir: str | None
    tz: str = "UTC"               # the hotel's time zone (property.timezone)


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _worker(conn, memory_limit_bytes: int) -> None:  # pragma: no cover - runs in the worker process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at the terminal stops the kiosk, which stops us
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # models yield the cores to the web server: the lobby answers while speech is decoded
        os.nice(WORKER_NICENESS)
    except OSError:  # pragma: no cover - a syscall filter without setpriority
        pass
    if memory_limit_bytes > 0:
        limit = _address_space() + memory_limit_bytes
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (OSError, ValueError) as e:  # a syscall filter without setrlimit: the unit's MemoryMax still holds
            logging.getLogger("kiosk.models").warning("model worker without a memory limit: %s", e)
    try:  # per-worker state the forkserver cannot hold (voice-ai's Whisper), within the budget just set
        from . import preload

        preload.in_worker()
    except Exception:  # noqa: BLE001  # pragma: no cover - the models still run, loading on first use
        pass
    dbs: dict[str, Any] = {}
    while True:
        try:
            job: Job = conn.recv()
        except (EOFError, OSError):
            return
        out = _run(job, dbs)
        try:
            conn.send(out)
        except MemoryError:
            conn.send(("memory", "the answer did not fit in the model's memory budget"))
            return
        if out[0] == "memory":
            return  # the heap may be fragmented past use: a fresh worker takes over


def _run(job: Job, dbs: dict) -> tuple:
    from .. import store
    from ..errors import KioskError
    from .base import Context

    try:
        db = dbs.get(job.db_path)
        if db is None:
            db = dbs[job.db_path] = store.connect(job.db_path, busy_timeout_ms=job.busy_timeout_ms, migrate=False)
        ctx = Context(db=db, hotel_id=job.hotel_id, now=job.now, actor=job.actor, role=job.role,
                      session_id=job.session_id, data_dir=job.data_dir, tz=job.tz)
        return ("ok", job.run(ctx, job.payload))
    except MemoryError:
        return ("memory", f"{job.model_id} needed more than its memory budget")
    except KioskError as e:
        return ("refused", e.code, e.message, e.details)
    except Exception as e:
        import traceback

        return ("error", type(e).__name__, str(e)[:500], traceback.format_exc()[-4000:])


class _Worker:
    def __init__(self, memory_limit_bytes: int):
        ctx = _mp()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, memory_limit_bytes), name="kiosk-model", daemon=True)
        self.proc.start()
        child.close()

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(5)
        except (OSError, ValueError, AssertionError):
            pass
        self.conn.close()


class Pool:
    """A few model workers, started on demand and replaced when killed."""

    def __init__(self, size: int = 2, memory_limit_mb: int = 768):
        self.size = size
        self.memory_limit_bytes = memory_limit_mb * 1024 * 1024
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self.killed = 0  # workers ended for overrunning (for tests and the log)

    def _take(self) -> tuple[_Worker, bool]:
        """An idle worker, or a new one (True: it was started just now)."""
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.proc.is_alive():
                    return w, False
                w.kill()
        return _Worker(self.memory_limit_bytes), True

    def _give(self, w: _Worker) -> None:
        with self._lock:
            self._idle.append(w)

    def warm(self) -> None:
        """Start one worker now (the forkserver's imports take a second or two)."""
        with self._slots:
            self._give(self._take()[0])

    def run(self, job: Job, timeout: float) -> tuple:
        """("ok", Result) | ("refused", code, message, details) | ("error", kind, message, trace)
        | ("memory", message) | ("timeout",)"""
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=max(0.0, timeout)):
            return ("timeout",)
        try:
            for attempt in (1, 2):
                w, new = self._take()
                if new:  # the model's time starts once its worker exists: the first worker of a process
                    # waits for the forkserver's imports, seconds on a busy box, which are not the model's
                    deadline = max(deadline, time.monotonic() + timeout)
                try:
                    w.conn.send(job)
                except (BrokenPipeError, EOFError, OSError):
                    w.kill()  # died while idle: one more try with a new worker
                    if attempt == 2:
                        return ("error", "WorkerDied", "the model worker could not be started", "")
                    continue
                if not w.conn.poll(max(0.0, deadline - time.monotonic())):
                    w.kill()
                    self.killed += 1
                    return ("timeout",)
                try:
                    out = w.conn.recv()
                except (EOFError, OSError):
                    code = w.proc.exitcode
                    w.kill()
                    return ("memory", f"the model worker ended (exit {code}), most likely past its memory budget")
                if out[0] == "memory":
                    w.kill()
                else:
                    self._give(w)
                return out
            return ("timeout",)  # pragma: no cover
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            for w in self._idle:
                w.kill()
            self._idle.clear()


_pools: dict[tuple[int, int], Pool] = {}
_pools_lock = threading.Lock()


def pool(size: int, memory_limit_mb: int) -> Pool:
    """The process-wide pool for these settings (one per kiosk process in practice)."""
    with _pools_lock:
        p = _pools.get((size, memory_limit_mb))
        if p is None:
            p = _pools[(size, memory_limit_mb)] = Pool(size, memory_limit_mb)
        return p
