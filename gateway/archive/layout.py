"""Archive keys from the configured template (officer first: 一人一档)."""

from __future__ import annotations

import os
import unicodedata
from datetime import UTC, datetime

#: bytes (UTF-8) per key component: with the temp-file and manifest-signature
#: suffixes a file name stays well under the 255 bytes filesystems allow
_MAX_PART_BYTES = 120


def safe_part(value: str | None, fallback: str) -> str:
    """A key component that is safe on every filesystem and S3: letters and
    digits of any script, '.', '_', '-'; anything else becomes '_'."""
    if not value:
        return fallback
    out = "".join(c if (c.isalnum() or c in "._-") and unicodedata.category(c)[0] != "C" else "_"
                  for c in value)
    out = out.strip(".")
    raw = out.encode("utf-8")
    if len(raw) > _MAX_PART_BYTES:
        out = raw[:_MAX_PART_BYTES].decode("utf-8", "ignore")  # cut at a character boundary
    return out or fallback


def clip_key(template: str, *, sha256: str, officer: str | None, serial: str, station: str,
             unit: str | None, original_name: str, captured: float) -> str:
    """*captured*: the clip's capture time (UTC seconds), which files it by day."""
    stem, ext = os.path.splitext(os.path.basename(original_name))
    when = datetime.fromtimestamp(captured, tz=UTC)
    fields = {
        "officer": safe_part(officer, "unknown-officer"),
        "serial": safe_part(serial, "unknown-serial"),
        "station": safe_part(station, "station"),
        "unit": safe_part(unit, "unknown-unit"),
        "date": when.strftime("%Y-%m-%d"),
        "year": when.strftime("%Y"), "month": when.strftime("%m"), "day": when.strftime("%d"),
        "stem": safe_part(stem, "clip"),
        "ext": ("." + safe_part(ext[1:], "bin")) if len(ext) > 1 else "",
        "sha256": sha256, "sha8": sha256[:8],
    }
    return template.format(**fields)
