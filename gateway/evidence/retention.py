"""Retention by category, and the rule that every object proving something
about a clip is kept at least as long as the clip.

A clip's retention class is the longest of: its category's class, the
``important`` class when it is marked important, the ``case`` class when it
is assigned to a case. A clip without a category gets the ``uncategorised``
class, by default the longest there is: a short default for "non-evidence"
footage is how needed footage was deleted elsewhere (Kansas City's audit).
Nothing is ever kept shorter than six months (the config refuses it).

On S3 the class becomes each object's Object Lock retain-until (counted
from when the archive stores the clip); a later assignment only extends it:
a shorter date is refused and the longer one kept, so a category lowered
later shortens nothing.

The evidence graph (``Locks``): what proves something about a clip is its
media, manifest and signatures (Ed25519, SM2), its amendments and their
signatures, the custody segments holding entries about it and the
checkpoints (signature, RFC 3161 token) over those segments. Every one of
them is locked at least until the clip is, whenever it reaches the archive
and whenever the clip's date rises. A custody file covers many clips: it is
locked until the latest of theirs, rounded up to a whole UTC day, so a busy
day extends it once rather than once per clip. A legal hold belongs to the
case (the catalog's ``holds``): a clip archived into a held case, or
assigned to one later, is held with everything that proves something about
it; releasing the hold releases what no other held case needs.

What the archive is asked for is written to the catalog first (``locks``)
and applied after; an extension the archive does not take stays pending
with its attempts and last error and is tried again, with capped backoff,
until it succeeds (``retention report`` lists it). The rules live here,
below the pipeline (the forwarder) and the case tools
(``casefile/retention.py``: the report, legal hold by case).

Why ~400 lines in one module: the classes, the graph rule and the ledger
that applies it must agree on every date, and splitting them would put the
one rule issue 26 asks for in two places.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import re
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.archive import Archive, ArchiveError, ArchiveUnavailable
from gateway.catalog import Catalog, ClipLock, LockRow, Want
from gateway.config import Config, RetentionConfig
from gateway.errors import DockgateError
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX

log = logging.getLogger(__name__)
DAY_S = 86400


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
    """The layer that manages Object Lock: the S3 backend under any wrappers
    (or a wrapper that takes the calls itself); retention is an S3 matter."""
    inner: Any = archive
    while not hasattr(inner, "extend_retention") and hasattr(inner, "inner"):
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


# -- the evidence graph: what proves something about a clip ------------------------------------------------------

_SEGMENT = re.compile(r"^custody-.+-(\d+)\.jsonl$")
_CHECKPOINT = re.compile(r"^checkpoint-.+-(\d+)\.json(\.sig|\.tsr)?$")


def lock_on(cfg: Config) -> bool:
    """Does this station lock what it archives (S3 with Object Lock)?"""
    return cfg.archive.backend == "s3" and cfg.archive.retention_mode != "none"


def clip_until(cfg: Config, doc: dict[str, Any]) -> datetime | None:
    """The retain-until of a clip about to be archived: its class's, or
    ``archive.retention_days`` when retention by class is off; None when
    the archive does not lock."""
    if not lock_on(cfg):
        return None
    kept = manifest_retention(cfg.retention, doc)
    if kept is not None:
        return kept[1]
    return datetime.now(UTC) + timedelta(days=_archive_days(cfg))


def _archive_days(cfg: Config) -> int:
    """``archive.retention_days``: what an S3 archive locks an object for by default."""
    return int(getattr(cfg.archive, "retention_days", 0))


def clip_objects(key: str, extras: Iterable[str], amendment_keys: Iterable[str]) -> list[str]:
    """A clip's own objects: media, what was stored beside it (manifest,
    its Ed25519 and SM2 signatures), each amendment and its signature."""
    out = [key, *(key + s for s in extras)]
    for a in amendment_keys:
        out += [a, a + SIG_SUFFIX]
    return out


def custody_key(station: str, name: str) -> str:
    return f"custody/{station}/{name}"


class _Custody:
    """The custody files the station sealed, by the sequence numbers they
    name: ``custody-<station>-<first seq>.jsonl`` and
    ``checkpoint-<station>-<last seq>.json`` (with ``.sig`` and ``.tsr``)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.segments: list[tuple[int, str]] = []
        self.checkpoints: dict[int, list[str]] = {}
        for n in names:
            if m := _SEGMENT.match(n):
                self.segments.append((int(m.group(1)), n))
            elif m := _CHECKPOINT.match(n):
                self.checkpoints.setdefault(int(m.group(1)), []).append(n)
        self.segments.sort()
        self.firsts = [f for f, _ in self.segments]
        self.cps = sorted(self.checkpoints)

    def _segment_end(self, i: int) -> int | None:
        if i + 1 < len(self.segments):
            return self.segments[i + 1][0] - 1
        j = bisect.bisect_left(self.cps, self.segments[i][0])  # the checkpoint made when it was sealed
        return self.cps[j] if j < len(self.cps) else None

    def cover(self, seqs: Iterable[int]) -> set[str]:
        """The segment holding each entry and the checkpoint files over it
        (the first checkpoint at or after the entry: the one signed when
        its segment was sealed)."""
        out: set[str] = set()
        for s in seqs:
            i = bisect.bisect_right(self.firsts, s) - 1
            if i >= 0 and ((end := self._segment_end(i)) is None or s <= end):
                out.add(self.segments[i][1])
            j = bisect.bisect_left(self.cps, s)
            if j < len(self.cps):
                out.update(self.checkpoints[self.cps[j]])
        return out

    def span(self, name: str) -> tuple[int, int | None] | None:
        """The entries (first, last; None: not known yet) a custody file
        proves something about: the inverse of ``cover``."""
        if m := _SEGMENT.match(name):
            i = bisect.bisect_left(self.firsts, int(m.group(1)))
            if i < len(self.segments) and self.segments[i][1] == name:
                return self.segments[i][0], self._segment_end(i)
            return int(m.group(1)), None
        if m := _CHECKPOINT.match(name):
            seq = int(m.group(1))
            j = bisect.bisect_left(self.cps, seq)
            return (self.cps[j - 1] + 1 if j > 0 else 1), seq
        return None


def _day_up(ts: float) -> float:
    return math.ceil(ts / DAY_S) * DAY_S


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True)
class Pushed:
    """What the archive said to one pending lock: the date it now holds
    the object until (None: unknown or unlocked), or its error."""

    row: LockRow
    kept: float | None = None
    error: ArchiveError | None = None


class Locks:
    """The rule applied: every archived object that proves something about
    a clip is wanted locked at least until the clip, and held while the
    clip's case is held; the catalog keeps what is wanted and what the
    archive confirmed, and ``due``/``push``/``record`` bring the archive
    there (the forwarder's loop; ``apply`` at once for the command line).
    Catalog calls stay on the caller's thread; ``push`` alone talks to the
    archive and may run in a worker thread. *announce*: record custody
    events (the daemon); the command line leaves that to it."""

    def __init__(self, catalog: Catalog, cfg: Config, archive: Archive, *, announce: bool = True) -> None:
        self.catalog = catalog
        self.cfg = cfg
        self.archive = archive
        self.announce = announce
        self.on = lock_on(cfg)
        #: while extensions fail: (since, error) of the first failure, for one event each way
        self._failing: tuple[float, str] | None = None
        #: the custody files by seq and the archived ones, as of a catalog version (years of segments:
        #: read again only when one is sealed or archived, not for every clip)
        self._graph: tuple[tuple[int, int], _Custody, set[str]] | None = None

    def _custody(self) -> tuple[_Custody, set[str]]:
        version = self.catalog.custody_version()
        if self._graph is None or self._graph[0] != version:
            files = self.catalog.custody_files()
            self._graph = (version, _Custody(n for n, _ in files), {n for n, done in files if done})
        return self._graph[1], self._graph[2]

    # -- what proves something about a clip ----------------------------------------------------
    def objects_of(self, clip: ClipLock) -> tuple[list[str], list[str]]:
        """(the clip's own archived objects, the archived custody files over its entries)."""
        own = clip_objects(clip.archive_key, clip.extras.split(), self.catalog.archived_amendment_keys(clip.sha256))
        graph, archived = self._custody()
        covering = graph.cover(self.catalog.custody_seqs(clip.sha256))
        station = self.cfg.station.id
        return own, sorted(custody_key(station, n) for n in covering if n in archived)

    def _raise(self, clip: ClipLock, before: float | None, *, new: Collection[str] = (),
               fresh: Collection[str] = (), stored_until: float | None = None) -> None:
        """Want every object of *clip* locked until its date (and held if
        its case is). *before*: the date its objects were locked until
        (None: never); *new*: its objects the archive holds with no date we
        know; *fresh*: those just stored locked until *stored_until*. An
        object whose lock does not change is not asked again."""
        held = True if clip.case_number and clip.case_number in self.catalog.held_cases() else None
        own, custody = self.objects_of(clip)
        wanted: dict[str, Want] = {}
        for k in own:
            applied = stored_until if k in fresh else None
            rowless = None if k in new or before is None else before
            known = applied if applied is not None else rowless
            if held is None and known is not None and known >= clip.until:
                continue  # locked as wanted already, not held: nothing to ask, nothing to keep
            wanted[k] = Want(clip.until, held, applied, rowless)
        self.catalog.want_locks(wanted)
        self.catalog.want_locks({k: Want(_day_up(clip.until), held) for k in custody}, keep=True)

    def clip_archived(self, sha256: str, key: str, extras: Sequence[str], until: datetime, case: str | None,
                      stored: bool) -> None:
        """A clip's media and *extras* (suffixes) are archived, locked until
        *until* when *stored* (not found there already)."""
        if not self.on:
            return
        with self._atomic():
            before = self.catalog.clip_lock(sha256)
            clip = self.catalog.raise_clip_lock(sha256, key, " ".join(extras), until.timestamp(), case or None)
            objects = [key, *(key + s for s in extras)]
            self._raise(clip, before.until if before else None, new=() if stored else objects,
                        fresh=objects if stored else (), stored_until=until.timestamp())

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One transaction (a savepoint of the caller's group) for a clip's
        date and the rows it asks for: a clip whose date rose without them
        would keep its objects short for good (no row reads as "locked
        until the clip's date")."""
        with self.catalog.group(), self.catalog.tx():
            yield

    def amendment_archived(self, sha256: str, media_key: str, doc: dict[str, Any], key: str | None = None) -> None:
        """An amendment of the clip is archived (as *key*; None: not known,
        every amendment is asked again): the clip's date rises to the
        amendment's class (never falls), its case is the amendment's when
        it names one, and everything about the clip follows."""
        if not self.on:
            return
        with self._atomic():
            self._amended(sha256, media_key, doc, key)

    def _amended(self, sha256: str, media_key: str, doc: dict[str, Any], key: str | None) -> None:
        cls = amendment_class(self.cfg.retention, doc) if self.cfg.retention.enabled else None
        clip = self.catalog.clip_lock(sha256)
        base = clip.until if clip else (datetime.now(UTC) + timedelta(days=_archive_days(self.cfg))).timestamp()
        until = max(base, until_for(self.cfg.retention, cls).timestamp()) if cls else base
        extras = "" if clip else f"{MANIFEST_SUFFIX} {MANIFEST_SUFFIX}{SIG_SUFFIX}"  # archived before this version
        now = self.catalog.raise_clip_lock(sha256, media_key, extras, until, doc.get("case_number") or None)
        amendments = [key] if key else self.catalog.archived_amendment_keys(sha256)
        self._raise(now, clip.until if clip else None, new=[k for a in amendments for k in (a, a + SIG_SUFFIX)])
        if clip and clip.case_number and clip.case_number != now.case_number \
                and clip.case_number in self.catalog.held_cases():  # moved out of a held case
            self._settle_holds(*self._objects([now]))

    def custody_archived(self, name: str) -> None:
        """A custody segment or checkpoint file is archived: locked until
        the latest of the clips it proves something about, held if any of
        them is."""
        if not self.on:
            return
        span = self._custody()[0].span(name)
        clips = self.catalog.clips_with_entries(*span) if span else []
        if not clips:
            return
        held_cases = self.catalog.held_cases()
        held = True if any(c.case_number in held_cases for c in clips if c.case_number) else None
        until = _day_up(max(c.until for c in clips))
        self.catalog.want_locks({custody_key(self.cfg.station.id, name): Want(until, held)}, keep=True)

    def _objects(self, clips: Iterable[ClipLock]) -> tuple[dict[str, float], set[str]]:
        """(each of *clips*' own objects with its clip's date, the custody files over them)."""
        own: dict[str, float] = {}
        custody: set[str] = set()
        for c in clips:
            mine, files = self.objects_of(c)
            own.update(dict.fromkeys(mine, c.until))  # a clip's own keys are its own: no two clips share one
            custody.update(files)
        return own, custody

    def hold(self, case: str, on: bool, also: Iterable[str] = ()) -> list[str]:
        """Put *case* under legal hold or release it: every object of its
        clips (and *also*, objects the catalog has no clip for), held or,
        on release, held only if another held case still needs it. The
        hold stays with the case: clips archived into it or assigned to it
        later are held too."""
        with self._atomic():
            self.catalog.set_hold(case, on)
            own, custody = self._objects(self.catalog.clips_of_case(case))
            others = set(also) - own.keys() - custody
            if on:
                self.catalog.want_locks({k: Want(None, True, rowless=u) for k, u in own.items()}
                                        | {k: Want(None, True) for k in others})
                self.catalog.want_locks({k: Want(None, True) for k in custody}, keep=True)
            else:
                self._settle_holds(own, custody, others)
        return sorted({*own, *custody, *others})

    def _settle_holds(self, own: dict[str, float], custody: set[str], others: Iterable[str] = ()) -> None:
        """Each of these objects held exactly when a clip of a held case
        needs it (*own*: a clip's, with its clip's date)."""
        still: set[str] = set()
        for case in self.catalog.held_cases():
            held_own, held_custody = self._objects(self.catalog.clips_of_case(case))
            still.update(held_own, held_custody)
        self.catalog.want_locks({k: Want(None, k in still, rowless=u) for k, u in own.items()}
                                | {k: Want(None, k in still) for k in others})
        self.catalog.want_locks({k: Want(None, k in still) for k in custody}, keep=True)

    # -- bringing the archive there ---------------------------------------------------------------
    def due(self, now: float | None = None, *, quiet: bool = False) -> list[LockRow]:
        """Pending locks whose (backed-off) time has come; every pending one
        for *now* = inf. Holds set or released since are announced first
        (custody events), unless *quiet* (after the custody log's last seal)."""
        if self.announce and not quiet:
            self._announce_holds()
        return self.catalog.due_locks(time.time() if now is None else now)

    def push(self, rows: Sequence[LockRow]) -> list[Pushed]:
        """Ask the archive for each row's lock. Archive calls only: safe in
        a worker thread. Once the archive is unreachable the rest are not
        tried (each would wait for its own timeout)."""
        s3 = s3_of(self.archive)
        out: list[Pushed] = []
        down: ArchiveError | None = None
        for r in rows:
            if down is not None:
                out.append(Pushed(r, error=down))
                continue
            try:
                kept = None
                if r.wanted is not None and (r.applied is None or r.applied < r.wanted):
                    got = s3.extend_retention(r.key, _dt(r.wanted))
                    kept = got.timestamp() if isinstance(got, datetime) else None
                if r.hold != r.applied_hold:
                    s3.set_legal_hold(r.key, bool(r.hold))
                out.append(Pushed(r, kept=kept))
            except ArchiveError as e:
                out.append(Pushed(r, error=e))
                if isinstance(e, ArchiveUnavailable):
                    down = e
        return out

    def record(self, pushed: Sequence[Pushed], now: float | None = None) -> list[Pushed]:
        """Write what the archive said; the failures, each tried again
        after capped exponential backoff (``forward.retry_initial_s`` to
        ``retry_max_s``). Events: one when extensions start failing, one
        when every one is applied again."""
        now = time.time() if now is None else now
        f = self.cfg.forward
        failed = [p for p in pushed if p.error is not None]
        for p in pushed:
            if p.error is None:
                self.catalog.lock_applied(p.row.key, p.kept, bool(p.row.hold))
        self.catalog.lock_failed((p.row.key, str(p.error), now + min(
            f.retry_max_s, f.retry_initial_s * 2 ** min(p.row.attempts, 30)) * random.uniform(0.8, 1.2))
            for p in failed)
        if failed:
            log.warning("%d retention/legal hold extensions not applied (%s); tried again later", len(failed),
                        failed[0].error)
        if self.announce and failed and self._failing is None:
            self._failing = (now, str(failed[0].error))
            self.catalog.emit("retention_pending", objects=len(self.catalog.pending_locks()),
                              error=str(failed[0].error), reason=failed[0].error.reason if failed[0].error else None)
        elif self.announce and self._failing is not None and not failed and not self.catalog.pending_locks():
            since, _ = self._failing
            self._failing = None
            self.catalog.emit("retention_applied", after_s=round(now - since, 1))
        return failed

    def apply(self) -> list[Pushed]:
        """Every pending lock, now (the command line); the failures."""
        return self.record(self.push(self.due(math.inf)))

    def _announce_holds(self) -> None:
        rows = self.catalog.holds_to_announce()
        for h in rows:
            clips = len(self.catalog.clips_of_case(h.case_number))
            if h.released_at is None:
                self.catalog.emit("legal_hold_set", case_number=h.case_number, clips=clips)
            else:
                self.catalog.emit("legal_hold_released", case_number=h.case_number, clips=clips)
        if rows:
            self.catalog.hold_announced(rows)
