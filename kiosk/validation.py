"""Request validation with pydantic, mapped to VALIDATION_ERROR with field details."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from .errors import ValidationError

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", {"fields": []})
    try:
        return model.model_validate(data)
    except PydanticError as e:
        fields = [{"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
                  for err in e.errors()]
        names = ", ".join(f["field"] for f in fields)
        raise ValidationError(f"invalid request: {names}", {"fields": fields}) from None
