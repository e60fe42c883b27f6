"""maintenance: failure risk per asset, from its work-order history (a Weibull fit with
censoring), and preventive maintenance for the assets at risk.

Per asset, the times between failures (from installation, then from each failure) are
observed lifetimes; the time since the last failure is a censored one (it has not
failed yet — leaving it out would make every asset look worse than it is).  One
Weibull per asset type is fitted by maximum likelihood over all of them
(scipy.optimize), and an asset's risk is P(fails within ``horizonDays`` | it has lasted
``t`` since its last failure) = 1 − S(t + h) / S(t).  Assets above ``threshold`` get a
SCHEDULE_MAINTENANCE action, once per asset and horizon: an asset with a preventive work
order still open gets none (``scheduled`` names it), and the action's subject is the asset
and the horizon window it falls in (days since 1970 // ``horizonDays``), so a rerun, a
scheduled run after a manual one, or the same run at another kiosk of the hotel opens one
work order, not one each (kiosk/models/actions.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import minimize

from ..validation import parse
from .base import Action, Context, ModelSpec, Result

DAY = 86400.0


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    horizonDays: int = Field(30, ge=1, le=365)
    threshold: float = Field(0.5, gt=0, lt=1)


def fit_weibull(times: np.ndarray, events: np.ndarray) -> tuple[float, float]:
    """(shape, scale) maximising the censored Weibull likelihood."""
    t = np.maximum(times, 1e-3)

    def nll(params):
        k, lam = np.exp(params)
        z = (t / lam) ** k
        return -(np.sum(events * (np.log(k / lam) + (k - 1) * np.log(t / lam))) - np.sum(z))

    start = np.log([1.0, max(float(np.mean(t)), 1e-3)])
    res = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 2000})
    k, lam = np.exp(res.x)
    return float(k), float(lam)


def conditional_risk(k: float, lam: float, t: float, h: float) -> float:
    """P(failure in (t, t+h] | survived to t)."""
    return 1.0 - math.exp((t / lam) ** k - ((t + h) / lam) ** k)


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    now_day = ctx.now / DAY
    assets = list(ctx.db.query("SELECT * FROM assets WHERE hotel_id = ?", [ctx.hotel_id]))
    failures = defaultdict(list)
    for asset_id, opened in ctx.db.execute("SELECT asset_id, opened_at FROM work_orders WHERE hotel_id = ? AND"
                                           " type = 'failure' AND asset_id IS NOT NULL", [ctx.hotel_id]):
        failures[asset_id].append(opened / DAY)
    by_type = defaultdict(lambda: ([], []))
    since: dict[str, float] = {}
    for a in assets:
        start = date.fromisoformat(a["installed_on"]).toordinal() - date(1970, 1, 1).toordinal() \
            if a["installed_on"] else min(failures[a["asset_id"]], default=now_day - 365)
        last = start
        for f in sorted(failures[a["asset_id"]]):
            if f > last:
                by_type[a["type"]][0].append(f - last)
                by_type[a["type"]][1].append(1)
                last = f
        since[a["asset_id"]] = max(now_day - last, 0.0)
        by_type[a["type"]][0].append(since[a["asset_id"]])  # censored: still working
        by_type[a["type"]][1].append(0)
    open_pm = dict(ctx.db.execute("SELECT asset_id, max(work_order_id) FROM work_orders WHERE hotel_id = ? AND"
                                  " type = 'preventive' AND status NOT IN ('done', 'cancelled') AND asset_id IS NOT"
                                  " NULL GROUP BY asset_id", [ctx.hotel_id]).fetchall())
    window = int(now_day // p.horizonDays)
    fits = {}
    for typ, (times, events) in by_type.items():
        if sum(events) >= 2:
            fits[typ] = fit_weibull(np.array(times, float), np.array(events, float))
    out, actions = [], []
    for a in assets:
        fit = fits.get(a["type"])
        if fit is None:
            continue
        risk = conditional_risk(*fit, since[a["asset_id"]], p.horizonDays)
        last = failures[a["asset_id"]]
        out.append({"assetId": a["asset_id"], "type": a["type"], "roomNumber": a["room_number"], "risk": round(risk, 4),
                    "shape": round(fit[0], 3), "scale": round(fit[1], 1), "daysSinceFailure": round(since[a["asset_id"]], 1),
                    "lastFailure": date.fromordinal(int(max(last)) + date(1970, 1, 1).toordinal()).isoformat()
                    if last else None, "scheduled": open_pm.get(a["asset_id"])})
        if risk >= p.threshold and a["asset_id"] not in open_pm:
            start = date.fromordinal(window * p.horizonDays + date(1970, 1, 1).toordinal())
            actions.append(Action("SCHEDULE_MAINTENANCE", {
                "assetId": a["asset_id"], "roomNumber": a["room_number"], "risk": round(risk, 4),
                "description": f"preventive: {a['type']} {a['asset_id']} has a {risk:.0%} risk of failing "
                               f"within {p.horizonDays} days"},
                subject=f"preventive {a['asset_id']} horizon {p.horizonDays} d from {start.isoformat()}"))
    out.sort(key=lambda x: -x["risk"])
    return Result(confidence=0.8 if fits else 0.0, outputs={"assets": out, "threshold": p.threshold,
                                                           "types": {t: {"shape": round(k, 3), "scale": round(s, 1)}
                                                                     for t, (k, s) in fits.items()}},
                  actions=actions)


SPEC = ModelSpec(id="maintenance", run=run, roles=frozenset({"staff", "admin"}), reads=("assets", "work_orders"),
                 timeout_seconds=20.0, description="Failure risk per asset (Weibull with censoring), preventive work")
