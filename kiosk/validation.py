"""Request validation with pydantic, mapped to VALIDATION_ERROR with field details."""

from __future__ import annotations

import re
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
    if kind.startswith("string_") and len(err["loc"]) == 1 and err["loc"][0] in model.model_fields:
        described = model.model_fields[err["loc"][0]].description  # e.g. "a WAV file, base64"
        if described:
            return described
    return next((form for prefix, form in _EXPECTED if kind.startswith(prefix)), None)


#: what no text field may hold: NUL (C strings, logs and spreadsheets cut or skip at it) and
#: UTF-16 surrogates (a JSON ``\ud800`` escape without its pair is no character: not UTF-8,
#: not storable, not loggable).  A pair (``\ud83d\ude00``) is decoded into one character.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
TEXT_EXPECTED = "text without NUL (U+0000) or unpaired surrogate (U+D800-U+DFFF) characters"
MAX_TEXT_PROBLEMS = 10


def _shown(text: str) -> str:
    """``text`` with its NULs and surrogates written as ``\\uXXXX`` (safe to log and to answer)."""
    return _BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _text_problem(text: str) -> str:
    bad = _BAD_TEXT.search(text).group()
    return ("contains a NUL character (U+0000)" if bad == "\x00" else
            f"contains an unpaired surrogate (U+{ord(bad):04X}), which is not a character")


def text_problems(value: Any, limit: int = MAX_TEXT_PROBLEMS) -> list[dict]:
    """The strings of a parsed JSON value (keys too) that hold a NUL or a lone surrogate, as
    VALIDATION_ERROR ``fields`` (``field``: the dotted path, as :func:`parse` names fields),
    in document order, at most ``limit``.  Iterative: no recursion, whatever the depth."""
    out: list[dict] = []
    stack: list[tuple[tuple, Any]] = [((), value)]
    while stack and len(out) < limit:
        path, v = stack.pop()
        if isinstance(v, str):
            if _BAD_TEXT.search(v):
                out.append({"field": ".".join(map(str, path)) or "(body)", "problem": _text_problem(v),
                            "expected": TEXT_EXPECTED})
        elif isinstance(v, dict):
            items = []
            for k, x in v.items():
                k = str(k)
                if _BAD_TEXT.search(k):
                    out.append({"field": ".".join(map(str, (*path, _shown(k)))),
                                "problem": "the field's name " + _text_problem(k), "expected": TEXT_EXPECTED})
                items.append(((*path, _shown(k)), x))
            stack.extend(reversed(items))
        elif isinstance(v, list):
            stack.extend(reversed([((*path, i), x) for i, x in enumerate(v)]))
    return out[:limit]


def check_text(value: Any) -> Any:
    """``value`` unchanged, or VALIDATION_ERROR naming each field whose text holds a NUL or a
    lone surrogate.  Every JSON body the kiosk parses passes here (kiosk/web/responses.py), and
    :func:`parse` checks again for library callers."""
    fields = text_problems(value)
    if fields:
        said = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:3])
        more = f"; and {len(fields) - 3} more" if len(fields) > 3 else ""
        raise ValidationError(f"invalid request: {said}{more} (expected {TEXT_EXPECTED})", {"fields": fields})
    return value


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", {"fields": []})
    check_text(data)
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
    if not isinstance(value, (dict, list)):
        return True
    stack = [(value, 1)]  # containers only: a push's many strings and numbers are looked at once
    while stack:
        v, d = stack.pop()
        if d > limit:
            return False
        for x in v.values() if isinstance(v, dict) else v:
            if isinstance(x, (dict, list)):
                stack.append((x, d + 1))
    return True


def loads_bounded(data: str | bytes, *, strict: bool = False, **kw) -> Any:
    """``json.loads`` that refuses (ValueError) what nests too deep for the code after it,
    instead of a RecursionError deep inside the parser or a later ``dumps``.  ``strict``:
    NaN and infinities are refused too, and orjson reads (:func:`kiosk.jsontext.loads`)."""
    import json

    from . import jsontext

    try:
        value = jsontext.loads(data) if strict else json.loads(data, **kw)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not json_depth_ok(value):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value
