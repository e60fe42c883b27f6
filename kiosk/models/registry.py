"""One registry of the hotel models: id -> ModelSpec.

Each model lives in its own module in this package and defines ``SPEC``.
Add a module name to ``MODULES`` to register it.
"""

from __future__ import annotations

import importlib
from functools import cache

from .base import ModelSpec

MODULES: tuple[str, ...] = (
    "night_audit",
    "task_routing",
    "forecasting",
    "billing_detection",
    "housekeeping_plan",
    "staff_agent",
    "guest_messaging",
    "room_status",
    "maintenance",
    "pms_linking",
    "upsell",
    "voice_ai",
)


@cache
def specs() -> dict[str, ModelSpec]:
    out: dict[str, ModelSpec] = {}
    for name in MODULES:
        spec = importlib.import_module(f"{__package__}.{name}").SPEC
        if spec.id in out:
            raise RuntimeError(f"model id {spec.id!r} registered twice")
        out[spec.id] = spec
    return out


def get(model_id: str) -> ModelSpec | None:
    return specs().get(model_id)
