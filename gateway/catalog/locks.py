"""The catalog's part of retention and legal hold: the facts the rule in
``gateway/evidence/retention.py`` reads (each archived clip's lock date and
case, its amendments' keys, the custody entries about it, the archived
custody files, the held cases) and what it decides (each archived object's
wanted lock). Each object's row keeps what the archive last confirmed
(``applied``), so an extension the archive did not take stays pending,
with its attempts and last error, until it does. SQL only; no rule here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.catalog.records import from_row, stored_hash, unpacked_seqs
from gateway.catalog.store import Store

#: a lock row the archive does not yet hold as wanted (the partial index ``locks_pending`` is on this)
_PENDING = "((wanted IS NOT NULL AND (applied IS NULL OR applied < wanted)) OR hold != applied_hold)"


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


@dataclass(frozen=True)
class HoldRow:
    case_number: str
    since: float
    released_at: float | None


class LockStore(Store):
    """Retention's tables (``schema.py``, migration 7)."""

    # -- clips ---------------------------------------------------------------------------
    def clip_lock(self, sha256: str) -> ClipLock | None:
        row = self.db.execute("SELECT * FROM clip_locks WHERE sha256=?", (stored_hash(sha256),)).fetchone()
        return from_row(ClipLock, row) if row else None

    def raise_clip_lock(self, sha256: str, key: str, extras: str, until: float, case: str | None) -> ClipLock:
        """Record an archived clip's lock: never earlier than it was (the
        longest date wins), its case the newest one given."""
        with self.tx() as db:
            db.execute("INSERT INTO clip_locks (sha256, archive_key, extras, until, case_number) VALUES (?,?,?,?,?) "
                       "ON CONFLICT (sha256) DO UPDATE SET until=max(until, excluded.until), "
                       "case_number=coalesce(excluded.case_number, case_number), "
                       "extras=CASE WHEN excluded.extras != '' THEN excluded.extras ELSE extras END",
                       (stored_hash(sha256), key, extras, until, case))
        found = self.clip_lock(sha256)
        assert found is not None
        return found

    def clips_of_case(self, case: str) -> list[ClipLock]:
        rows = self.db.execute("SELECT * FROM clip_locks WHERE case_number=? ORDER BY sha256", (case,))
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
            found = (self.db.execute("SELECT * FROM clip_locks WHERE sha256=?", (stored_hash(h),)).fetchone()
                     for h in sorted(about))
            return [from_row(ClipLock, r) for r in found if r is not None]
        items = [item for item, seqs in self.db.execute("SELECT item, seqs FROM clip_trail")
                 if any(lo <= s <= top for s in unpacked_seqs(seqs))]
        found = (self.db.execute("SELECT l.* FROM items i JOIN clip_locks l ON l.sha256=i.sha256 WHERE i.id=?",
                                 (item,)).fetchone() for item in items)
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
    def want_locks(self, wanted: Mapping[str, tuple[float | None, bool | None, float | None]]) -> int:
        """For each key, (retain-until, legal hold) the rule wants and the
        date the archive already holds it locked until, if known (it was
        just stored with it). A date only ever raises the wanted one; a
        hold of None leaves it as it is. Returns how many objects wait for
        the archive now."""
        now = time.time()
        with self.tx() as db:
            for key, (until, hold, applied) in wanted.items():
                db.execute("INSERT INTO locks (key, wanted, hold, applied) VALUES (?,?,?,?) ON CONFLICT (key) DO "
                           "UPDATE SET wanted=CASE WHEN excluded.wanted IS NULL THEN wanted WHEN wanted IS NULL "
                           "THEN excluded.wanted ELSE max(wanted, excluded.wanted) END, "
                           "hold=CASE WHEN ? IS NULL THEN hold ELSE excluded.hold END, "
                           "applied=CASE WHEN excluded.applied IS NULL THEN applied WHEN applied IS NULL "
                           "THEN excluded.applied ELSE max(applied, excluded.applied) END",
                           (key, until, int(bool(hold)), applied, hold))
                # newly pending: due now (one already pending keeps its backoff)
                db.execute(f"UPDATE locks SET next_try_at=0, attempts=0, pending_since=? "
                           f"WHERE key=? AND pending_since IS NULL AND {_PENDING}", (now, key))
            (n,) = db.execute(f"SELECT count(*) FROM locks WHERE {_PENDING}").fetchone()
        return int(n)

    def lock(self, key: str) -> LockRow | None:
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
            db.execute("UPDATE locks SET applied=max(coalesce(applied, 0), coalesce(?, 0)), applied_hold=?, "
                       "error=NULL WHERE key=?", (applied, int(hold), key))
            still = db.execute(f"SELECT 1 FROM locks WHERE key=? AND {_PENDING}", (key,)).fetchone()
            if not still:
                db.execute("UPDATE locks SET attempts=0, next_try_at=0, pending_since=NULL WHERE key=?", (key,))
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
