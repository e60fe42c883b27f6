"""Deadlines for a loaded machine: tests wait for the state they need, not for a fast box.

A test that is not about a model's timeout should not fail because a 2-core machine
running other work needed more than a model's own 15-30 s, nor one that is not about
STORE_BUSY because sixteen concurrent writers queued longer than the store's 5 s busy
timeout.  :func:`overrides` (config) and :func:`env` (a process's environment) give
every real model and the store generous limits instead; tests about those limits set
their own (``runner.run(..., timeout=...)``, fake models with their own
``timeout_seconds``, ``store.connect(..., busy_timeout_ms=50)``).
"""

from __future__ import annotations

import json

#: the most a test lets a real model take (far more than any takes on an idle machine)
MODEL_TIMEOUT_SECONDS = 180.0
#: how long a test's writer waits for the store's write lock
BUSY_TIMEOUT_MS = 120_000


def model_timeouts() -> dict[str, float]:
    """``models.timeout_seconds`` with every registered model at :data:`MODEL_TIMEOUT_SECONDS`."""
    from kiosk.models import registry

    return {model_id: MODEL_TIMEOUT_SECONDS for model_id in registry.specs()}


def overrides() -> dict:
    """Config overrides for a test instance."""
    return {"models": {"timeout_seconds": model_timeouts()}, "store": {"busy_timeout_ms": BUSY_TIMEOUT_MS}}


def env() -> dict[str, str]:
    """The same, as the environment a kiosk process (or its agent) reads."""
    return {"KIOSK__MODELS__TIMEOUT_SECONDS": json.dumps(model_timeouts()),
            "KIOSK__STORE__BUSY_TIMEOUT_MS": str(BUSY_TIMEOUT_MS)}
