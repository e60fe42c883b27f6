"""Run a model: its timeout, its actions, its log line, and the one result shape.

``{"modelId", "status": success|error|timeout, "executionTimeMs", "confidence",
"findings"|"outputs", "actionsTriggered": [...], "error"?}`` (the seed's lowercase
statuses; the run log keeps SUCCESS/ERROR/TIMEOUT/INVALID).

A model runs in a worker process (``sandbox``) with its own database connection and a
memory budget.  If it overruns its timeout the worker is killed: the caller gets a
timeout result at once, the work really stops, and its actions are never applied.  Bad requests (a KioskError such as
VALIDATION_ERROR or NOT_FOUND) are the caller's error and raise; anything else a model raises is an ERROR result.
Every run is logged in ``ai_interactions``.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed

from ..errors import Forbidden, KioskError, NotFound, ValidationError
from . import actions as actions_mod
from . import registry, sandbox
from .base import Result

log = logging.getLogger("kiosk.models")


def spec_for(model_id: str, role: str | None):
    spec = registry.get(model_id)
    if spec is None:
        raise NotFound(f"no model {model_id!r}", {"modelId": model_id, "models": sorted(registry.specs())})
    if role is not None and role not in spec.roles:
        raise Forbidden(f"the {role} role may not run {model_id}", {"modelId": model_id, "roles": sorted(spec.roles)})
    return spec


def run(inst, model_id: str, payload: dict | None, *, hotel_id: str, role: str | None = None,
        actor: str | None = None, session_id: str | None = None, timeout: float | None = None,
        apply_actions: bool = True) -> dict:
    """``apply_actions=False``: the actions are answered as ``actionsProposed`` and not applied
    (the guest screen turns a proposed task into the guest's own ticket instead)."""
    spec = spec_for(model_id, role)
    payload = payload or {}
    if not isinstance(payload, dict):
        raise ValidationError("requestPayload must be an object", {"field": "requestPayload"})
    # explicit > config (models.timeout_seconds) > the model's own (15-30 s) > models.default_timeout_seconds
    timeout = timeout or inst.config.models.timeout_seconds.get(model_id) or spec.timeout_seconds or \
        inst.config.models.default_timeout_seconds
    now = inst.clock.now()
    cfg = inst.config
    job = sandbox.Job(model_id=model_id, run=spec.run, payload=payload, db_path=str(inst.db_path),
                      busy_timeout_ms=cfg.store.busy_timeout_ms, hotel_id=hotel_id, now=now, actor=actor,
                      role=role, session_id=session_id, data_dir=str(inst.root), tz=cfg.property.timezone)
    started = time.perf_counter()
    answer = sandbox.pool(cfg.models.workers, cfg.models.memory_limit_mb).run(job, timeout)
    ms = round((time.perf_counter() - started) * 1000, 2)
    out = {"modelId": model_id, "status": "success", "executionTimeMs": ms, "confidence": 0.0,
           "actionsTriggered": []}
    kind = answer[0]
    if kind == "timeout":
        out |= {"status": "timeout", "error": {"code": "TIMEOUT", "message": f"{model_id} took longer than {timeout:g} s;"
                                                                             " its work was stopped"}}
    elif kind == "refused":  # the request's fault (bad payload, unknown room, …): a client error
        _, code, message, details = answer
        _log(inst, hotel_id, model_id, session_id, actor, now, ms, "INVALID", f"{code}: {message}", 0)
        raise KioskError(message, details, code=code)
    elif kind == "memory":
        log.warning("model over its memory budget", extra={"modelId": model_id, "detail": answer[1]})
        out |= {"status": "error", "error": {"code": "MODEL_RESOURCES",
                                             "message": f"{model_id} needed more memory than it may use"}}
    elif kind == "error":
        _, name, message, trace = answer
        ref = uuid.uuid4().hex[:12]
        log.error("model failed", extra={"modelId": model_id, "errorRef": ref, "error": f"{name}: {message}",
                                         "trace": trace})
        # the exception's text stays in the kiosk's log: it can name files, tables or data
        out |= {"status": "error", "error": {"code": "MODEL_ERROR", "ref": ref,
                                             "message": f"{model_id} failed; the kiosk log has the details"
                                                        f" (ref {ref})"}}
        answer = ("error", f"{name}: {message}")
    else:
        r: Result = answer[1]
        out["confidence"] = round(float(r.confidence), 4)
        if r.findings is not None:
            out["findings"] = r.findings
        else:
            out["outputs"] = r.outputs or {}
        if apply_actions:
            out["actionsTriggered"] = actions_mod.apply(inst.db(), hotel_id, r.actions, model_id=model_id, by=actor,
                                                        now=now, node=inst.config.property.kiosk_id,
                                                        tz=cfg.property.timezone)
        else:
            out["actionsProposed"] = [{"type": a.type, "payload": dict(a.payload)} for a in r.actions]
    logged_error = answer[1] if kind == "error" else (out.get("error") or {}).get("message")
    _log(inst, hotel_id, model_id, session_id, actor, now, ms, out["status"].upper(), logged_error,
         len(out["actionsTriggered"]))
    return out


def run_many(inst, model_ids: list[str], payload: dict | None, **kw):
    """Several models at once; yields each result as it finishes (for the batch and stream forms)."""
    for m in model_ids:
        spec_for(m, kw.get("role"))  # refuse the whole batch before running any
    with ThreadPoolExecutor(max_workers=min(4, len(model_ids)) or 1) as pool:
        futures = {pool.submit(run, inst, m, payload, **kw): m for m in model_ids}
        for f in as_completed(futures):
            try:
                yield f.result()
            except KioskError as e:  # e.g. a payload this model refuses: its result says so, the rest go on
                yield {"modelId": futures[f], "status": "error", "executionTimeMs": 0.0, "confidence": 0.0,
                       "actionsTriggered": [], "error": {"code": e.code, "message": e.message}}


def _log(inst, hotel_id, model_id, session_id, actor, now, ms, status, error, n_actions) -> None:
    from .. import store

    db = inst.db()
    with store.transaction(db):
        db.execute("INSERT INTO ai_interactions (hotel_id, model_id, session_id, actor, started_at, duration_ms,"
                   " status, error, actions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [hotel_id, model_id, session_id, actor, now, ms, status, error, n_actions])
