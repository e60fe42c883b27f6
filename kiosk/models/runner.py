"""Run a model: its timeout, its actions, its log line, and the one result shape.

``{"modelId", "status": SUCCESS|ERROR|TIMEOUT, "executionTimeMs", "confidence",
"findings"|"outputs", "actionsTriggered": [...], "error"?}``

A model runs on a worker thread with its own database connection.  If it overruns
its timeout the caller gets a TIMEOUT result at once, and whatever the model returns
later is discarded — its actions are never applied.  Bad requests (a KioskError such as
VALIDATION_ERROR or NOT_FOUND) are the caller's error and raise; anything else a model raises is an ERROR result.
Every run is logged in ``ai_interactions``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import Forbidden, KioskError, NotFound, ValidationError
from . import actions as actions_mod
from . import registry
from .base import Context, Result

log = logging.getLogger("kiosk.models")


def spec_for(model_id: str, role: str | None):
    spec = registry.get(model_id)
    if spec is None:
        raise NotFound(f"no model {model_id!r}", {"modelId": model_id, "models": sorted(registry.specs())})
    if role is not None and role not in spec.roles:
        raise Forbidden(f"the {role} role may not run {model_id}", {"modelId": model_id, "roles": sorted(spec.roles)})
    return spec


def run(inst, model_id: str, payload: dict | None, *, hotel_id: str, role: str | None = None,
        actor: str | None = None, session_id: str | None = None, timeout: float | None = None) -> dict:
    spec = spec_for(model_id, role)
    payload = payload or {}
    if not isinstance(payload, dict):
        raise ValidationError("requestPayload must be an object", {"field": "requestPayload"})
    # explicit > config (models.timeout_seconds) > the model's own (15-30 s) > models.default_timeout_seconds
    timeout = timeout or inst.config.models.timeout_seconds.get(model_id) or spec.timeout_seconds or \
        inst.config.models.default_timeout_seconds
    now = inst.clock.now()
    box: dict = {}
    abandoned = threading.Event()

    def work():
        db = inst.connect()
        try:
            ctx = Context(db=db, hotel_id=hotel_id, now=now, actor=actor, role=role, session_id=session_id,
                          data_dir=str(inst.root))
            box["result"] = spec.run(ctx, payload)
        except BaseException as e:  # delivered to the caller below
            box["error"] = e
        finally:
            db.conn.close()

    started = time.perf_counter()
    t = threading.Thread(target=work, name=f"model-{model_id}", daemon=True)
    t.start()
    t.join(timeout)
    ms = round((time.perf_counter() - started) * 1000, 2)
    out = {"modelId": model_id, "status": "SUCCESS", "executionTimeMs": ms, "confidence": 0.0,
           "actionsTriggered": []}
    if t.is_alive():
        abandoned.set()
        out |= {"status": "TIMEOUT", "error": {"code": "TIMEOUT", "message": f"{model_id} took longer than {timeout:g} s"}}
    elif "error" in box:
        e = box["error"]
        if isinstance(e, KioskError):  # the request's fault (bad payload, unknown room, …): a client error
            _log(inst, hotel_id, model_id, session_id, actor, now, ms, "INVALID", f"{e.code}: {e.message}", 0)
            raise e
        log.exception("model failed", exc_info=e, extra={"modelId": model_id})
        out |= {"status": "ERROR", "error": {"code": "MODEL_ERROR", "message": f"{type(e).__name__}: {e}"[:300]}}
    else:
        r: Result = box["result"]
        out["confidence"] = round(float(r.confidence), 4)
        if r.findings is not None:
            out["findings"] = r.findings
        else:
            out["outputs"] = r.outputs or {}
        out["actionsTriggered"] = actions_mod.apply(inst.db(), hotel_id, r.actions, model_id=model_id, by=actor,
                                                    now=now, node=inst.config.property.kiosk_id)
    _log(inst, hotel_id, model_id, session_id, actor, now, ms, out["status"], (out.get("error") or {}).get("message"),
         len(out["actionsTriggered"]))
    return out


def run_many(inst, model_ids: list[str], payload: dict | None, **kw):
    """Several models at once; yields each result as it finishes (for the batch and stream forms)."""
    for m in model_ids:
        spec_for(m, kw.get("role"))  # refuse the whole batch before running any
    with ThreadPoolExecutor(max_workers=min(4, len(model_ids)) or 1) as pool:
        futures = {pool.submit(run, inst, m, payload, **kw): m for m in model_ids}
        from concurrent.futures import as_completed

        for f in as_completed(futures):
            try:
                yield f.result()
            except KioskError as e:  # e.g. a payload this model refuses: its result says so, the rest go on
                yield {"modelId": futures[f], "status": "ERROR", "executionTimeMs": 0.0, "confidence": 0.0,
                       "actionsTriggered": [], "error": {"code": e.code, "message": e.message}}


def _log(inst, hotel_id, model_id, session_id, actor, now, ms, status, error, n_actions) -> None:
    from .. import store

    db = inst.db()
    with store.transaction(db):
        db.execute("INSERT INTO ai_interactions (hotel_id, model_id, session_id, actor, started_at, duration_ms,"
                   " status, error, actions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [hotel_id, model_id, session_id, actor, now, ms, status, error, n_actions])
