"""Admin analytics: what happened in one hotel over a time window, counted from rows.

Every figure is an SQL aggregate over an indexed time column (migration 5), scoped by
``hotel_id``; no row is loaded into Python, so the answer time depends on the rows in
the window, read from covering indexes (bench/admin.py: 1,000,000 audit rows).

==================  ==========================================================================
scans               ``audit_log`` rows ``scan`` (success or refused) and
                    ``security.rate_limited`` (refused, code RATE_LIMITED) in the window
sessions            ``sessions`` opened in the window, by role; ``activeNow``: not ended, not
                    expired at ``now``
models              ``ai_interactions`` started in the window, per model: runs, SUCCESS /
                    ERROR / TIMEOUT / INVALID counts, mean and p95 (nearest rank) duration
actions             tasks the models created (``tasks.source`` set, not approvals), PMS
                    updates queued (outbox ``pms.update``, ``work_order.created|updated``)
                    in the window; approvals pending now
sync                outbox backlog now (pending, oldest, dead), last push/pull, conflicts
                    and security events detected in the window
series              per hour (windows up to 2 days) or per UTC day: scans and model runs;
                    every bucket present, empty ones with zeros
requests            the manager's figures: ``tickets`` (guest and staff requests) created in the
                    window, not merged into another, by type; the median minutes from a
                    request's creation to its first step out of ``received`` (accepted,
                    assigned, in progress or done) and to its first ``done``, from the
                    tickets' status history (``item_history``: steps taken at this kiosk);
                    requests without that step are left out of that median
offersTaken         ``offer_acceptances`` in the window: how many, and the prices taken,
                    summed per currency (the price the guest agreed to)
refusedScans        refused scans (as ``scans.refused``) with the unreadable ones apart:
                    ``INVALID_TOKEN`` refusals whose reason is ``malformed`` or ``length`` —
                    what the camera (or the hand scanner) read was no kiosk code at all —
                    count as ``UNREADABLE``; ``unreadableByCamera``: those read by the camera
==================  ==========================================================================

Medians are computed in SQL (window functions over the window's rows), so only one row
per figure comes back, whatever the number of requests.

A window is ``[start, end)``; :func:`parse_window` builds it from ``period`` or
``from``/``to`` and turns bad input into VALIDATION_ERROR with the expected form.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .clock import iso
from .errors import ValidationError

PERIODS = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400}
HOURLY_UP_TO = 2 * 86400  # windows up to two days are bucketed by hour, longer ones by day
MAX_DAYS = 366
ROLES = ("guest", "staff", "admin")
SCAN_EVENTS = ("scan", "security.rate_limited")
PMS_KINDS = ("pms.update", "work_order.created", "work_order.updated")
OUTBOX_STATES = ("pending", "delivered", "dead", "dropped")
FAILED = ("ERROR", "TIMEOUT")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EXPECTED = "a date YYYY-MM-DD or an ISO 8601 date-time such as 2026-05-28T20:26:40Z"


@dataclass(frozen=True)
class Window:
    """Rows with ``start <= time < end`` (seconds since the epoch) count."""

    start: float
    end: float
    label_from: str  # for file names: the date given, or a compact UTC date-time
    label_to: str

    @property
    def bucket(self) -> str:
        return "hour" if self.end - self.start <= HOURLY_UP_TO + 1e-3 else "day"

    @property
    def bucket_seconds(self) -> int:
        return 3600 if self.bucket == "hour" else 86400

    @property
    def origin(self) -> float:
        """The start of the first bucket: ``start`` floored to the UTC hour or day."""
        size = self.bucket_seconds
        return math.floor(self.start / size) * size

    def buckets(self) -> list[float]:
        size, t, out = self.bucket_seconds, self.origin, []
        while t < self.end:
            out.append(t)
            t += size
        return out

    def to_json(self) -> dict:
        return {"from": iso(self.start), "to": iso(self.end), "bucket": self.bucket}


def _label(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def _point(text, field: str, *, end: bool) -> tuple[float, str]:
    """(seconds, file-name label) of one ``from``/``to`` value; ``to`` is inclusive."""
    if not isinstance(text, str) or not 0 < len(text) <= 40:
        raise ValidationError(f"{field} must be {EXPECTED}", {"field": field, "expected": EXPECTED})
    try:
        if _DATE.match(text):
            d = date.fromisoformat(text) + (timedelta(days=1) if end else timedelta())
            ts = datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
            if ts < 0:
                raise ValueError(text)
            return ts, text
        dt = datetime.fromisoformat(text)
        if len(text) < 13:  # e.g. "20260528": a date without dashes; refuse rather than guess
            raise ValueError(text)
        ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValidationError(f"{field} must be {EXPECTED}, not {text!r}",
                              {"field": field, "expected": EXPECTED}) from None
    if ts < 0:
        raise ValidationError(f"{field} must not be before 1970-01-01", {"field": field, "expected": EXPECTED})
    # a date-time `to` is included: the window ends just after it
    return (math.nextafter(ts, math.inf) if end else ts), _label(ts)


def parse_window(*, period=None, from_=None, to=None, now: float, max_days: int | None = MAX_DAYS) -> Window:
    """The window asked for: ``period`` (day|week|month, ending now) or ``from``/``to``."""
    if period is not None and (from_ is not None or to is not None):
        raise ValidationError("give either period or from/to, not both", {"field": "period"})
    if from_ is None and to is not None:
        raise ValidationError(f"to needs from ({EXPECTED})", {"field": "from", "expected": EXPECTED})
    if from_ is not None:
        start, label_from = _point(from_, "from", end=False)
        if to is None:
            end, label_to = math.nextafter(now, math.inf), _label(now)
        else:
            end, label_to = _point(to, "to", end=True)
    else:
        period = "day" if period is None else period
        if period not in PERIODS:
            raise ValidationError("period must be day, week or month",
                                  {"field": "period", "expected": sorted(PERIODS)})
        start, end = now - PERIODS[period], math.nextafter(now, math.inf)
        label_from, label_to = _label(start), _label(now)
    if start >= end:
        raise ValidationError("from must be before to", {"field": "from", "from": from_, "to": to})
    if max_days is not None and end - start > max_days * 86400 + 1:
        raise ValidationError(f"the window may span at most {max_days} days",
                              {"field": "from", "maxDays": max_days})
    return Window(start, end, label_from, label_to)


# --- the figures --------------------------------------------------------------------------------

def _marks(prefix: str, values: tuple[str, ...]) -> tuple[str, dict]:
    return ", ".join(f":{prefix}{i}" for i in range(len(values))), {f"{prefix}{i}": v for i, v in enumerate(values)}


_SCAN_IN, _SCAN_PARAMS = _marks("ev", SCAN_EVENTS)
_FAILED_IN, _FAILED_PARAMS = _marks("st", FAILED)
_PMS_IN, _PMS_PARAMS = _marks("pk", PMS_KINDS)

# one row per bucket; each count is a range of a covering index (audit_scans, ai_interactions_window)
_SCAN_SERIES = f"""
WITH RECURSIVE b(t) AS (SELECT :origin UNION ALL SELECT t + :size FROM b WHERE t + :size < :end)
SELECT t,
  (SELECT count(*) FROM audit_log WHERE hotel_id = :hotel AND event IN ({_SCAN_IN}) AND outcome = 'success'
     AND at >= max(t, :start) AND at < min(t + :size, :end)),
  (SELECT coalesce(sum(repeats), 0) FROM audit_log WHERE hotel_id = :hotel AND event IN ({_SCAN_IN})
     AND outcome = 'refused' AND at >= max(t, :start) AND at < min(t + :size, :end))
FROM b ORDER BY t"""

_MODEL_SERIES = f"""
WITH RECURSIVE b(t) AS (SELECT :origin UNION ALL SELECT t + :size FROM b WHERE t + :size < :end)
SELECT t, count(i.id), count(CASE WHEN i.status IN ({_FAILED_IN}) THEN 1 END)
FROM b LEFT JOIN ai_interactions i ON i.hotel_id = :hotel
  AND i.started_at >= max(b.t, :start) AND i.started_at < min(b.t + :size, :end)
GROUP BY t ORDER BY t"""

_MODELS = """
SELECT model_id, count(*), sum(status = 'SUCCESS'), sum(status = 'ERROR'), sum(status = 'TIMEOUT'),
       sum(status = 'INVALID'), avg(duration_ms), sum(duration_ms)
FROM ai_interactions WHERE hotel_id = :hotel AND started_at >= :start AND started_at < :end
GROUP BY model_id ORDER BY model_id"""

# nearest-rank p95: the ceil(0.95 n)-th smallest duration, (95 n + 99) / 100 in integers
_P95 = """
SELECT model_id, duration_ms FROM (
  SELECT model_id, duration_ms, row_number() OVER (PARTITION BY model_id ORDER BY duration_ms) AS rn,
         count(*) OVER (PARTITION BY model_id) AS n
  FROM ai_interactions WHERE hotel_id = :hotel AND started_at >= :start AND started_at < :end)
WHERE rn = (95 * n + 99) / 100"""

# tasks.created_at is ISO text (with or without an offset); julianday reads both, to the millisecond
_TASK_TIME = "round((julianday(created_at) - 2440587.5) * 86400.0, 3)"


def _params(hotel_id: str, w: Window, **extra) -> dict:
    return {"hotel": hotel_id, "start": w.start, "end": w.end, "origin": w.origin,
            "size": w.bucket_seconds, **extra}


def scans(db, hotel_id: str, w: Window) -> tuple[dict, list[dict]]:
    p = _params(hotel_id, w, **_SCAN_PARAMS)
    series = [{"t": iso(t), "success": ok, "refused": no} for t, ok, no in db.execute(_SCAN_SERIES, p)]
    codes = dict(db.execute(
        f"SELECT coalesce(code, 'UNKNOWN'), sum(repeats) FROM audit_log WHERE hotel_id = :hotel"
        f" AND event IN ({_SCAN_IN}) AND outcome = 'refused' AND at >= :start AND at < :end"
        " GROUP BY 1 ORDER BY 1", p).fetchall())
    success = sum(b["success"] for b in series)
    refused = sum(b["refused"] for b in series)
    return {"total": success + refused, "success": success, "refused": codes, "refusedTotal": refused}, series


def sessions(db, hotel_id: str, w: Window, now: float) -> dict:
    by_role = dict.fromkeys(ROLES, 0) | dict(db.execute(
        "SELECT role, count(*) FROM sessions WHERE hotel_id = :hotel AND created_at >= :start"
        " AND created_at < :end GROUP BY role", _params(hotel_id, w)).fetchall())
    active = db.execute("SELECT count(*) FROM sessions WHERE hotel_id = ? AND ended_at IS NULL"
                        " AND expires_at > ?", [hotel_id, now]).fetchone()[0]
    return {"total": sum(by_role.values()), "byRole": by_role, "activeNow": active}


def models(db, hotel_id: str, w: Window) -> tuple[list[dict], dict]:
    p = _params(hotel_id, w)
    p95 = dict(db.execute(_P95, p).fetchall())
    out, runs, failed, total_ms = [], 0, 0, 0.0
    for model_id, n, ok, err, timeout, invalid, mean, ms in db.execute(_MODELS, p):
        out.append({"modelId": model_id, "runs": n, "success": ok, "error": err, "timeout": timeout,
                    "invalid": invalid, "meanMs": round(mean, 2), "p95Ms": round(p95[model_id], 2),
                    "errorRate": round((err + timeout) / n, 4)})
        runs, failed, total_ms = runs + n, failed + err + timeout, total_ms + ms
    overall = {"runs": runs, "avgExecutionTimeMs": round(total_ms / runs, 2) if runs else None,
               "errorRate": round(failed / runs, 4) if runs else None}
    return out, overall


def model_series(db, hotel_id: str, w: Window) -> list[dict]:
    return [{"t": iso(t), "runs": n, "errors": e}
            for t, n, e in db.execute(_MODEL_SERIES, _params(hotel_id, w, **_FAILED_PARAMS))]


def actions(db, hotel_id: str, w: Window) -> tuple[dict, dict]:
    p = _params(hotel_id, w, **_PMS_PARAMS)
    tasks = db.execute(f"SELECT count(*) FROM tasks WHERE hotel_id = :hotel AND source IS NOT NULL"
                       f" AND type <> 'approval' AND {_TASK_TIME} >= :start AND {_TASK_TIME} < :end", p).fetchone()[0]
    states = dict.fromkeys(OUTBOX_STATES, 0) | dict(db.execute(
        f"SELECT state, count(*) FROM outbox WHERE hotel_id = :hotel AND kind IN ({_PMS_IN})"
        " AND created_at >= :start AND created_at < :end GROUP BY state", p).fetchall())
    approvals = db.execute("SELECT count(*) FROM tasks WHERE hotel_id = ? AND type = 'approval'"
                           " AND status IN ('open', 'assigned')", [hotel_id]).fetchone()[0]
    return {"tasksCreated": tasks, "pmsUpdatesQueued": sum(states.values()), "approvalsPending": approvals}, states


def _state(db, key: str) -> str | None:
    row = db.execute("SELECT value FROM sync_state WHERE key = ?", [key]).fetchone()
    return iso(float(row[0])) if row and row[0] else None


def sync(db, hotel_id: str, w: Window, now: float) -> dict:
    pending, oldest = db.execute("SELECT count(*), min(created_at) FROM outbox WHERE hotel_id = ?"
                                 " AND state = 'pending'", [hotel_id]).fetchone()
    dead = db.execute("SELECT count(*) FROM outbox WHERE hotel_id = ? AND state = 'dead'", [hotel_id]).fetchone()[0]
    p = _params(hotel_id, w)
    conflicts = db.execute("SELECT count(*) FROM conflicts WHERE hotel_id = :hotel AND detected_at >= :start"
                           " AND detected_at < :end", p).fetchone()[0]
    security = db.execute("SELECT count(*) FROM security_events WHERE hotel_id = :hotel AND detected_at >= :start"
                          " AND detected_at < :end", p).fetchone()[0]
    return {"pending": pending, "oldestPendingAgeSeconds": round(now - oldest, 3) if oldest is not None else None,
            "dead": dead, "lastPushAt": _state(db, "last_push_ok_at"), "lastPushAttemptAt": _state(db, "last_push_at"),
            "lastPullAt": _state(db, "last_pull_at"), "lastHeardAt": _state(db, "last_heard_at"),
            "conflicts": conflicts, "securityEvents": security}


# --- the manager's figures ------------------------------------------------------------------------

#: the steps that mean someone took a request (tickets.TRANSITIONS out of received)
TAKEN = ("accepted", "assigned", "in_progress", "done")
_TAKEN_IN, _TAKEN_PARAMS = _marks("tk", TAKEN)
#: tokens.verify's reasons for a code that is no kiosk code at all
UNREADABLE_REASONS = ("malformed", "length")
_UNREAD_IN, _UNREAD_PARAMS = _marks("ur", UNREADABLE_REASONS)

# each request of the window with its seconds to the first step out of received and to the first
# done (NULL: not yet, or not recorded here); read by the tickets_created and item_history_item indexes
_REQUEST_TIMES = f"""
WITH r AS MATERIALIZED (
  SELECT t.type AS type,
    (SELECT min(h.at) FROM item_history h WHERE h.hotel_id = t.hotel_id AND h.kind = 'ticket'
       AND h.item_id = t.ticket_id AND h.field = 'status' AND h.new IN ({_TAKEN_IN})) - t.created_at AS accept_s,
    (SELECT min(h.at) FROM item_history h WHERE h.hotel_id = t.hotel_id AND h.kind = 'ticket'
       AND h.item_id = t.ticket_id AND h.field = 'status' AND h.new = 'done') - t.created_at AS done_s
  FROM tickets t WHERE t.hotel_id = :hotel AND t.created_at >= :start AND t.created_at < :end
    AND t.merged_into IS NULL),
m AS (
  SELECT type, 'accept' AS what, max(accept_s, 0) AS v FROM r WHERE accept_s IS NOT NULL
  UNION ALL SELECT type, 'done', max(done_s, 0) FROM r WHERE done_s IS NOT NULL),
ranked AS (
  SELECT type, what, v,
    row_number() OVER (PARTITION BY what ORDER BY v) AS rn, count(*) OVER (PARTITION BY what) AS n,
    row_number() OVER (PARTITION BY what, type ORDER BY v) AS trn, count(*) OVER (PARTITION BY what, type) AS tn
  FROM m)
SELECT '*', what, avg(v), max(n) FROM ranked WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY what
UNION ALL
SELECT type, what, avg(v), max(tn) FROM ranked WHERE trn IN ((tn + 1) / 2, (tn + 2) / 2) GROUP BY type, what"""


def _minutes(seconds) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 1)


def requests(db, hotel_id: str, w: Window) -> dict:
    """Requests by type and the median minutes to accept and to done (module docstring)."""
    p = _params(hotel_id, w, **_TAKEN_PARAMS)
    by_type = dict(db.execute(
        "SELECT type, count(*) FROM tickets WHERE hotel_id = :hotel AND created_at >= :start AND created_at < :end"
        " AND merged_into IS NULL GROUP BY type ORDER BY count(*) DESC, type", p).fetchall())
    overall = {"accept": (None, 0), "done": (None, 0)}
    per_type = {t: {"count": n, "medianMinutesToAccept": None, "medianMinutesToDone": None}
                for t, n in by_type.items()}
    for type_, what, median, n in db.execute(_REQUEST_TIMES, p):
        if type_ == "*":
            overall[what] = (median, n)
        elif type_ in per_type:
            per_type[type_]["medianMinutesToAccept" if what == "accept" else "medianMinutesToDone"] = _minutes(median)
    return {"total": sum(by_type.values()), "byType": by_type,
            "accepted": overall["accept"][1], "done": overall["done"][1],
            "medianMinutesToAccept": _minutes(overall["accept"][0]),
            "medianMinutesToDone": _minutes(overall["done"][0]),
            "types": [{"type": t, **v} for t, v in per_type.items()]}


def offers_taken(db, hotel_id: str, w: Window) -> dict:
    """Offers guests took in the window and the revenue, per currency (index offer_acceptances_at)."""
    rows = db.execute("SELECT currency, count(*), sum(price) FROM offer_acceptances WHERE hotel_id = :hotel"
                      " AND accepted_at >= :start AND accepted_at < :end GROUP BY currency ORDER BY currency",
                      _params(hotel_id, w)).fetchall()
    return {"taken": sum(n for _, n, _ in rows), "revenue": {c: round(v, 2) for c, _, v in rows}}


def refused_scans(db, hotel_id: str, w: Window) -> dict:
    """Refused scans by reason, unreadable codes apart (module docstring)."""
    p = _params(hotel_id, w, **_SCAN_PARAMS, **_UNREAD_PARAMS)
    by_reason: dict[str, int] = {}
    unreadable = camera = 0
    for code, is_unreadable, n, by_camera in db.execute(
            f"SELECT coalesce(code, 'UNKNOWN'), code = 'INVALID_TOKEN' AND json_extract(details, '$.reason')"
            f" IN ({_UNREAD_IN}), sum(repeats), sum(CASE WHEN client = 'camera' THEN repeats ELSE 0 END)"
            f" FROM audit_log WHERE hotel_id = :hotel AND event IN ({_SCAN_IN}) AND outcome = 'refused'"
            " AND at >= :start AND at < :end GROUP BY 1, 2", p):
        key = "UNREADABLE" if is_unreadable else code
        by_reason[key] = by_reason.get(key, 0) + n
        if is_unreadable:
            unreadable, camera = unreadable + n, camera + by_camera
    return {"total": sum(by_reason.values()), "unreadable": unreadable, "unreadableByCamera": camera,
            "byReason": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))}


def summary(db, hotel_id: str, w: Window, *, now: float) -> dict:
    """The whole analytics answer (without ``success``) for one hotel and window."""
    scan_totals, scan_series = scans(db, hotel_id, w)
    per_model, overall = models(db, hotel_id, w)
    acts, pms_states = actions(db, hotel_id, w)
    return {
        "period": w.to_json(),
        "scans": scan_totals,
        "sessions": sessions(db, hotel_id, w, now),
        "models": per_model,
        "actions": acts,
        "sync": sync(db, hotel_id, w, now),
        "series": {"scans": scan_series, "models": model_series(db, hotel_id, w)},
        # the seed's names (its dashboard's "AI model usage", "PMS sync status" and performance cards)
        "aiModelUsage": {m["modelId"]: m["runs"] for m in per_model},
        "avgExecutionTimeMs": overall["avgExecutionTimeMs"],
        "errorRate": overall["errorRate"],
        "pmsSyncStatus": pms_states,
        # the manager's figures
        "requests": requests(db, hotel_id, w),
        "offersTaken": offers_taken(db, hotel_id, w),
        "refusedScans": refused_scans(db, hotel_id, w),
    }
