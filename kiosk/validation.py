"""Request validation with pydantic, mapped to VALIDATION_ERROR with field details."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, StrictFloat, StrictInt
from pydantic import ValidationError as PydanticError

from .errors import ValidationError

M = TypeVar("M", bound=BaseModel)
INT64_MAX = 2**63 - 1


def _json_int(v: int | float) -> int:
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError("must be a whole number")
        v = int(v)
    if not -INT64_MAX <= v <= INT64_MAX:
        raise ValueError("must fit in 64 bits")
    return v


#: a JSON integer: 3 or 3.0 (JSON Schema's "integer" allows both), never "3" or true; 64-bit
JsonInt = Annotated[StrictInt | StrictFloat, AfterValidator(_json_int)]


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


MAX_JSON_DEPTH = 64


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests at most ``limit`` arrays/objects deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            items = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if d > limit:
            return False
        stack.extend((x, d + 1) for x in items)
    return True


def loads_bounded(data: str | bytes, **kw) -> Any:
    """``json.loads`` that refuses (ValueError) what nests too deep for the code after it,
    instead of a RecursionError deep inside the parser or a later ``dumps``."""
    import json

    try:
        value = json.loads(data, **kw)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not json_depth_ok(value):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value
