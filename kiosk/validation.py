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


#: pydantic's error type (its start) -> the form a value must have, said in the message
_EXPECTED = (("date_", "a date, YYYY-MM-DD"), ("datetime_", "a date and time, YYYY-MM-DDTHH:MM:SSZ"),
             ("time_", "a time, HH:MM"), ("int_", "a whole number"), ("float_", "a number"),
             ("bool_", "true or false"), ("string_", "a string"), ("dict_", "a JSON object"),
             ("model_", "a JSON object"), ("list_", "a JSON array"))


def _expected(model: type[BaseModel], err: dict) -> str | None:
    kind = err["type"]
    if kind == "extra_forbidden":
        known = sorted(model.model_fields) if len(err["loc"]) == 1 else []
        return f"one of the known fields: {', '.join(known)}" if known else "no such field"
    if kind == "literal_error" and err.get("ctx", {}).get("expected"):
        return err["ctx"]["expected"]
    return next((form for prefix, form in _EXPECTED if kind.startswith(prefix)), None)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", {"fields": []})
    try:
        return model.model_validate(data)
    except PydanticError as e:
        fields, said = [], []
        for err in e.errors():
            field = {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
            expected = _expected(model, err)
            if expected:
                field["expected"] = expected
            fields.append(field)
            said.append(f"{field['field']}: {err['msg']}" + (f" (expected {expected})" if expected else ""))
        more = f"; and {len(said) - 3} more" if len(said) > 3 else ""
        raise ValidationError(f"invalid request: {'; '.join(said[:3])}{more}", {"fields": fields}) from None


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
