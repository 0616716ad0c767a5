"""Retention by category: how long the archive must keep each object.

A clip's retention class is the longest of: its category's class, the
``important`` class when it is marked important, the ``case`` class when it
is assigned to a case. A clip without a category gets the ``uncategorised``
class, by default the longest there is: a short default for "non-evidence"
footage is how needed footage was deleted elsewhere (Kansas City's audit).
Nothing is ever kept shorter than six months (the config refuses it).

On S3 the class becomes each object's Object Lock retain-until (clip,
manifest, signature, counted from when the archive stores it); a later
assignment only extends it (``extend``): a shorter date is refused and the
longer one kept. Legal hold is the S3 legal-hold flag, set and released per
case on every object of the case's clips.

The rules live here, below the pipeline (the forwarder locks each object as
it archives it) and the case tools (``casefile/retention.py``: the report,
legal hold, a case's clips brought up to their class).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.archive import Archive
from gateway.config import RetentionConfig
from gateway.errors import DockgateError
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX


class RetentionError(DockgateError):
    """Retention cannot be managed on this archive."""

    reason = "retention"


def days_of(cfg: RetentionConfig, cls: str) -> int:
    days = cfg.classes[cls]
    return cfg.permanent_days if days == "permanent" else int(days)


def class_for(cfg: RetentionConfig, category: str | None, important: bool, case: str | None) -> str:
    """The retention class of a clip (the longest that applies)."""
    if category and category in cfg.categories:
        candidates = [cfg.categories[category]]
    elif cfg.uncategorised is not None:
        candidates = [cfg.uncategorised]
    else:  # no category, or one the table does not know: the longest class, provisionally
        candidates = [max(cfg.classes, key=lambda c: days_of(cfg, c))]
    if important and cfg.important:
        candidates.append(cfg.important)
    if case and cfg.case:
        candidates.append(cfg.case)
    return max(candidates, key=lambda c: days_of(cfg, c))


def until_for(cfg: RetentionConfig, cls: str, start: datetime | None = None) -> datetime:
    return (start or datetime.now(UTC)) + timedelta(days=days_of(cfg, cls))


def manifest_retention(cfg: RetentionConfig, doc: dict[str, Any]) -> tuple[str, datetime] | None:
    """(class, retain-until) for a clip about to be archived, from its
    manifest; None when retention by class is off."""
    if not cfg.enabled:
        return None
    cls = class_for(cfg, doc.get("category"), bool((doc.get("importance") or {}).get("important")),
                    doc.get("case_number"))
    return cls, until_for(cfg, cls)


def s3_of(archive: Archive) -> Any:
    """The S3 backend under any wrappers; retention is an S3 Object Lock matter."""
    inner: Any = archive
    while hasattr(inner, "inner"):
        inner = inner.inner
    if not hasattr(inner, "extend_retention"):
        raise RetentionError(f"{archive.describe()}: retention and legal hold need an S3 archive with Object Lock")
    return inner


@dataclass(frozen=True)
class Extended:
    key: str
    wanted: datetime
    kept_until: datetime | None

    @property
    def refused_shorter(self) -> bool:
        return self.kept_until is not None and self.kept_until > self.wanted


def extend(archive: Archive, keys: list[str], until: datetime) -> list[Extended]:
    """Lock each key until *until*, unless it is already locked longer (kept)."""
    s3 = s3_of(archive)
    return [Extended(k, until, s3.extend_retention(k, until)) for k in keys]


def amendment_class(cfg: RetentionConfig, doc: dict[str, Any]) -> str | None:
    """The class an amendment asks for (the longest of its category's,
    important, case), None when it asks for none."""
    candidates = []
    if doc.get("category") in cfg.categories:
        candidates.append(cfg.categories[doc["category"]])
    if doc.get("important") and cfg.important:
        candidates.append(cfg.important)
    if doc.get("case_number") and cfg.case:
        candidates.append(cfg.case)
    return max(candidates, key=lambda c: days_of(cfg, c)) if candidates else None


def extend_for_amendment(archive: Archive, cfg: RetentionConfig, media_key: str, amendment_key: str,
                         doc: dict[str, Any]) -> list[Extended]:
    """After an amendment is archived: its clip's objects kept at least as
    long as the amendment's class asks (never shorter than now)."""
    if not cfg.enabled or (cls := amendment_class(cfg, doc)) is None:
        return []
    keys = [media_key, media_key + MANIFEST_SUFFIX, media_key + MANIFEST_SUFFIX + SIG_SUFFIX,
            amendment_key, amendment_key + SIG_SUFFIX]
    return extend(archive, keys, until_for(cfg, cls))
