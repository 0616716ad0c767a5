"""Canonical JSON (RFC 8785, JCS): one byte string per value, so that a
signature over it can be checked by anyone re-serialising nothing.

Every custody entry and manifest is canonicalised, several per clip, and the
reference implementation is pure Python. For the values we sign (strings,
integers in the IEEE-754 safe range, booleans, null, ASCII keys) the standard
library's compact, key-sorted, non-ASCII-preserving ``json.dumps`` produces
the same bytes: JCS escapes exactly ``"``, ``\\`` and the control characters,
with the same short forms and lower-case ``\\u00xx``, and sorts keys by UTF-16
code units, which for ASCII keys is Python's order. Anything else (a float,
whose JCS form is ECMAScript's number formatting; a non-ASCII key; an
integer JCS refuses) goes to the reference implementation. The equivalence
is tested against it (tests/test_canonical.py).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import rfc8785

_SAFE = (1 << 53) - 1
_fast = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


def _plain(value: Any) -> bool:
    """True when *value* holds only what the fast path serialises as JCS does."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -_SAFE <= v <= _SAFE:
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
            return False  # floats, subclasses, anything unusual: the reference decides
    return True


def canonical(value: Any) -> bytes:
    if _plain(value):
        with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate: the reference raises its own error
            return _fast(value).encode("utf-8")
    return rfc8785.dumps(value)
