"""Canonical JSON (RFC 8785, JCS): one byte string per value, so that a
signature over it can be checked by anyone re-serialising nothing."""

from __future__ import annotations

from typing import Any

import rfc8785


def canonical(value: Any) -> bytes:
    return rfc8785.dumps(value)
