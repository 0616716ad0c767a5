"""The catalog: SQLite (WAL), the one place that knows each clip's state.

It is the state machine (``states.py``), the persistent queue and the event
outbox at once. This module is the facade: every transition, and the few
reads the pipeline needs. The connection, transactions and the outbox are
``store.py``; every report (status, events, searches, statistics) is
``reports.py``. No SQL lives outside this package.

Every state change goes through one call, ``_move`` (``store.py``), which
checks the move against the machine, updates the row and writes the events
that report it, in one transaction; custody entries for those events are
appended first (an event announced is an event on the record), and
listeners hear of them only after the commit.

All writes are short transactions with synchronous=FULL: when a call returns,
the state survives power loss (the two moves recovery redoes, a pull or an
upload starting, skip their own fsync; the next commit carries them). A
transaction's custody entries share one fsync, made before its commit. The
order on the data path is always "file durable first, then catalog", so the
catalog never points at missing bytes.

Why ~600 lines in one module: the state machine lives in one place
(docs/architecture.md), so every transition a clip, item, dock, assignment
or amendment can make is one method here, next to the others it must agree
with; the plumbing and the reports already live apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from gateway.catalog import reports
from gateway.catalog.locks import ClipLock, HoldRow, LockRow, LockStore, Want
from gateway.catalog.records import (
    Assignment,
    ClipRow,
    DockRow,
    DueAmendment,
    Event,
    EventRow,
    Holding,
    PendingItem,
    Purgeable,
    event,
    from_row,
    hash_sql,
    manifest_sql,
    staged_sql,
    stored_hash,
    stored_manifest,
    stored_staged,
)
from gateway.catalog.schema import CLIP_OPEN, FILE_NAME, ITEM_OPEN
from gateway.catalog.states import (
    REPULL_REASONS,
    STATES,
    TO_PULL,
    ClipState,
    ItemState,
    TransitionRefused,
    can_pull_again,
    check_clip,
)
from gateway.catalog.store import CatalogError, Journal, compact_file

if TYPE_CHECKING:  # annotations only: `status` and `events` read the catalog without driver code
    from drivers.base import ClipRef, DockedDevice, Identity

_CLIP_SELECT = (f"SELECT {hash_sql('c.sha256')} AS sha256, c.size, c.state, {staged_sql()} AS staged_path, "
                "c.archive_key, c.attempts, "
                f"c.item_id, i.serial, i.officer, i.path, i.mtime_ns, i.dock_id, {manifest_sql()} AS manifest_path, "
                f"{hash_sql('c.manifest_sha256')} AS manifest_sha256, c.partial, c.capture_utc, c.assignment_id "
                "FROM clips c JOIN items i ON i.id = c.item_id ")
_ASSIGN_COLS = "id, officer, from_ts, to_ts, case_number, proof, category, important, created_at"


def _name(db: Any, item_id: int, path: bytes) -> None:
    """The clip's file name (its own, not its folders': ``schema.FILE_NAME``, as the migration and the
    short-text scan take it) into the trigram index the review's free-text search walks."""
    db.execute(f"INSERT INTO clip_names (rowid, name) VALUES (?1, {FILE_NAME.format(p='?2')})",
               (item_id, bytes(path).decode("utf-8", "backslashreplace")))


class Catalog(LockStore):
    """Every transition of the clip state machine, each one call: checked
    against ``states.py``, the row and its events in one transaction."""

    def restore_clip(self, sha256: str, serial: str, path: bytes, size: int, officer: str | None,
                     staged_path: str | None, key: str | None, manifest_path: str | None,
                     manifest_sha256: str | None, archived: bool) -> bool:
        """Put back a clip the custody log knows and a rolled-back catalog
        forgot: stamped (to be forwarded again) or archived. Its item is a
        stand-in (a negative mtime: a real listing of the file is a new item,
        and its content then a sighting), one for each clip: a recorder that
        wrote two clips of one size under one name (formatted between) gets
        two, as the clip's lock and custody rows are keyed by its item.
        False if the catalog knows the clip."""
        now = time.time()
        with self.tx() as db:
            if db.execute("SELECT 1 FROM clips WHERE sha256=?", (stored_hash(sha256),)).fetchone():
                return False
            (stand_in,) = db.execute("SELECT min(-1, coalesce(min(mtime_ns), 0) - 1) FROM items WHERE serial=? AND "
                                     "path=? AND size=? AND mtime_ns < 0", (serial, path, size)).fetchone()
            (item,) = db.execute("INSERT INTO items (serial, path, size, mtime_ns, state, officer, sha256, "
                                 "discovered_at, updated_at) VALUES (?,?,?,?, 'pulled', ?,?,?,?) RETURNING id",
                                 (serial, path, size, stand_in, officer, stored_hash(sha256), now, now)).fetchone()
            db.execute("INSERT INTO clips (sha256, size, state, item_id, staged_path, archive_key, manifest_path, "
                       "manifest_sha256, created_at, updated_at, archived_at, officer) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (stored_hash(sha256), size, "archived" if archived else "stamped", item,
                        stored_staged(sha256, staged_path), key, stored_manifest(sha256, manifest_path),
                        stored_hash(manifest_sha256), now, now,
                        now if archived else None, officer))
            _name(db, item, path)
        return True

    def confirm_archived(self, sha256: str, *events: Event) -> None:
        """The custody log says a queued clip was archived (the catalog lost
        the commit): the same two moves the forwarder makes."""
        clip = self.clip(sha256)
        if clip is None or clip.state == ClipState.ARCHIVED:
            return
        if clip.state == ClipState.STAMPED:
            self.start_forward(sha256, clip.archive_key or "")
        self.archived(sha256, *events)

    def restore_pulled_again(self, sha256: str, staged_path: str, to: ClipState,
                             manifest_sha256: str | None = None) -> bool:
        """The custody log says a clip the catalog has quarantined was pulled
        again (the catalog lost that commit, and maybe the re-stamp after
        it): the same move out of quarantine, to *to*, without its event (the
        custody log has it); *manifest_sha256*, the manifest stamped after
        it. False (nothing written) if the clip is not quarantined for a
        reason a pull again cures."""
        with self.tx() as db:
            row = db.execute("SELECT state, quarantine_reason FROM clips WHERE sha256=?",
                             (stored_hash(sha256),)).fetchone()
            if row is None or not can_pull_again(row["state"], row["quarantine_reason"]):
                return False
            set_: dict[str, Any] = {"staged_path": stored_staged(sha256, staged_path), "error": None,
                                    "quarantine_reason": None, "attempts": 0, "next_try_at": 0}
            if manifest_sha256:
                set_["manifest_sha256"] = manifest_sha256
            self._move("clips", sha256, to, (), set_, db=db, again=True)
        return True

    def recover(self) -> dict[str, int]:
        """After a crash: half-pulled items become interrupted (their temp files
        are gone with staging's tmp/), in-flight uploads go back to the queue
        (archive writes are idempotent), open dock sessions are closed."""
        now = time.time()
        with self.tx() as db:
            a = db.execute("UPDATE items SET state='interrupted', error='daemon stopped mid-pull', "
                           f"updated_at=? WHERE state='pulling' AND {ITEM_OPEN}", (now,)).rowcount
            b = db.execute(f"UPDATE clips SET state='stamped', updated_at=? "
                           f"WHERE state='forwarding' AND {CLIP_OPEN}", (now,)).rowcount
            c = db.execute("UPDATE docks SET undocked_at=?, result=coalesce(result, 'daemon stopped') "
                           "WHERE undocked_at IS NULL", (now,)).rowcount
        return {"interrupted": a, "requeued": b, "docks_closed": c}

    # -- docks ---------------------------------------------------------------------
    def open_dock(self, device: DockedDevice, profile: str | None, *events: Event) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO docks (slot, vid, pid, usb_serial, detect_source, profile, docked_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (device.slot, device.ids.vid, device.ids.pid, device.ids.serial, device.source,
                 profile, time.time()))
            dock_id = int(cur.lastrowid or 0)
            evs = [Event(e.type, e.slot, {**e.data, "dock_id": dock_id}) for e in events]
            self._write_events(db, evs)
        self._announce(evs)
        return dock_id

    def identify_dock(self, dock_id: int, ident: Identity, *events: Event, volume_label: str | None = None) -> None:
        with self.tx() as db:
            db.execute("UPDATE docks SET serial=?, model=?, officer=?, officer_name=?, unit=?, idcode=?, "
                       "volume_label=? WHERE id=?",
                       (ident.serial, ident.model, ident.officer, ident.officer_name, ident.unit, ident.idcode,
                        volume_label, dock_id))
            self._write_events(db, events)
        self._announce(events)

    def clock_dock(self, dock_id: int, recorder: float | None, station: float, drift: float | None,
                   was_set: bool, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE docks SET recorder_clock=?, station_clock=?, clock_drift_s=?, clock_set=? "
                       "WHERE id=?", (recorder, station, drift, int(was_set), dock_id))
            self._write_events(db, events)
        self._announce(events)

    def close_dock(self, dock_id: int, result: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE docks SET undocked_at=?, result=? WHERE id=?", (time.time(), result, dock_id))

    def dock(self, dock_id: int) -> DockRow | None:
        row = self.db.execute("SELECT * FROM docks WHERE id=?", (dock_id,)).fetchone()
        return from_row(DockRow, row) if row else None

    # -- items: what a recorder holds ---------------------------------------------------
    def discover(self, dock_id: int, serial: str, officer: str | None,
                 refs: Iterable[ClipRef]) -> tuple[list[PendingItem], int]:
        """Record what the recorder holds; return (items to pull, items already had).

        Items to pull are the new and interrupted ones, and one item for each
        clip the station lost its own copy of (quarantined for one of
        ``REPULL_REASONS``) although the recorder still holds it: its content
        is pulled again (``finish_pull`` with *again*), not taken as held."""
        now = time.time()
        pending: list[PendingItem] = []
        again: set[str] = set()
        known = 0
        with self.tx() as db:
            for ref in refs:
                db.execute("INSERT OR IGNORE INTO items (serial, path, size, mtime_ns, state, dock_id, officer, "
                           "discovered_at, updated_at) VALUES (?,?,?,?, 'discovered', ?,?,?,?)",
                           (serial, ref.relpath, ref.size, ref.mtime_ns, dock_id, officer, now, now))
                row = db.execute(f"SELECT i.id, i.state, {hash_sql('i.sha256')} AS sha256, i.released_at, "
                                 "c.state AS clip_state, "
                                 "c.quarantine_reason FROM items i LEFT JOIN clips c ON c.sha256=i.sha256 "
                                 "WHERE i.serial=? AND i.path=? AND i.size=? AND i.mtime_ns=?",
                                 (serial, ref.relpath, ref.size, ref.mtime_ns)).fetchone()
                lost = can_pull_again(row["clip_state"], row["quarantine_reason"])
                if row["state"] in TO_PULL:
                    db.execute("UPDATE items SET dock_id=?, officer=coalesce(?, officer) WHERE id=?",
                               (dock_id, officer, row["id"]))
                    pending.append(PendingItem(int(row["id"]), ref))
                    if lost:
                        again.add(row["sha256"])
                elif lost and row["released_at"] is None and row["sha256"] not in again:
                    # its dock stays the one it was first pulled at (the clip's capture facts)
                    again.add(row["sha256"])
                    pending.append(PendingItem(int(row["id"]), ref))
                else:
                    known += 1
        return pending, known

    def begin_pull(self, item_id: int) -> None:
        self.begin_pull_many([item_id])

    def begin_pull_many(self, item_ids: Sequence[int]) -> None:
        """Pulls starting, in one commit. Not durable: after a crash recovery
        finds each item pulling or as it was, and both are redone. An item
        already pulled (or a sighting) may start again only while its clip
        is quarantined for a reason a pull again cures (``discover``)."""
        with self.tx(durable=False) as db:
            for item_id in item_ids:
                self._move("items", item_id, ItemState.PULLING, bump_attempts=True, db=db, again=True)

    def interrupt(self, item_id: int, why: str, *events: Event) -> None:
        """The pull could not finish; nothing was staged. *events*: the alarm,
        when this was the last attempt."""
        self._move("items", item_id, ItemState.INTERRUPTED, events, {"error": why})

    def finish_pull(self, item_id: int, sha256: str, size: int, staged_path: str | None,
                    pulled: Event, seen_again: Event, again: Event | None = None,
                    manifest_intact: bool = False) -> bool:
        """The item's bytes are durable: a new clip, staged (True, *pulled* is
        recorded), or a sighting of content already held (False, *seen_again*).

        Content whose clip is quarantined because the station lost or spoiled
        its own copy (``REPULL_REASONS``) is no sighting when the caller has
        kept the copy (*staged_path*) and says it pulls again (*again*, the
        event): the clip leaves quarantine with this copy (True, *again* is
        recorded with the quarantine's reason, its error and where the clip
        went). It goes back to ``stamped`` when only its media was at fault
        and its signed manifest is *manifest_intact* (no second manifest),
        else to ``staged``, to be stamped again."""
        with self.tx() as db:
            clip = db.execute("SELECT state, quarantine_reason, error, manifest_path IS NOT NULL AS stamped_once "
                              "FROM clips WHERE sha256=?", (stored_hash(sha256),)).fetchone()
            staged = clip is None
            if clip is not None and again is not None and staged_path is not None \
                    and can_pull_again(clip["state"], clip["quarantine_reason"]):
                reason = clip["quarantine_reason"]
                to = ClipState.STAMPED if (reason == "source_fault" and manifest_intact
                                           and clip["stamped_once"]) else ClipState.STAGED
                ev = Event(again.type, again.slot, {**again.data, "reason": reason, "quarantined_for": clip["error"],
                                                    "state": str(to)})
                self._move("clips", sha256, to, (), {
                    "staged_path": stored_staged(sha256, staged_path), "error": None, "quarantine_reason": None,
                    "attempts": 0, "next_try_at": 0}, db=db, again=True)
                self._move("items", item_id, ItemState.PULLED, [ev], {"sha256": sha256, "error": None}, db=db)
                staged = True
            elif clip is not None:
                ev = seen_again
                self._move("items", item_id, ItemState.SIGHTING, [ev], {"sha256": sha256, "error": None}, db=db)
            else:
                if staged_path is None:
                    raise TransitionRefused("clip", sha256[:16], None, "staged without a staged copy")
                now = time.time()
                check_clip(sha256, None, ClipState.STAGED)
                item = db.execute("SELECT officer, path FROM items WHERE id=?", (item_id,)).fetchone()
                db.execute("INSERT INTO clips (sha256, size, state, item_id, staged_path, created_at, updated_at, "
                           "officer) VALUES (?,?, 'staged', ?,?,?,?,?)",
                           (stored_hash(sha256), size, item_id, stored_staged(sha256, staged_path), now, now,
                            item["officer"] if item else None))
                if item is not None:
                    _name(db, item_id, item["path"])
                ev = pulled
                self._move("items", item_id, ItemState.PULLED, [ev], {"sha256": sha256, "error": None}, db=db)
        self._announce([ev])
        return staged

    def has_clip(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM clips WHERE sha256=?", (stored_hash(sha256),)).fetchone() is not None

    def lost_copy(self, sha256: str) -> ClipRow | None:
        """The clip of *sha256* if it is quarantined because the station lost
        or spoiled its own copy (``REPULL_REASONS``): content a pull must
        keep and stage again (``finish_pull`` with *again*), not a sighting."""
        rows = self._clips(f"WHERE c.sha256=? AND c.state='quarantined' AND c.quarantine_reason IN "
                           f"({reports.in_list(sorted(REPULL_REASONS))})", stored_hash(sha256))
        return rows[0] if rows else None

    # -- clips: content on its way to the archive -----------------------------------------
    def _clips(self, where: str, *args: Any, indexed_by: str | None = None) -> list[ClipRow]:
        select = _CLIP_SELECT if indexed_by is None else _CLIP_SELECT.replace(
            "clips c ", f"clips c INDEXED BY {indexed_by} ")
        return [from_row(ClipRow, r) for r in self.db.execute(select + where, args).fetchall()]

    def clip(self, sha256: str) -> ClipRow | None:
        rows = self._clips("WHERE c.sha256=?", stored_hash(sha256))
        return rows[0] if rows else None

    def due_for_stamp(self, limit: int = 16) -> list[ClipRow]:
        return self._clips(f"WHERE c.state='staged' AND c.{CLIP_OPEN} ORDER BY c.created_at LIMIT ?", limit)

    def stamped(self, sha256: str, key: str, manifest_path: str, manifest_sha256: str, partial: bool,
                capture_utc: float | None, assignment_id: int | None, *events: Event, important: bool = False,
                category: str | None = None, cased: bool = False, duration_s: float | None = None) -> None:
        """*important*, *category*, *cased*, *duration_s*: what the signed
        manifest says, kept beside the row for the searches and statistics."""
        self._move("clips", sha256, ClipState.STAMPED, events, {
            "archive_key": key, "manifest_path": stored_manifest(sha256, manifest_path),
            "manifest_sha256": manifest_sha256,
            "partial": int(partial), "capture_utc": capture_utc, "assignment_id": assignment_id,
            "important": int(important), "category": category, "cased": int(cased), "duration_s": duration_s})

    def due_for_forward(self, now: float, limit: int, not_docks: Sequence[int] = ()) -> list[ClipRow]:
        """Clips to upload next: important ones (by their assignment) first
        (issue 15), then oldest first; none from the docks in *not_docks*."""
        skip = f"AND i.dock_id NOT IN ({','.join('?' * len(not_docks))}) " if not_docks else ""
        due = f"WHERE c.state='stamped' AND c.{CLIP_OPEN} AND c.next_try_at<=? {skip}"
        # two walks of an index, never a sort of the whole queue: the clips of
        # the (few) important assignments, then the queue in its order
        first = self._clips(due + "AND c.assignment_id IN (SELECT id FROM assignments WHERE important=1) "
                            "ORDER BY c.created_at LIMIT ?", now, *not_docks, limit, indexed_by="clips_assignment")
        if len(first) >= limit:
            return first
        taken = {c.sha256 for c in first}
        rest = self._clips(due + "ORDER BY c.created_at LIMIT ?", now, *not_docks, limit + len(first),
                           indexed_by="clips_queue")
        return first + [c for c in rest if c.sha256 not in taken][:limit - len(first)]

    def next_retry_at(self) -> float | None:
        row = self.db.execute(f"SELECT min(next_try_at) FROM clips WHERE state='stamped' AND {CLIP_OPEN}").fetchone()
        return None if row[0] is None else float(row[0])

    def start_forward(self, sha256: str, key: str) -> None:
        self.start_forward_many([(sha256, key)])

    def start_forward_many(self, clips: Sequence[tuple[str, str]]) -> None:
        """(sha256, archive key) of clips whose upload starts, in one commit.
        Not durable: recovery puts a forwarding clip back in the queue anyway,
        and puts are idempotent."""
        with self.tx(durable=False) as db:
            for sha256, key in clips:
                self._move("clips", sha256, ClipState.FORWARDING, (), {"archive_key": key}, db=db)

    def archived(self, sha256: str, *events: Event) -> None:
        now = time.time()
        self._move("clips", sha256, ClipState.ARCHIVED, events, {"error": None, "archived_at": now})

    def retry_later(self, sha256: str, error: str, at: float, *, counts: bool = True) -> None:
        """Back to the queue until *at*. ``attempts`` counts the clip's failed
        tries; ``counts=False`` when the failure was the station's, not the
        clip's (the archive refused us), so the clip's own record stays clean."""
        self._move("clips", sha256, ClipState.STAMPED, (), {"error": error, "next_try_at": at},
                   bump_attempts=counts)

    def quarantine(self, sha256: str, why: str, *events: Event, reason: str | None = None) -> None:
        """Set aside, kept and alarmed. *reason*: whose copy failed; one of
        ``REPULL_REASONS`` (the station's own copy) lets a pull again cure it,
        any other (the archive's, or none) is final."""
        self._move("clips", sha256, ClipState.QUARANTINED, events, {"error": why, "quarantine_reason": reason})

    # -- evidence ------------------------------------------------------------------------
    def sibling_item(self, serial: str, path: bytes) -> tuple[str, str | None] | None:
        """(sha256, staged path) of another pulled file of the same recorder."""
        row = self.db.execute(f"SELECT {hash_sql('c.sha256')}, {staged_sql()} FROM items i JOIN clips c "
                              "ON c.sha256=i.sha256 "
                              "WHERE i.serial=? AND lower(CAST(i.path AS TEXT))=lower(CAST(? AS TEXT)) "
                              "AND i.state IN ('pulled','sighting') LIMIT 1", (serial, path)).fetchone()
        return (row[0], row[1]) if row else None

    def add_assignment(self, officer: str, from_ts: float, to_ts: float, case_number: str | None,
                       proof: str | None, category: str | None, important: bool | None) -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO assignments (officer, from_ts, to_ts, case_number, proof, category, "
                             "important, created_at) VALUES (?,?,?,?,?,?,?,?)",
                             (officer, from_ts, to_ts, case_number, proof, category,
                              None if important is None else int(important), time.time()))
            return int(cur.lastrowid or 0)

    def assignment_for(self, officer: str | None, when: float | None) -> Assignment | None:
        if officer is None or when is None:
            return None
        # the newest that covers the time and was not set aside (processed=2): an older one applies then
        row = self.db.execute(f"SELECT {_ASSIGN_COLS} FROM assignments WHERE officer=? AND from_ts<=? "
                              "AND to_ts>=? AND processed!=2 ORDER BY id DESC LIMIT 1",
                              (officer, when, when)).fetchone()
        return from_row(Assignment, row) if row else None

    def new_assignments(self) -> list[Assignment]:
        rows = self.db.execute(f"SELECT {_ASSIGN_COLS} FROM assignments WHERE processed=0 ORDER BY id")
        return [from_row(Assignment, r) for r in rows.fetchall()]

    def assignment_processed(self, assignment_id: int, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE assignments SET processed=1 WHERE id=?", (assignment_id,))
            self._write_events(db, events)
        self._announce(events)

    def assignment_set_aside(self, assignment_id: int, *events: Event) -> None:
        """Processed without being applied (a poison pill: gateway/values.py):
        never applied to a clip stamped later either."""
        with self.tx() as db:
            db.execute("UPDATE assignments SET processed=2 WHERE id=?", (assignment_id,))
            self._write_events(db, events)
        self._announce(events)

    def clips_to_amend(self, a: Assignment) -> list[ClipRow]:
        # on the officer's clips in the span (clips_officer_when: the clip carries its item's officer), not a
        # scan of every clip per assignment (some 150 ms at a year's 250 000 clips; 300 dispatches a day)
        return self._clips(
            "WHERE c.state IN ('stamped','forwarding','archived','quarantined') "
            "AND c.officer=? AND coalesce(c.capture_utc, c.created_at) BETWEEN ? AND ? "
            "AND i.officer=? AND c.capture_utc BETWEEN ? AND ? AND coalesce(c.assignment_id, -1) != ? "
            "AND NOT EXISTS (SELECT 1 FROM amendments m WHERE m.sha256=c.sha256 AND m.assignment_id=?)",
            a.officer, a.from_ts, a.to_ts, a.officer, a.from_ts, a.to_ts, a.id, a.id, indexed_by="clips_officer_when")

    def newest_amendment_path(self, sha256: str) -> str | None:
        """The staged file of the clip's newest amendment (the next names its hash)."""
        row = self.db.execute("SELECT path FROM amendments WHERE sha256=? ORDER BY id DESC LIMIT 1",
                              (stored_hash(sha256),)).fetchone()
        return None if row is None else str(row[0])

    def add_amendment(self, sha256: str, assignment_id: int, path: str, *events: Event) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO amendments (sha256, assignment_id, path, state, created_at) "
                       "VALUES (?,?,?, 'pending', ?)", (stored_hash(sha256), assignment_id, path, time.time()))
            # what the clip is searched by: the newest assignment that says, else what it said before
            db.execute(f"UPDATE clips SET "
                       f"category = coalesce((SELECT a.category FROM assignments a WHERE {reports.assigned('clips')} "
                       f"AND a.category IS NOT NULL ORDER BY a.id DESC LIMIT 1), category), "
                       f"important = coalesce((SELECT a.important FROM assignments a WHERE {reports.assigned('clips')} "
                       f"AND a.important IS NOT NULL ORDER BY a.id DESC LIMIT 1), important), "
                       f"cased = cased OR EXISTS (SELECT 1 FROM assignments a WHERE a.id=? AND a.case_number "
                       f"IS NOT NULL) WHERE sha256=?", (assignment_id, stored_hash(sha256)))
            self._write_events(db, events)
        self._announce(events)

    def due_amendments(self) -> list[DueAmendment]:
        rows = self.db.execute(f"SELECT m.id, {hash_sql('m.sha256')} AS sha256, m.path, c.archive_key "
                               "FROM amendments m JOIN clips c ON c.sha256=m.sha256 WHERE m.state='pending' "
                               "AND c.state='archived' ORDER BY m.id").fetchall()
        return [from_row(DueAmendment, r) for r in rows]

    def amendment_archived(self, amendment_id: int, key: str, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE amendments SET state='archived', archive_key=? WHERE id=?", (key, amendment_id))
            self._write_events(db, events)
        self._announce(events)

    def add_segment(self, name: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO segments (name, state, created_at) VALUES (?, 'sealed', ?)",
                       (name, time.time()))

    def due_segments(self) -> list[str]:
        """Custody segments and checkpoint files to archive, in the order they
        were sealed (a checkpoint only after the segment it covers)."""
        return [r[0] for r in self.db.execute("SELECT name FROM segments WHERE state='sealed' ORDER BY rowid")]

    def archived_segments(self) -> list[str]:
        """Custody files (segments, checkpoints, signatures, tokens) the archive holds."""
        return [r[0] for r in self.db.execute("SELECT name FROM segments WHERE state='archived'")]

    def maintain(self) -> None:
        """Housekeeping of the file itself (``pipeline/housekeep.py``): the
        WAL folded back and truncated, the planner's statistics refreshed.
        Each a short step; a busy reader only postpones the truncation."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        self.db.execute("PRAGMA optimize").fetchall()

    def vacuum(self, pages: int) -> int:
        """Give up to *pages* free pages back to the file system (a file in
        incremental auto-vacuum mode: new ones are, an older one after
        ``compact_file``); a short step, proportional to *pages*. Returns
        how many went."""
        if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            return 0
        before = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        # executescript steps the pragma to its end: execute() steps a statement without result columns
        # once, and each step gives back one page (CPython 3.11's sqlite3)
        self.db.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
        return int(before - self.db.execute("PRAGMA freelist_count").fetchone()[0])

    def compacted_at(self) -> float | None:
        """When the file was last rewritten whole (``compact_file``; a new file: when it was made)."""
        row = self.db.execute("SELECT at FROM catalog_compacted WHERE id=1").fetchone()
        return None if row is None else float(row[0])

    def file_pages(self) -> tuple[int, int, int, bool]:
        """(page size, pages, free pages, incremental auto-vacuum on): the file's shape, for the metrics."""
        size, pages, free, mode = (self.db.execute(f"PRAGMA {p}").fetchone()[0]
                                   for p in ("page_size", "page_count", "freelist_count", "auto_vacuum"))
        return int(size), int(pages), int(free), mode == 2

    def archived_custody_high(self) -> int:
        """The newest custody entry the archive holds together with every
        one before it (0: none): the last one an archived checkpoint signs,
        and below the first sealed segment not yet archived (custody file
        names carry their first and last entries: ``evidence/custody.py``)."""
        (signed,) = self.db.execute("SELECT max(CAST(substr(name, -15, 10) AS INTEGER)) FROM segments WHERE "
                                    "state='archived' AND name LIKE 'checkpoint-%.json'").fetchone()
        (gap,) = self.db.execute("SELECT min(CAST(substr(name, -16, 10) AS INTEGER)) FROM segments WHERE "
                                 "state!='archived' AND name LIKE 'custody-%.jsonl'").fetchone()
        high = int(signed or 0)
        return high if gap is None else min(high, int(gap) - 1)

    def prune_events(self, before: float, *, published: bool = True, limit: int = 5000) -> int:
        """Forget up to *limit* outbox events recorded before *before* (epoch
        seconds) whose custody entry the archive holds (``archived_custody_high``;
        an event with none, the daemon's own news, goes by age alone), and, if
        *published*, that the broker took. Never the alarms the statistics
        count (``reports.ALARMS``: rare) nor the newest event with a custody
        entry (how far the catalog has followed the log: ``custody_high``).
        The custody log is the record; ``events_pruned`` says up to where
        (``Reports.pruned_after``). Returns how many went; call again while
        it returns *limit*."""
        high = self.archived_custody_high()
        with self.tx() as db:
            newest = db.execute("SELECT seq FROM events WHERE custody_seq IS NOT NULL ORDER BY seq DESC "
                                "LIMIT 1").fetchone()
            # a walk from the oldest event, which stops after *limit* matches (the ones kept stay few)
            which = (f"seq < ? AND ts < ? AND (custody_seq IS NULL OR custody_seq <= ?) AND type NOT IN "
                     f"({reports.in_list(set(reports.ALARMS))}) {'AND published=1' if published else ''}")
            args = (newest[0] if newest else 2 ** 62, before, high)
            row = db.execute(f"SELECT count(*), max(seq), max(custody_seq) FROM (SELECT seq, custody_seq FROM events "
                             f"WHERE {which} ORDER BY seq LIMIT ?)", (*args, limit)).fetchone()
            n, upto, custody_upto = int(row[0]), row[1], row[2]
            if n:
                db.execute(f"DELETE FROM events WHERE seq <= ? AND {which}", (upto, *args))
                db.execute("INSERT INTO events_pruned (id, upto_seq, custody_upto, events, at) VALUES (1,?,?,?,?) "
                           "ON CONFLICT (id) DO UPDATE SET upto_seq=max(upto_seq, excluded.upto_seq), "
                           "custody_upto=max(coalesce(custody_upto, 0), coalesce(excluded.custody_upto, 0)), "
                           "events=events+excluded.events, at=excluded.at", (upto, custody_upto, n, time.time()))
        return n

    def segment_archived(self, name: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE segments SET state='archived' WHERE name=?", (name,))

    # -- release and purge -----------------------------------------------------------------
    def holdings(self, serial: str, refs: list[ClipRef]) -> list[Holding]:
        """For each listed clip we hold: its item, content state and partial flag."""
        out = []
        for ref in refs:
            row = self.db.execute(
                f"SELECT i.id, i.state AS item_state, i.released_at, {hash_sql('c.sha256')} AS sha256, "
                "c.state AS clip_state, c.partial "
                "FROM items i LEFT JOIN clips c ON c.sha256=i.sha256 WHERE i.serial=? AND i.path=? AND i.size=? "
                "AND i.mtime_ns=?", (serial, ref.relpath, ref.size, ref.mtime_ns)).fetchone()
            if row is not None:
                out.append(Holding(row["id"], ref, row["item_state"], row["released_at"], row["sha256"],
                                   row["clip_state"], row["partial"]))
        return out

    def released(self, item_id: int, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE items SET released_at=? WHERE id=?", (time.time(), item_id))
            self._write_events(db, events)
        self._announce(events)

    def purgeable(self, archived_before: float, limit: int = 500) -> list[Purgeable]:
        """Archived clips still in staging, oldest first."""
        rows = self.db.execute(f"SELECT {hash_sql('sha256')} AS sha256, {staged_sql('clips')} AS staged_path, size "
                               "FROM clips "
                               "WHERE state='archived' AND "
                               "staged_path IS NOT NULL AND purged_at IS NULL AND archived_at<=? "
                               "ORDER BY archived_at LIMIT ?", (archived_before, limit)).fetchall()
        return [from_row(Purgeable, r) for r in rows]

    def purged(self, sha256: str, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE clips SET purged_at=? WHERE sha256=? AND state='archived'",
                       (time.time(), stored_hash(sha256)))
            self._write_events(db, events)
        self._announce(events)

    # -- the pipeline's reads (the queries: reports.py) ------------------------------------
    def counts(self) -> dict[str, int]:
        return reports.counts(self.db)

    def queue(self) -> tuple[int, int]:
        """Clips and bytes not yet archived (staged or forwarding)."""
        return reports.queue(self.db)

    def queue_oldest_age(self, now: float) -> float:
        return reports.queue_oldest_age(self.db, now)

    def unpublished(self, limit: int = 200) -> list[EventRow]:
        return reports.unpublished(self.db, limit)

    def mark_published(self, seq: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE events SET published=1 WHERE seq=?", (seq,))

    def unpublished_count(self) -> int:
        return reports.unpublished_count(self.db)

    def events(self, since_seq: int = 0, limit: int = 1000, types: set[str] | None = None) -> list[EventRow]:
        """Events after *since_seq*, oldest first."""
        return reports.events(self.db, since_seq, limit, types)


__all__ = ["STATES", "Assignment", "Catalog", "CatalogError", "ClipLock", "ClipRow", "ClipState", "DockRow",
           "DueAmendment", "Event", "EventRow", "HoldRow", "Holding", "ItemState", "Journal", "LockRow", "PendingItem",
           "Purgeable", "TransitionRefused", "Want", "compact_file", "event"]
