"""The forecasting blend's two choices (issue 11: chosen on earlier cut-offs, reported on later
ones by bench/models.py) are parameters of ``forecast``: weight 0 is additive pickup, and the
level term follows a change of level that the weekday pattern has not caught up with yet."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from kiosk.models import forecasting
from kiosk.models.forecasting import History, forecast


def history(level_change_at: date | None = None) -> History:
    """Every night: 10 rooms booked 30 days ahead, a pickup of 5 booked 3 days ahead (8 after the change)."""
    rows, n = [], 0
    for k in range(240):
        night = date(2026, 1, 1) + timedelta(days=k)
        late = 8 if level_change_at and night >= level_change_at else 5
        for i in range(10 + late):
            lead = 30 if i < 10 else 3
            rows.append({"arrival": night.isoformat(), "departure": (night + timedelta(days=1)).isoformat(),
                         "booked_on": (night - timedelta(days=lead)).isoformat(), "canceled_on": None,
                         "status": "CheckedOut", "nightly_rate": 100.0})
            n += 1
    return History.from_rows(rows)


def rooms(h: History, as_of: date, **kw) -> np.ndarray:
    return np.array([d["roomsOccupied"] for d in forecast(h, as_of.toordinal(), 14, **kw)[0]])


def test_weight_zero_is_additive_pickup_and_the_default_is_the_chosen_blend():
    h = history(level_change_at=date(2026, 5, 20))
    as_of = date(2026, 6, 1)
    assert np.allclose(rooms(h, as_of, method="blend", level_weight=0.0), rooms(h, as_of, method="additive"))
    assert np.allclose(rooms(h, as_of), rooms(h, as_of, method="blend", level_weight=forecasting.LEVEL_WEIGHT,
                                              recent=forecasting.RECENT_NIGHTS))


def test_the_level_term_follows_a_recent_change_that_the_weekday_mean_lags():
    h = history(level_change_at=date(2026, 5, 20))  # pickup 5 -> 8 twelve days before asOf
    as_of = date(2026, 6, 1)
    actual = 18.0  # 10 on the books 30 days ahead + the new pickup of 8
    additive = abs(rooms(h, as_of, method="additive")[3:] - actual).mean()  # leads 4-14: pickup to come
    blend = abs(rooms(h, as_of, level_weight=1.0, recent=7)[3:] - actual).mean()
    assert blend < additive
