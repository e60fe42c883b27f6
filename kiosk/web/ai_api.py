"""POST /api/ai/trigger — run hotel models for the session's hotel.

``{"sessionId", "modelId", "requestPayload"}`` runs one model and answers its result;
``{"sessionId", "modelIds": [...], "requestPayload"}`` runs several at once and answers
``{"results": [...]}``; with ``?stream=1`` the batch answers as server-sent events, one
``event: result`` per model as it finishes, then ``event: done``.
"""

from __future__ import annotations

import json
from typing import Annotated

from flask import Blueprint, Response, current_app, g, request, stream_with_context
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from ..errors import Forbidden
from ..models import runner
from ..validation import parse
from .capacity import model_run
from .rbac import roles
from .responses import ok

bp = Blueprint("ai", __name__)


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sessionId: StrictStr = Field(min_length=1, max_length=64)
    modelId: StrictStr | None = Field(None, min_length=1, max_length=64)
    modelIds: list[Annotated[StrictStr, Field(min_length=1, max_length=64)]] | None = Field(None, min_length=1,
                                                                                           max_length=12)
    requestPayload: dict = {}

    @model_validator(mode="after")
    def _one_form(self):
        if (self.modelId is None) == (self.modelIds is None):
            raise ValueError("give either modelId or modelIds")
        return self


@bp.post("/api/ai/trigger")
@roles("guest", "staff", "admin")
@model_run  # one place per session (a batch or a stream too, until it ends), or 429 BUSY
def trigger():
    # speech and room photos come here: a larger body than other routes, still bounded
    request.max_content_length = current_app.config["KIOSK_INSTANCE"].config.server.max_media_body_bytes
    req = parse(Trigger, request.get_json(silent=True))
    s = g.session
    if req.sessionId != s.id:
        raise Forbidden("sessionId is not the session of this request", {"field": "sessionId"})
    inst = current_app.config["KIOSK_INSTANCE"]
    kw = dict(hotel_id=s.hotel_id, role=s.role, actor=s.user_id, session_id=s.id)
    if req.modelId is not None:
        return ok(**runner.run(inst, req.modelId, req.requestPayload, **kw))
    results = runner.run_many(inst, list(dict.fromkeys(req.modelIds)), req.requestPayload, **kw)
    if request.args.get("stream") == "1":
        first = next(results)  # refusals (unknown model, role) raise here, as a normal error answer

        def events():
            yield f"event: result\ndata: {json.dumps(first)}\n\n"
            for r in results:
                yield f"event: result\ndata: {json.dumps(r)}\n\n"
            yield "event: done\ndata: {}\n\n"
        return Response(stream_with_context(events()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store"})
    return ok(results=list(results))
