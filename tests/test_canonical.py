"""Canonical JSON: the fast path must give RFC 8785's bytes, always."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.evidence.canonical import canonical

TRICKY = [
    {"b": 1, "a": [True, False, None], "c": {"z": "", "y": "x"}},
    {"text": "引号\"反斜杠\\ 换行\n 制表\t 退格\b 换页\f 回车\r \x00 \x1f \x7f \u2028 😀"},
    {"n": (1 << 53) - 1, "m": -((1 << 53) - 1), "zero": 0},
    {"path": "DCIM/100MEDIA/ZFY_0001.MP4", "list": [1, "2", [3, [4]]]},
    {"float": 1.5, "exp": 1e21, "small": 5e-324},        # floats with an exponent: the reference path
    {"whole": 5.0, "neg": -0.0, "big": 1e20, "tenth": 0.1, "third": 1 / 3, "t": 1795797228.4797113,
     "edge": 1e-4, "below": 9.99e-5, "huge": 123456789012345680.0, "past_safe": 3.990848417296005e+16, "list": [2.5, 3.0]},
    {"ключ": 1, "a": 2, "\U0001f600": 3, "\ue000": 4},  # non-ASCII keys: the reference path
]


@pytest.mark.parametrize("value", TRICKY)
def test_canonical_json_is_rfc8785_for_tricky_values(value: dict[str, Any]) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_an_integer_rfc8785_refuses_is_refused() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical({"n": 1 << 60})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 60), 1 << 60) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_json_is_rfc8785_for_any_value(value: Any) -> None:
    try:
        want = rfc8785.dumps(value)
    except Exception as e:  # the reference refuses it: so must we, the same way
        with pytest.raises(type(e)):
            canonical(value)
        return
    assert canonical(value) == want


@settings(max_examples=1000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_canonical_json_writes_any_float_as_rfc8785_does(x: float) -> None:
    value = {"x": x, "in": [x, {"y": -x}]}
    assert canonical(value) == rfc8785.dumps(value)
