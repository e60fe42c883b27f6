"""kiosk/jsontext.py: orjson's speed, the standard library's text (what the cloud stores and
compares must not change form across an upgrade)."""

import json
import random

import pytest

from kiosk import jsontext

#: every ASCII control, DEL, Latin, the line separators, a BOM, astral characters, the escapes
_CHARS = [chr(i) for i in range(0x250)] + ["\u2028", "\u2029", "\ufeff", "😀", "\U0010ffff", '"', "\\", "/"]


def _value(rnd: random.Random, depth: int = 0):
    r = rnd.random()
    if depth > 4 or r < 0.5:
        kind = rnd.randrange(7)
        if kind == 0:
            return "".join(rnd.choice(_CHARS) for _ in range(rnd.randint(0, 8)))
        if kind == 1:  # floats of every magnitude, small ones written unlike repr by orjson
            return rnd.choice([1, -1]) * rnd.random() * 10 ** rnd.randint(-30, 30)
        if kind == 2:
            return rnd.choice([0.0, -0.0, 5e-324, 1e308, 1e-5, 1.5e-7, 0.1, 1e16, 123456789.125])
        if kind == 3:  # integers beyond 64 bits: orjson refuses to write them
            return rnd.randint(-2 ** 70, 2 ** 70)
        if kind == 4:
            return rnd.randint(-1000, 1000)
        return rnd.choice([None, True, False])
    if r < 0.75:
        return [_value(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    return {"".join(rnd.choice(_CHARS) for _ in range(rnd.randint(0, 4))): _value(rnd, depth + 1)
            for _ in range(rnd.randint(0, 4))}


@pytest.mark.parametrize("seed", range(4))
def test_compact_writes_what_json_dumps_writes(seed):
    rnd = random.Random(seed)
    for _ in range(3000):
        v = _value(rnd)
        for sort_keys in (True, False):
            for ensure_ascii in (True, False):
                assert jsontext.compact(v, sort_keys=sort_keys, ensure_ascii=ensure_ascii) == json.dumps(
                    v, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii), ascii(v)


@pytest.mark.parametrize("seed", range(4))
def test_loads_reads_what_json_loads_reads(seed):
    rnd = random.Random(seed)
    for _ in range(3000):
        v = _value(rnd)
        text = json.dumps(v, ensure_ascii=rnd.random() < 0.5)
        want = json.loads(text)
        for data in (text, text.encode("utf-8", "surrogatepass")):
            got = jsontext.loads(data)
            assert repr(got) == repr(want), text  # (repr: 1 and 1.0, -0.0 and 0.0 differ)


@pytest.mark.parametrize("value, text", [
    (1e-05, "1e-05"), (1e-07, "1e-07"), (7.970975626354963e-05, "7.970975626354963e-05"),  # orjson: 0.00001, 1e-7
    ("é\x7f", '"\\u00e9\\u007f"'),  # orjson: as themselves
    (2 ** 64, "18446744073709551616"),  # orjson: refused
    ({1: "a"}, '{"1":"a"}'),  # orjson: refused
    ("\ud800", '"\\ud800"'),  # orjson: refused
])
def test_where_orjson_writes_otherwise_the_standard_library_writes(value, text):
    assert jsontext.compact(value) == text


def test_what_json_has_not_is_refused_as_before():
    with pytest.raises(TypeError):
        jsontext.compact({"at": object()})
    with pytest.raises(ValueError):
        jsontext.loads("[NaN]")
    with pytest.raises(ValueError):
        jsontext.loads(b"\xff")
    assert jsontext.loads("18446744073709551616") == 2 ** 64  # orjson: a float
    assert jsontext.loads('"\\ud800"') == "\ud800"  # orjson: refused


def test_a_number_too_large_for_a_double_is_refused_not_read_as_infinity():
    with pytest.raises(ValueError):
        jsontext.loads('{"n": 1e400}')
    with pytest.raises(ValueError):
        jsontext.loads('{"n": -1e400, "big": 1234567890123456789012}')  # (the standard library's path)
