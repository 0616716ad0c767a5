"""The catalog's part of retention and legal hold: the facts the rule in
``gateway/evidence/retention.py`` reads (each archived clip's lock date and
case, its amendments' keys, the custody entries about it, the archived
custody files, the held cases) and what it decides (each archived object's
wanted lock). An object's row keeps what the archive last confirmed
(``applied``), so an extension the archive did not take stays pending,
with its attempts and last error, until it does. SQL only; no rule here.

A year holds some 750 000 archived objects, nearly all of them a clip's own
(media, manifest, signatures) locked exactly until their clip's date and
not held. They keep no row (issue 30: the catalog under 1 KiB a clip with
Object Lock on): a clip's own object without a row is one the archive holds
locked at least until its clip's ``until``. A row is kept while the archive
does not hold what is wanted, while the object is held (or was, until the
archive confirms the release), and always for custody files (``keep``:
their date follows many clips).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from gateway.catalog.records import from_row, hash_sql, stored_hash, unpacked_seqs
from gateway.catalog.schema import LOCK_PENDING as _PENDING
from gateway.catalog.schema import LOCK_SETTLED
from gateway.catalog.store import CatalogError, Store

#: a clip's lock as ``ClipLock``: the archive key and suffixes it does not store are its clip's own. From a lock
#: to its clip by the item's hash (clips have no index by item), from a clip to its lock by the item's id
_CLIP_LOCK = ("SELECT " + hash_sql("c.sha256") + " AS sha256, coalesce(l.archive_key, nullif(c.archive_key, ''), "
              "'unstamped/' || " + hash_sql("c.sha256") + ") AS archive_key, coalesce(x.suffixes, '') AS extras, "
              "l.until, l.case_number FROM clip_locks l JOIN items i ON i.id = l.item "
              "JOIN clips c ON c.sha256 = i.sha256 AND c.item_id = l.item LEFT JOIN lock_extras x ON x.id = l.extras")


class Want(NamedTuple):
    """What the rule wants of one archived object."""

    #: locked until (epoch seconds; only ever raised); None: no date asked
    until: float | None
    #: legal hold on or off; None: as it is
    hold: bool | None
    #: the date the archive is known to hold it until now (it was just stored with it)
    applied: float | None = None
    #: the date the archive holds it until if the catalog keeps no row for it: a clip's own object, settled
    #: at its clip's date (None: not known, e.g. an object the archive had before it was asked)
    rowless: float | None = None


@dataclass(frozen=True)
class ClipLock:
    """An archived clip as retention sees it."""

    sha256: str
    archive_key: str
    #: suffixes of the objects archived beside its media (manifest, signatures), space-separated
    extras: str
    #: the date (epoch seconds) the clip is to be kept until: the longest it was ever given
    until: float
    case_number: str | None


@dataclass(frozen=True)
class LockRow:
    key: str
    wanted: float | None
    hold: int
    applied: float | None
    applied_hold: int
    attempts: int
    next_try_at: float
    error: str | None
    pending_since: float | None
    #: kept once settled (custody files); else dropped then (``want_locks``)
    keep: int = 0


@dataclass(frozen=True)
class HoldRow:
    case_number: str
    since: float
    released_at: float | None


class LockStore(Store):
    """Retention's tables (``schema.py``, migration 7)."""

    # -- clips ---------------------------------------------------------------------------
    def clip_lock(self, sha256: str) -> ClipLock | None:
        row = self.db.execute(_CLIP_LOCK + " WHERE c.sha256=?", (stored_hash(sha256),)).fetchone()
        return from_row(ClipLock, row) if row else None

    def raise_clip_lock(self, sha256: str, key: str, extras: str, until: float, case: str | None) -> ClipLock:
        """Record an archived clip's lock: never earlier than it was (the
        longest date wins), its case the newest one given."""
        with self.tx() as db:
            clip = db.execute("SELECT item_id, " + hash_sql("sha256") + ", archive_key FROM clips WHERE sha256=?",
                              (stored_hash(sha256),)).fetchone()
            if clip is None:
                raise CatalogError(f"clip {sha256[:12]} is not in the catalog: its lock cannot be recorded")
            item, hexsha, own_key = clip
            ref = None
            if extras:
                db.execute("INSERT OR IGNORE INTO lock_extras (suffixes) VALUES (?)", (extras,))
                (ref,) = db.execute("SELECT id FROM lock_extras WHERE suffixes=?", (extras,)).fetchone()
            db.execute("INSERT INTO clip_locks (item, until, case_number, extras, archive_key) VALUES (?,?,?,?,?) "
                       "ON CONFLICT (item) DO UPDATE SET until=max(until, excluded.until), "
                       "case_number=coalesce(excluded.case_number, case_number), "
                       "extras=coalesce(excluded.extras, extras)",
                       (item, until, case, ref, None if key == (own_key or f"unstamped/{hexsha}") else key))
            # (``_CLIP_LOCK`` reads an empty key as none, as ``or`` does here)
        found = self.clip_lock(sha256)
        assert found is not None
        return found

    def clips_of_case(self, case: str) -> list[ClipLock]:
        rows = self.db.execute(_CLIP_LOCK + " WHERE l.case_number=? ORDER BY c.sha256", (case,))
        return [from_row(ClipLock, r) for r in rows.fetchall()]

    def clips_with_entries(self, lo: int, hi: int | None) -> list[ClipLock]:
        """Archived clips with custody entries numbered *lo* to *hi* (None: no end), asked when a custody file
        is archived. ``clip_trail`` holds them by clip (issue 30: the trail and every lock ask by clip), so a
        file's range is read from the outbox's events by their custody number (``events_custody``) while the
        outbox holds them all, as it does until the file is archived (``Catalog.prune_events``); else (pruned
        meanwhile) by a walk of every clip's entries."""
        top = hi if hi is not None else 2 ** 62
        pruned = self.db.execute("SELECT custody_upto FROM events_pruned WHERE id=1").fetchone()
        if pruned is None or pruned[0] is None or pruned[0] < lo:
            about = {r[0] for r in self.db.execute(
                "SELECT DISTINCT json_extract(data, '$.sha256') FROM events WHERE custody_seq IS NOT NULL "
                "AND custody_seq BETWEEN ? AND ?", (lo, top)) if isinstance(r[0], str)}
            return [c for h in sorted(about) if (c := self.clip_lock(h)) is not None]
        items = [item for item, seqs in self.db.execute("SELECT item, seqs FROM clip_trail")
                 if any(lo <= s <= top for s in unpacked_seqs(seqs))]
        found = (self.db.execute(_CLIP_LOCK + " WHERE l.item=?", (item,)).fetchone() for item in items)
        return [from_row(ClipLock, r) for r in found if r is not None]

    def custody_seqs(self, sha256: str) -> list[int]:
        row = self.db.execute("SELECT t.seqs FROM clips c JOIN clip_trail t ON t.item=c.item_id WHERE c.sha256=?",
                              (stored_hash(sha256),)).fetchone()
        return unpacked_seqs(row[0] if row else None)

    def archived_amendment_keys(self, sha256: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT archive_key FROM amendments WHERE sha256=? AND "
                                              "state='archived' AND archive_key IS NOT NULL ORDER BY id",
                                              (stored_hash(sha256),))]

    def custody_files(self) -> list[tuple[str, bool]]:
        """Every custody segment and checkpoint file the station sealed, and
        whether the archive holds it yet."""
        return [(r[0], r[1] == "archived") for r in self.db.execute("SELECT name, state FROM segments")]

    def custody_version(self) -> tuple[int, int]:
        """Changes whenever a custody file is sealed or archived (a cache key)."""
        (last,) = self.db.execute("SELECT max(rowid) FROM segments").fetchone()
        (sealed,) = self.db.execute("SELECT count(*) FROM segments WHERE state='sealed'").fetchone()
        return int(last or 0), int(sealed)  # rows only come (rowid up) and leave 'sealed' (count down)

    # -- objects ---------------------------------------------------------------------------
    def want_locks(self, wanted: Mapping[str, Want], *, keep: bool = False) -> int:
        """For each key, what the rule wants of it (``Want``). A date only
        ever raises the wanted one; a hold of None leaves it as it is. A
        row the archive then holds as wanted, not held, goes (a clip's own
        object is locked until its clip's date), unless *keep*. Returns how
        many objects wait for the archive now."""
        now = time.time()
        with self.tx() as db:
            for key, (until, hold, applied, rowless) in wanted.items():
                db.execute("INSERT INTO locks (key, wanted, hold, applied, keep) VALUES (?1,?2,?3,coalesce(?4,?6),?7) "
                           "ON CONFLICT (key) DO UPDATE SET wanted=CASE WHEN excluded.wanted IS NULL THEN wanted "
                           "WHEN wanted IS NULL THEN excluded.wanted ELSE max(wanted, excluded.wanted) END, "
                           "hold=CASE WHEN ?5 IS NULL THEN hold ELSE excluded.hold END, "
                           "applied=CASE WHEN ?4 IS NULL THEN applied WHEN applied IS NULL "
                           "THEN ?4 ELSE max(applied, ?4) END, keep=max(keep, excluded.keep)",
                           (key, until, int(bool(hold)), applied, hold, rowless, int(keep)))
                # newly pending: due now (one already pending keeps its backoff)
                db.execute(f"UPDATE locks SET next_try_at=0, attempts=0, pending_since=? "
                           f"WHERE key=? AND pending_since IS NULL AND {_PENDING}", (now, key))
                db.execute(f"DELETE FROM locks WHERE key=? AND keep=0 AND {LOCK_SETTLED}", (key,))
            (n,) = db.execute(f"SELECT count(*) FROM locks WHERE {_PENDING}").fetchone()
        return int(n)

    def lock(self, key: str) -> LockRow | None:
        """*key*'s row; None when the catalog keeps none (a clip's own object
        the archive holds as its clip wants, or one never asked for)."""
        row = self.db.execute("SELECT * FROM locks WHERE key=?", (key,)).fetchone()
        return from_row(LockRow, row) if row else None

    def due_locks(self, now: float, limit: int = 500) -> list[LockRow]:
        rows = self.db.execute(f"SELECT * FROM locks WHERE {_PENDING} AND next_try_at <= ? "
                               f"ORDER BY next_try_at, key LIMIT ?", (now, limit))
        return [from_row(LockRow, r) for r in rows.fetchall()]

    def pending_locks(self) -> list[LockRow]:
        rows = self.db.execute(f"SELECT * FROM locks WHERE {_PENDING} ORDER BY pending_since, key")
        return [from_row(LockRow, r) for r in rows.fetchall()]

    def next_lock_at(self) -> float | None:
        row = self.db.execute(f"SELECT min(next_try_at) FROM locks WHERE {_PENDING}").fetchone()
        return None if row[0] is None else float(row[0])

    def lock_applied(self, key: str, applied: float | None, hold: bool) -> bool:
        """The archive holds *key* locked until *applied* with legal hold
        *hold*. True when nothing more is wanted of it."""
        with self.tx() as db:
            found = db.execute("UPDATE locks SET applied=max(coalesce(applied, 0), coalesce(?, 0)), applied_hold=?, "
                               "error=NULL WHERE key=?", (applied, int(hold), key)).rowcount
            if not found and hold:  # released (and its row gone) while the archive was setting the hold: undo it
                db.execute("INSERT INTO locks (key, applied, applied_hold, pending_since) VALUES (?,?,1,?)",
                           (key, applied, time.time()))
            still = db.execute(f"SELECT 1 FROM locks WHERE key=? AND {_PENDING}", (key,)).fetchone()
            if not still:
                db.execute("UPDATE locks SET attempts=0, next_try_at=0, pending_since=NULL WHERE key=?", (key,))
                db.execute(f"DELETE FROM locks WHERE key=? AND keep=0 AND {LOCK_SETTLED}", (key,))
        return still is None

    def lock_failed(self, failed: Iterable[tuple[str, str, float]]) -> None:
        """(key, error, when to try again) of extensions the archive did not take."""
        with self.tx() as db:
            for key, error, at in failed:
                db.execute("UPDATE locks SET attempts=attempts+1, error=?, next_try_at=? WHERE key=?",
                           (error[:500], at, key))

    # -- legal holds: they belong to the case -------------------------------------------------
    def set_hold(self, case: str, on: bool) -> None:
        with self.tx() as db:
            if on:
                db.execute("INSERT INTO holds (case_number, since) VALUES (?,?) ON CONFLICT (case_number) DO "
                           "UPDATE SET since=CASE WHEN released_at IS NULL THEN since ELSE excluded.since END, "
                           "announced=CASE WHEN released_at IS NULL THEN announced ELSE 0 END, released_at=NULL",
                           (case, time.time()))
            else:
                db.execute("UPDATE holds SET released_at=?, announced=0 WHERE case_number=? AND "
                           "released_at IS NULL", (time.time(), case))

    def held_cases(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT case_number FROM holds WHERE released_at IS NULL")}

    def holds_to_announce(self) -> list[HoldRow]:
        rows = self.db.execute("SELECT case_number, since, released_at FROM holds WHERE announced=0 "
                               "ORDER BY case_number")
        return [from_row(HoldRow, r) for r in rows.fetchall()]

    def hold_announced(self, rows: Iterable[HoldRow]) -> None:
        with self.tx() as db:
            for r in rows:
                db.execute("UPDATE holds SET announced=1 WHERE case_number=? AND released_at IS ?",
                           (r.case_number, r.released_at))
