"""QR tokens: issued, used and revoked at kiosks; revocations and one-time uses reach every
kiosk of the hotel; the same one-time token used at two kiosks is a replay (rule
``token-replay``): the earliest use keeps its session, the other is ended."""

from __future__ import annotations

from kiosk import audit, sessions, sync_status, tokens

from ..conflicts import Conflict, replay_order
from . import Kind, recorded


def pull(ctx, hotel_id: str, ch: dict) -> None:
    if ch["entityType"] == "token_revocation":
        tokens.revoke_remote(ctx.db, hotel_id, ch["entityId"], revoked_at=ch["data"].get("revokedAt") or ctx.now,
                             hlc=ch.get("hlc") or "", now=ctx.now)
    elif _replay(ctx, hotel_id, ch["data"]):
        ctx.replays.append(ch["data"]["jti"])


def _replay(ctx, hotel_id: str, d: dict) -> bool:
    """A use at another kiosk, merged; True when it was used here too (a replay, judged here)."""
    db, node, now = ctx.db, ctx.node, ctx.now
    jti, kiosk = d["jti"], d["kioskId"]
    if kiosk == node:
        return False  # our own use, echoed back
    uses = tokens.use_remote(db, hotel_id, jti, kiosk_id=kiosk, session_id=d.get("sessionId"),
                             used_at=d.get("consumedAt") or now, hlc=d["hlc"], node=node)
    if uses is None:
        return False
    keeper, *_ = replay_order(uses)
    mine = uses[0]
    other = {"kioskId": kiosk, "sessionId": d.get("sessionId"), "hlc": d["hlc"]}
    ended = [] if keeper == mine else sessions.end_for_token(db, hotel_id, jti, now=now, reason="token_replay")
    loser = other if keeper == mine else mine
    details = {"keeper": keeper, "ended": loser, "consumptions": uses, "sessionsEndedHere": ended}
    key = f"replay:{jti}:{loser['kioskId']}"
    sync_status.record_security_event(db, hotel_id, kind="TOKEN_REPLAY", subject=jti, details=details, at=now,
                                      key=key)
    c = Conflict("qr_token", jti, None, "token-replay",
                 f"replay: the session at {keeper['kioskId']} (earliest) is kept;"
                 f" the one at {loser['kioskId']} is ended", other, mine)
    sync_status.record_conflict(db, hotel_id, c.to_json(), source="pull", now=now, key=key)
    audit.record(db, hotel_id=hotel_id, event="security.token_replay", outcome="detected", at=now, jti=jti,
                 details=details)
    return True


KIND = Kind("token", "QR tokens: issued, used, revoked (kiosk -> cloud); revocations and uses (cloud -> kiosks)",
            push_entity="qr_token",
            push=(recorded("token.issued"), recorded("token.used"),
                  recorded("token.revoked")),
            pull_entities=("token_revocation", "token_consumption"), pull=pull,
            snapshot=(("token_revocation", "sync.cloud.snapshot:revocation_rows"),
                      ("token_consumption", "sync.cloud.snapshot:consumption_rows")),
            conflict_rule="token-replay", relay="sync.cloud.events:put_token_change")
