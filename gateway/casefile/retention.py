"""Retention and legal hold at case scale: the retention report (with the
extensions still pending), legal hold set and released per case, and the
selected clips brought up to their class after an assignment. The rules
themselves (classes, lock dates, what proves something about a clip, the
hold that belongs to the case) are ``gateway/evidence/retention.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.archive import Archive, ArchiveError
from gateway.casefile.source import ClipEvidence, Selection, collect
from gateway.catalog import Catalog
from gateway.config import Config, RetentionConfig
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX
from gateway.evidence.retention import Extended, Locks, Pushed, class_for, extend, s3_of, until_for


def clip_class(cfg: RetentionConfig, c: ClipEvidence) -> str:
    return class_for(cfg, c.latest("category"), c.important, c.case_number)


def clip_objects(c: ClipEvidence) -> Iterator[str]:
    """Every object of one clip: media, manifest, signatures, amendments."""
    yield c.key
    yield c.key + MANIFEST_SUFFIX
    yield c.key + MANIFEST_SUFFIX + SIG_SUFFIX
    yield from c.extra_keys
    for _, ak, _ in c.amendments:
        yield ak
        yield ak + SIG_SUFFIX


def apply_classes(archive: Archive, cfg: RetentionConfig, sel: Selection) -> list[Extended]:
    """Bring every object of the selected clips up to its clip's class
    (after an assignment): only ever later."""
    out = []
    for c in collect(archive, sel).clips:
        until = until_for(cfg, clip_class(cfg, c))
        out += extend(archive, list(clip_objects(c)), until)
    return out


@dataclass(frozen=True)
class Hold:
    #: every object the hold (or its release) is asked of
    keys: list[str]
    #: what the archive did not take now (kept in the catalog; the station tries again)
    failed: list[Pushed]
    #: the archive could not be listed: the objects are the catalog's alone
    unlisted: ArchiveError | None = None


def legal_hold(archive: Archive, catalog: Catalog, cfg: Config, case: str, on: bool) -> Hold:
    """Set or release the legal hold of *case*: recorded with the case in
    the catalog (clips assigned to it later are held too, with what proves
    something about them) and applied to every object of its clips now:
    the ones the station's catalog knows and those the archive files under
    the case (archived before the catalog kept locks)."""
    s3_of(archive)  # an S3 archive with Object Lock, or RetentionError
    unlisted = None
    try:
        also = [k for c in collect(archive, Selection(case=case)).clips for k in clip_objects(c)]
    except ArchiveError as e:
        also, unlisted = [], e
    locks = Locks(catalog, cfg, archive, announce=False)
    keys = locks.hold(case, on, also)
    return Hold(keys, locks.apply(), unlisted)


@dataclass(frozen=True)
class Row:
    key: str
    case: str | None
    category: str | None
    cls: str
    until: datetime | None
    hold: bool


def report(archive: Archive, cfg: RetentionConfig) -> list[Row]:
    """Every clip with its class, the date its media is locked until, and
    legal hold; soonest to expire first."""
    s3 = s3_of(archive)
    rows = [Row(c.key, c.case_number, c.latest("category"), clip_class(cfg, c), s3.retain_until(c.key),
                s3.legal_hold(c.key)) for c in collect(archive, Selection()).clips]
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r.until or far, r.key))
