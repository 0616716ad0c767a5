"""The catalog: SQLite (WAL), the one place that knows each clip's state.

It is the state machine (``states.py``), the persistent queue and the event
outbox at once. Every state change goes through one call, ``_move``, which
checks the move against the machine, updates the row and writes the events
that report it, in one transaction; custody entries for those events are
appended first (an event announced is an event on the record), and
listeners hear of them only after the commit.

All writes are short transactions with synchronous=FULL: when a call returns,
the state survives power loss (the two moves recovery redoes, a pull or an
upload starting, skip their own fsync; the next commit carries them). A
transaction's custody entries share one fsync, made before its commit. The order on the data path is always "file
durable first, then catalog", so the catalog never points at missing bytes.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from drivers.base import ClipRef, DockedDevice, Identity
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
)
from gateway.catalog.schema import MIGRATIONS, VERSION
from gateway.catalog.states import (
    QUEUED,
    STATES,
    TO_PULL,
    ClipState,
    ItemState,
    TransitionRefused,
    check_clip,
    check_item,
)
from gateway.errors import DockgateError


class CatalogError(DockgateError):
    """The catalog file cannot be used (written by a newer dockgate, damaged)."""

    reason = "catalog"


class Journal(Protocol):
    """Where recorded events go besides the outbox table."""

    def on_record(self, ev: Event) -> int | None:
        """Inside the transaction, before the commit: the custody log; the
        custody sequence number the event got, if it went there."""

    def sync(self) -> None:
        """Before the commit: make what ``on_record`` wrote durable (once
        per transaction, however many events it holds)."""

    def announce(self, ev: Event) -> None:
        """After the commit: logs, metrics, MQTT wake-ups."""


class _Silent:
    def on_record(self, ev: Event) -> int | None:
        return None

    def sync(self) -> None:
        pass

    def announce(self, ev: Event) -> None:
        pass


def _q(states: Iterable[str]) -> str:
    return ",".join(f"'{s}'" for s in states)


_CLIP_SELECT = ("SELECT c.sha256, c.size, c.state, c.staged_path, c.archive_key, c.attempts, "
                "c.item_id, i.serial, i.officer, i.path, i.mtime_ns, i.dock_id, c.manifest_path, "
                "c.manifest_sha256, c.partial, c.capture_utc, c.assignment_id "
                "FROM clips c JOIN items i ON i.id = c.item_id ")
_ASSIGN_COLS = "id, officer, from_ts, to_ts, case_number, proof, category, important, created_at"


class Catalog:
    def __init__(self, path: Path, *, readonly: bool = False, journal: Journal | None = None) -> None:
        self.path = path
        self.journal: Journal = journal or _Silent()
        #: events of an open ``group``, announced after its commit
        self._grouped: list[Event] | None = None
        try:
            if readonly:
                self.db = self._open_readonly(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                self._migrate()
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"catalog {path}: {e}") from None

    @staticmethod
    def _open_readonly(path: Path) -> sqlite3.Connection:
        """For `status` and `events`, also for users who may read the catalog
        but not write beside it (the dockgate group): with the daemon running
        its -wal and -shm files are there to read; with it stopped they are
        not, and nobody writes, so the file is opened as immutable."""
        if not path.exists():
            raise FileNotFoundError(path)
        with open(path, "rb"):  # a PermissionError here names the file, not "unable to open"
            pass
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            if Path(f"{path}-wal").exists():
                raise
        return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None)

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > VERSION:
            raise CatalogError(f"{self.path} was written by a newer dockgate (schema {version})")
        for step in range(version, VERSION):
            # one script, one transaction: a crash leaves no half-made schema
            self.db.executescript(f"BEGIN IMMEDIATE;{MIGRATIONS[step]}PRAGMA user_version={step + 1};COMMIT;")

    @contextmanager
    def tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``durable=False`` for a change a crash may
        lose because recovery redoes it (a pull or an upload starting): its
        commit skips the fsync, and the next durable commit carries it to
        disk with its own (WAL frames reach the disk in order). Inside a
        ``group`` it is a savepoint of the group's transaction."""
        if self._grouped is not None:
            self.db.execute("SAVEPOINT one")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO one")
                self.db.execute("RELEASE one")
                raise
            self.db.execute("RELEASE one")
            return
        if not durable:
            self.db.execute("PRAGMA synchronous=OFF")  # cannot change inside a transaction
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.journal.sync()  # custody entries on disk before the state they report
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        finally:
            if not durable:
                self.db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def group(self) -> Iterator[None]:
        """Group commit: every change made inside (synchronous code, no
        awaits) goes into one transaction with one custody fsync and one
        commit; each change is still checked and atomic on its own (a
        savepoint), and listeners hear of them after the commit. Nested
        groups are part of the outer one."""
        if self._grouped is not None:
            yield
            return
        with self.tx():
            self._grouped = []
            try:
                yield
            finally:
                pending, self._grouped = self._grouped, None
        self._announce(pending)

    # -- events: the outbox ------------------------------------------------------
    def _write_events(self, db: sqlite3.Connection, events: Sequence[Event]) -> list[str]:
        ids = []
        for ev in events:
            seq = self.journal.on_record(ev)
            eid = str(uuid.uuid4())
            db.execute("INSERT INTO events (id, ts, type, slot, data, custody_seq) VALUES (?,?,?,?,?,?)",
                       (eid, time.time(), ev.type, ev.slot, json.dumps(ev.data, ensure_ascii=False), seq))
            ids.append(eid)
        return ids

    def _announce(self, events: Sequence[Event]) -> None:
        if self._grouped is not None:  # heard of after the group's commit
            self._grouped.extend(events)
            return
        for ev in events:
            self.journal.announce(ev)

    def emit(self, type_: str, slot: int | None = None, **data: Any) -> str:
        """Record one event that changes no state (an alarm, a dock, a sighting)."""
        ev = event(type_, slot, **data)
        with self.tx() as db:
            (eid,) = self._write_events(db, [ev])
        self._announce([ev])
        return eid

    # -- the one way to change a state -------------------------------------------
    def _move(self, table: str, key: int | str, wanted: ItemState | ClipState, events: Sequence[Event] = (),
              set_: dict[str, Any] | None = None, bump_attempts: bool = False,
              db: sqlite3.Connection | None = None, durable: bool = True) -> None:
        """Check and make one state change and write its events, in the
        caller's transaction (*db*) or in one of its own."""
        if db is None:
            with self.tx(durable) as own:
                self._move(table, key, wanted, events, set_, bump_attempts, own)
            self._announce(events)
            return
        keycol = "id" if table == "items" else "sha256"
        row = db.execute(f"SELECT state FROM {table} WHERE {keycol}=?", (key,)).fetchone()
        current = None if row is None else row[0]
        if table == "items":
            check_item(int(key), current, ItemState(wanted))
        else:
            check_clip(str(key), current, ClipState(wanted))
        cols = {"state": str(wanted), "updated_at": time.time(), **(set_ or {})}
        assign = ", ".join(f"{c}=?" for c in cols) + (", attempts=attempts+1" if bump_attempts else "")
        db.execute(f"UPDATE {table} SET {assign} WHERE {keycol}=?", (*cols.values(), key))
        self._write_events(db, events)

    # -- start-up ------------------------------------------------------------------
    def integrity(self) -> str:
        """SQLite's own quick check: "ok", or what is damaged."""
        rows = self.db.execute("PRAGMA quick_check").fetchall()
        return "; ".join(str(r[0]) for r in rows[:20])

    def custody_high(self) -> int | None:
        """The newest custody sequence number the catalog has recorded; None
        when it cannot tell (events from before it recorded them)."""
        row = self.db.execute("SELECT max(custody_seq), count(*) FROM events").fetchone()
        if row[0] is None and row[1]:
            return None
        return int(row[0] or 0)

    def restore_clip(self, sha256: str, serial: str, path: bytes, size: int, officer: str | None,
                     staged_path: str | None, key: str | None, manifest_path: str | None,
                     manifest_sha256: str | None, archived: bool) -> bool:
        """Put back a clip the custody log knows and a rolled-back catalog
        forgot: stamped (to be forwarded again) or archived. Its item is a
        stand-in (no mtime: a real listing of the file is a new item, and its
        content then a sighting). False if the catalog knows the clip."""
        now = time.time()
        with self.tx() as db:
            if db.execute("SELECT 1 FROM clips WHERE sha256=?", (sha256,)).fetchone():
                return False
            cur = db.execute("INSERT OR IGNORE INTO items (serial, path, size, mtime_ns, state, officer, sha256, "
                             "discovered_at, updated_at) VALUES (?,?,?, -1, 'pulled', ?,?,?,?)",
                             (serial, path, size, officer, sha256, now, now))
            item = cur.lastrowid or db.execute("SELECT id FROM items WHERE serial=? AND path=? AND size=? AND "
                                               "mtime_ns=-1", (serial, path, size)).fetchone()[0]
            db.execute("INSERT INTO clips (sha256, size, state, item_id, staged_path, archive_key, manifest_path, "
                       "manifest_sha256, created_at, updated_at, archived_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (sha256, size, "archived" if archived else "stamped", item, staged_path, key, manifest_path,
                        manifest_sha256, now, now, now if archived else None))
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

    def recover(self) -> dict[str, int]:
        """After a crash: half-pulled items become interrupted (their temp files
        are gone with staging's tmp/), in-flight uploads go back to the queue
        (archive writes are idempotent), open dock sessions are closed."""
        now = time.time()
        with self.tx() as db:
            a = db.execute("UPDATE items SET state='interrupted', error='daemon stopped mid-pull', "
                           "updated_at=? WHERE state='pulling'", (now,)).rowcount
            b = db.execute("UPDATE clips SET state='stamped', updated_at=? "
                           "WHERE state='forwarding'", (now,)).rowcount
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

    def identify_dock(self, dock_id: int, ident: Identity, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE docks SET serial=?, model=?, officer=?, officer_name=?, unit=? WHERE id=?",
                       (ident.serial, ident.model, ident.officer, ident.officer_name, ident.unit, dock_id))
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

    def recent_docks(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, slot, serial, officer, unit, model, profile, clock_drift_s, "
                               "clock_set, docked_at, undocked_at, result FROM docks "
                               "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    # -- items: what a recorder holds ---------------------------------------------------
    def discover(self, dock_id: int, serial: str, officer: str | None,
                 refs: Iterable[ClipRef]) -> tuple[list[PendingItem], int]:
        """Record what the recorder holds; return (items to pull, items already had)."""
        now = time.time()
        pending: list[PendingItem] = []
        known = 0
        with self.tx() as db:
            for ref in refs:
                db.execute("INSERT OR IGNORE INTO items (serial, path, size, mtime_ns, state, dock_id, officer, "
                           "discovered_at, updated_at) VALUES (?,?,?,?, 'discovered', ?,?,?,?)",
                           (serial, ref.relpath, ref.size, ref.mtime_ns, dock_id, officer, now, now))
                row = db.execute("SELECT id, state FROM items WHERE serial=? AND path=? AND size=? AND mtime_ns=?",
                                 (serial, ref.relpath, ref.size, ref.mtime_ns)).fetchone()
                if row["state"] in TO_PULL:
                    db.execute("UPDATE items SET dock_id=?, officer=coalesce(?, officer) WHERE id=?",
                               (dock_id, officer, row["id"]))
                    pending.append(PendingItem(int(row["id"]), ref))
                else:
                    known += 1
        return pending, known

    def begin_pull(self, item_id: int) -> None:
        self.begin_pull_many([item_id])

    def begin_pull_many(self, item_ids: Sequence[int]) -> None:
        """Pulls starting, in one commit. Not durable: after a crash recovery
        finds each item pulling or as it was, and both are redone."""
        with self.tx(durable=False) as db:
            for item_id in item_ids:
                self._move("items", item_id, ItemState.PULLING, bump_attempts=True, db=db)

    def interrupt(self, item_id: int, why: str, *events: Event) -> None:
        """The pull could not finish; nothing was staged. *events*: the alarm,
        when this was the last attempt."""
        self._move("items", item_id, ItemState.INTERRUPTED, events, {"error": why})

    def finish_pull(self, item_id: int, sha256: str, size: int, staged_path: str | None,
                    pulled: Event, seen_again: Event) -> bool:
        """The item's bytes are durable: a new clip, staged (True, *pulled* is
        recorded), or a sighting of content already held (False, *seen_again*)."""
        with self.tx() as db:
            known = db.execute("SELECT 1 FROM clips WHERE sha256=?", (sha256,)).fetchone() is not None
            if known:
                ev = seen_again
                self._move("items", item_id, ItemState.SIGHTING, [ev], {"sha256": sha256, "error": None}, db=db)
            else:
                if staged_path is None:
                    raise TransitionRefused("clip", sha256[:16], None, "staged without a staged copy")
                now = time.time()
                check_clip(sha256, None, ClipState.STAGED)
                db.execute("INSERT INTO clips (sha256, size, state, item_id, staged_path, created_at, updated_at) "
                           "VALUES (?,?, 'staged', ?,?,?,?)", (sha256, size, item_id, staged_path, now, now))
                ev = pulled
                self._move("items", item_id, ItemState.PULLED, [ev], {"sha256": sha256, "error": None}, db=db)
        self._announce([ev])
        return not known

    def has_clip(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM clips WHERE sha256=?", (sha256,)).fetchone() is not None

    # -- clips: content on its way to the archive -----------------------------------------
    def _clips(self, where: str, *args: Any, indexed_by: str | None = None) -> list[ClipRow]:
        select = _CLIP_SELECT if indexed_by is None else _CLIP_SELECT.replace(
            "clips c ", f"clips c INDEXED BY {indexed_by} ")
        return [from_row(ClipRow, r) for r in self.db.execute(select + where, args).fetchall()]

    def clip(self, sha256: str) -> ClipRow | None:
        rows = self._clips("WHERE c.sha256=?", sha256)
        return rows[0] if rows else None

    def due_for_stamp(self, limit: int = 16) -> list[ClipRow]:
        return self._clips("WHERE c.state='staged' ORDER BY c.created_at LIMIT ?", limit)

    def stamped(self, sha256: str, key: str, manifest_path: str, manifest_sha256: str, partial: bool,
                capture_utc: float | None, assignment_id: int | None, *events: Event) -> None:
        self._move("clips", sha256, ClipState.STAMPED, events, {
            "archive_key": key, "manifest_path": manifest_path, "manifest_sha256": manifest_sha256,
            "partial": int(partial), "capture_utc": capture_utc, "assignment_id": assignment_id})

    def due_for_forward(self, now: float, limit: int, not_docks: Sequence[int] = ()) -> list[ClipRow]:
        """Clips to upload next: important ones (by their assignment) first
        (issue 15), then oldest first; none from the docks in *not_docks*."""
        skip = f"AND i.dock_id NOT IN ({','.join('?' * len(not_docks))}) " if not_docks else ""
        due = f"WHERE c.state='stamped' AND c.next_try_at<=? {skip}"
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
        row = self.db.execute("SELECT min(next_try_at) FROM clips WHERE state='stamped'").fetchone()
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

    def quarantine(self, sha256: str, why: str, *events: Event) -> None:
        self._move("clips", sha256, ClipState.QUARANTINED, events, {"error": why})

    # -- evidence ------------------------------------------------------------------------
    def sibling_item(self, serial: str, path: bytes) -> tuple[str, str | None] | None:
        """(sha256, staged path) of another pulled file of the same recorder."""
        row = self.db.execute("SELECT c.sha256, c.staged_path FROM items i JOIN clips c ON c.sha256=i.sha256 "
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
        row = self.db.execute(f"SELECT {_ASSIGN_COLS} FROM assignments WHERE officer=? AND from_ts<=? "
                              "AND to_ts>=? ORDER BY id DESC LIMIT 1", (officer, when, when)).fetchone()
        return from_row(Assignment, row) if row else None

    def new_assignments(self) -> list[Assignment]:
        rows = self.db.execute(f"SELECT {_ASSIGN_COLS} FROM assignments WHERE processed=0 ORDER BY id")
        return [from_row(Assignment, r) for r in rows.fetchall()]

    def assignment_processed(self, assignment_id: int, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE assignments SET processed=1 WHERE id=?", (assignment_id,))
            self._write_events(db, events)
        self._announce(events)

    def clips_to_amend(self, a: Assignment) -> list[ClipRow]:
        return self._clips(
            "WHERE c.state IN ('stamped','forwarding','archived','quarantined') "
            "AND i.officer=? AND c.capture_utc BETWEEN ? AND ? AND coalesce(c.assignment_id, -1) != ? "
            "AND NOT EXISTS (SELECT 1 FROM amendments m WHERE m.sha256=c.sha256 AND m.assignment_id=?)",
            a.officer, a.from_ts, a.to_ts, a.id, a.id)

    def add_amendment(self, sha256: str, assignment_id: int, path: str, *events: Event) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO amendments (sha256, assignment_id, path, state, created_at) "
                       "VALUES (?,?,?, 'pending', ?)", (sha256, assignment_id, path, time.time()))
            self._write_events(db, events)
        self._announce(events)

    def due_amendments(self) -> list[DueAmendment]:
        rows = self.db.execute("SELECT m.id, m.sha256, m.path, c.archive_key FROM amendments m "
                               "JOIN clips c ON c.sha256=m.sha256 WHERE m.state='pending' "
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

    def segment_archived(self, name: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE segments SET state='archived' WHERE name=?", (name,))

    # -- release and purge -----------------------------------------------------------------
    def holdings(self, serial: str, refs: list[ClipRef]) -> list[Holding]:
        """For each listed clip we hold: its item, content state and partial flag."""
        out = []
        for ref in refs:
            row = self.db.execute(
                "SELECT i.id, i.state AS item_state, i.released_at, c.sha256, c.state AS clip_state, c.partial "
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
        rows = self.db.execute("SELECT sha256, staged_path, size FROM clips WHERE state='archived' AND "
                               "staged_path IS NOT NULL AND purged_at IS NULL AND archived_at<=? "
                               "ORDER BY archived_at LIMIT ?", (archived_before, limit)).fetchall()
        return [from_row(Purgeable, r) for r in rows]

    def purged(self, sha256: str, *events: Event) -> None:
        with self.tx() as db:
            db.execute("UPDATE clips SET purged_at=? WHERE sha256=? AND state='archived'", (time.time(), sha256))
            self._write_events(db, events)
        self._announce(events)

    def released_and_purged(self) -> tuple[int, int]:
        r = self.db.execute("SELECT count(*) FROM items WHERE released_at IS NOT NULL").fetchone()[0]
        p = self.db.execute("SELECT count(*) FROM clips WHERE purged_at IS NOT NULL").fetchone()[0]
        return int(r), int(p)

    # -- reporting -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute(f"SELECT state, count(*) FROM items WHERE state IN ({_q(TO_PULL)}) "
                                        "GROUP BY state"):
            out[state] = n
        for state, n in self.db.execute("SELECT state, count(*) FROM clips GROUP BY state"):
            out[state] = n
        return out

    def queue(self) -> tuple[int, int]:
        """Clips and bytes not yet archived (staged or forwarding)."""
        row = self.db.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM clips "
                              f"WHERE state IN ({_q(QUEUED)})").fetchone()
        return int(row[0]), int(row[1])

    def queue_oldest_age(self, now: float) -> float:
        """Seconds since the oldest clip not yet archived was staged (0: none)."""
        row = self.db.execute(f"SELECT min(created_at) FROM clips WHERE state IN ({_q(QUEUED)})").fetchone()
        return 0.0 if row[0] is None else max(0.0, now - float(row[0]))

    def sightings(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items WHERE state='sighting'").fetchone()[0])

    def unpublished(self, limit: int = 200) -> list[EventRow]:
        rows = self.db.execute("SELECT seq, id, ts, type, slot, data FROM events WHERE published=0 "
                               "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [EventRow.of(r) for r in rows]

    def mark_published(self, seq: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE events SET published=1 WHERE seq=?", (seq,))

    def unpublished_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM events WHERE published=0").fetchone()[0])

    def events(self, since_seq: int = 0, limit: int = 1000, types: set[str] | None = None) -> list[EventRow]:
        """Events after *since_seq*, oldest first."""
        where, args = self._types(types)
        rows = self.db.execute(f"SELECT seq, id, ts, type, slot, data FROM events WHERE seq>? {where} "
                               "ORDER BY seq LIMIT ?", (since_seq, *args, limit)).fetchall()
        return [EventRow.of(r) for r in rows]

    def newest(self, limit: int = 50, types: set[str] | None = None) -> list[EventRow]:
        """The newest *limit* events, newest first."""
        where, args = self._types(types)
        rows = self.db.execute(f"SELECT seq, id, ts, type, slot, data FROM events WHERE 1 {where} "
                               "ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [EventRow.of(r) for r in rows]

    @staticmethod
    def _types(types: set[str] | None) -> tuple[str, list[str]]:
        if not types:
            return "", []
        return f"AND type IN ({','.join('?' * len(types))})", sorted(types)


__all__ = ["STATES", "Assignment", "Catalog", "CatalogError", "ClipRow", "ClipState", "DockRow", "DueAmendment",
           "Event", "EventRow", "Holding", "ItemState", "Journal", "PendingItem", "Purgeable", "TransitionRefused",
           "event"]
