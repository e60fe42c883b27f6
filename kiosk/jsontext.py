"""JSON text the way the standard library writes and reads it, at orjson's speed.

The texts the cloud stores and compares (a ticket's canonical payload, a change's data, an
entry's checked text and the push digest made from it) must stay byte for byte what
``json.dumps`` wrote, or a retry that spans an upgrade would no longer match what an
earlier version stored.  orjson writes the same text for almost every JSON value, about
ten times faster; where it does not, or might not, :func:`compact` falls back to
``json.dumps``:

- orjson refuses the value: an integer beyond 64 bits, a lone surrogate, a key that is not
  a string, a type JSON does not have (the standard library then writes or refuses it);
- ``ensure_ascii`` and the text holds a character beyond ASCII or DEL (orjson writes it as
  itself, the standard library as ``\\uXXXX``);
- the text may hold a float below 1e-4 (``json.dumps`` writes ``1e-05``, orjson ``0.00001``
  and ``1e-7`` for ``1e-07``): any ``0.0000`` or a one-digit negative exponent.

A value for these functions is made of JSON's types and holds no NaN or infinity: JSON has
neither, and :func:`loads` refuses them (orjson would write ``null``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

_SORT = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS \
    | orjson.OPT_PASSTHROUGH_SUBCLASS
_KEEP = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
#: every digit as 1, anything else as 0 (a translation: a regex for 19 digits in a row scans a
#: push's body ten times slower than this and ``find``)
_DIGITS = bytes(1 if 0x30 <= b <= 0x39 else 0 for b in range(256))
#: 19 digits in a row: perhaps an integer orjson would read as a float (int64 has 19)
_LONG_DIGITS = b"\x01" * 19
#: a float orjson writes unlike ``repr``: ``0.0000…`` (repr: ``…e-05``), ``1e-7`` (repr: ``1e-07``)
_SMALL_FLOAT = re.compile(r"0\.0000|[0-9]e-[0-9](?![0-9])")


def _refuse(value: Any):
    """orjson's ``default``: anything it passes through (a str, int, dict or list subclass, a
    datetime, a dataclass) goes to the standard library, which decides."""
    raise TypeError


def compact(value: Any, *, sort_keys: bool = True, ensure_ascii: bool = True) -> str:
    """``json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii)``:
    the same text, or the same ``TypeError``/``ValueError``."""
    try:
        text = orjson.dumps(value, default=_refuse, option=_SORT if sort_keys else _KEEP).decode()
    except TypeError:  # (orjson.JSONEncodeError is a TypeError)
        text = None
    if text is None or (ensure_ascii and (not text.isascii() or "\x7f" in text)) \
            or (("0.0000" in text or "e-" in text) and _SMALL_FLOAT.search(text) is not None):
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    return text


def loads(data: str | bytes) -> Any:
    """``json.loads(data)``, but NaN, infinities and numbers too large for a double (1e400) are
    refused (ValueError), so what it returns :func:`compact` writes as ``json.dumps`` does.
    orjson reads it; what orjson refuses (a lone surrogate written ``"\\ud800"``: it parses, to
    be refused where it is used) goes to the standard library, and so does text with 19
    digits in a row (orjson would read an integer beyond 64 bits as a float)."""
    if _long_digits(data) is False:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # (a ValueError)
            pass
    return json.loads(data, parse_constant=_no_constant, parse_float=_finite)


def _long_digits(data: str | bytes) -> bool:
    if isinstance(data, (bytes, bytearray)):
        return data.translate(_DIGITS).find(_LONG_DIGITS) >= 0
    return re.search(r"[0-9]{19}", data) is not None  # (str: not a push's body)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):  # (1e400: JSON's syntax, no double's value)
        raise ValueError(f"{text[:40]} is too large a number")
    return value
