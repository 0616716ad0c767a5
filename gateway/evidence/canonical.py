"""Canonical JSON (RFC 8785, JCS): one byte string per value, so that a
signature over it can be checked by anyone re-serialising nothing.

Every custody entry and manifest is canonicalised, several per clip, and the
reference implementation is pure Python. For the values we sign (strings,
integers in the IEEE-754 safe range, booleans, null, ASCII keys) the standard
library's compact, key-sorted, non-ASCII-preserving ``json.dumps`` produces
the same bytes: JCS escapes exactly ``"``, ``\\`` and the control characters,
with the same short forms and lower-case ``\\u00xx``, and sorts keys by UTF-16
code units, which for ASCII keys is Python's order. Floats: ECMAScript and
Python's ``repr`` both write the shortest digits that read back as the same
double (the closest of them on a tie), so a float ``repr`` writes without an
exponent is already its JCS form; an integral float in the safe integer
range is written as that integer (ECMAScript has no ``.0``; above it,
ECMAScript pads the shortest digits with zeros, not the exact value). Anything else (a float ``repr``
writes with an exponent, a non-ASCII key, an integer JCS refuses) goes to
the reference implementation. The equivalence is tested against it
(tests/test_canonical.py).
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import rfc8785

_SAFE = (1 << 53) - 1
_fast = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


def _plain(value: Any) -> bool | None:
    """True when *value* holds only what the fast path serialises as JCS
    does; None when it does once its integral floats are integers."""
    stack = [value]
    integral = False
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -_SAFE <= v <= _SAFE:
                continue
            return False
        if t is float:
            if v.is_integer():
                if -_SAFE <= v <= _SAFE:
                    integral = True
                    continue
                return False
            if math.isfinite(v) and "e" not in repr(v):
                continue
            return False
        if t is dict:
            for k in v:
                if type(k) is not str or not k.isascii():
                    return False
            stack.extend(v.values())
        elif t is list or t is tuple:
            stack.extend(v)
        else:
            return False  # subclasses, anything unusual: the reference decides
    return None if integral else True


def _integral_as_int(v: Any) -> Any:
    t = type(v)
    if t is float and v.is_integer():  # in the safe range: _plain said so
        return int(v)
    if t is dict:
        return {k: _integral_as_int(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [_integral_as_int(x) for x in v]
    return v


def canonical(value: Any) -> bytes:
    plain = _plain(value)
    if plain is not False:
        with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate: the reference raises its own error
            return _fast(value if plain else _integral_as_int(value)).encode("utf-8")
    return rfc8785.dumps(value)
