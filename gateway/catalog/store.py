"""The catalog's plumbing: the SQLite connection (WAL, synchronous=FULL),
schema migrations, write transactions and group commit, the event outbox
and ``_move``, the one way a state changes. ``Catalog`` (``__init__.py``)
builds every transition on it; ``reports.py`` reads."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from gateway.catalog.records import (
    HASH_COLUMNS,
    Event,
    PackedSeqs,
    event,
    packed_seqs,
    stored_event_id,
    stored_hash,
)
from gateway.catalog.schema import MIGRATIONS, VERSION
from gateway.catalog.states import ClipState, ItemState, can_pull_again, check_clip, check_item
from gateway.errors import DockgateError

log = logging.getLogger(__name__)


class CatalogError(DockgateError):
    """The catalog file cannot be used (written by a newer dockgate, damaged)."""

    reason = "catalog"


def needs_compacting(db: sqlite3.Connection) -> bool:
    """A catalog made before incremental auto-vacuum was the default, a
    quarter of it free (the outbox pruned), or one a migration shrank the
    rows of in place (``compact_due``): ``compact_file`` once."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='compact_due'").fetchone():
        return True
    pages, free, mode = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count",
                                                                             "auto_vacuum"))
    return bool(mode != 2 and free * 4 > pages)


def compact_file(path: Path) -> None:
    """Rewrite the catalog once into incremental auto-vacuum mode (a file
    made before it was the default), on a connection of its own: VACUUM
    holds the writer for the whole rewrite, so others' commits wait for it.
    A small catalog (``COMPACT_ONLINE_PAGES``) is compacted by the
    housekeeper while no slot pulls; a larger one when the catalog is next
    opened by the daemon, before it is ready (about 2-6 s at 25 000 clips
    on this machine, so 20-60 s once at 250 000)."""
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("VACUUM")
        # after the rewrite (a crash in it leaves it due), its page given back too; when, for the schedule
        # (the callers open the catalog, so it is migrated: ``catalog_compacted`` is there)
        db.executescript("DROP TABLE IF EXISTS compact_due; PRAGMA incremental_vacuum;")
        db.execute("INSERT OR REPLACE INTO catalog_compacted (id, at) VALUES (1, ?)", (time.time(),))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.DatabaseError as e:
        raise CatalogError(f"catalog {path}: {e}") from None
    finally:
        db.close()


def catalog_functions(db: sqlite3.Connection) -> None:
    """The migrations' own functions (SQLite 3.40 has no unhex()) on connection *db*."""
    db.create_function("stored_event_id", 1, stored_event_id, deterministic=True)
    db.create_function("stored_hash", 1, stored_hash, deterministic=True)
    db.create_aggregate("packed_seqs", 1, PackedSeqs)  # type: ignore[arg-type]  # typeshed: an int result


#: live pages (4 KiB) up to which the running daemon compacts online (``compact_file``): about 3 s here
COMPACT_ONLINE_PAGES = 16384


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


class Store:
    """The catalog's connection and the one way to change a state
    (``_move``): transactions, group commit, the event outbox. The
    transitions themselves are ``Catalog``'s (``__init__.py``)."""

    def __init__(self, path: Path, *, journal: Journal | None = None, compact: bool = False,
                 long_work: Callable[[str], None] | None = None) -> None:
        """*compact*: the daemon, starting, rewrites a catalog that needs it (``needs_compacting``).
        *long_work* hears, before it starts, of work that takes long on a large
        catalog (a migration after an upgrade, the one compaction): the daemon
        tells systemd, whose start timeout would otherwise kill it midway."""
        self.path = path
        self._long_work = long_work or (lambda _what: None)
        self.journal: Journal = journal or _Silent()
        #: events of an open ``group``, announced after its commit
        self._grouped: list[Event] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            if self.db.execute("PRAGMA user_version").fetchone()[0] == 0:
                # a new file: pages freed (the outbox pruned) can be given back a few at a time
                # (``Catalog.maintain``); an older file switches once, by a VACUUM (``Catalog.compact``)
                self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            catalog_functions(self.db)
            self._migrate()
            if compact and needs_compacting(self.db):  # nobody waits on the writer yet (``compact_file``)
                self._long_work("compacting the catalog once (minutes on a year's history)")
                started = time.monotonic()
                compact_file(path)
                log.info("catalog compacted into incremental auto-vacuum mode in %.1f s", time.monotonic() - started)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"catalog {path}: {e}") from None

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > VERSION:
            raise CatalogError(f"{self.path} was written by a newer dockgate (schema {version})")
        if 0 < version < VERSION:
            self._long_work(f"migrating the catalog from schema {version} to {VERSION} (minutes on a year's history)")
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
        import uuid  # not at import: it loads platform, and `status` and `events` need neither

        ids = []
        for ev in events:
            seq = self.journal.on_record(ev)
            eid = uuid.uuid4()
            db.execute("INSERT INTO events (id, ts, type, slot, data, custody_seq) VALUES (?,?,?,?,?,?)",
                       (eid.bytes, time.time(), ev.type, ev.slot, json.dumps(ev.data, ensure_ascii=False), seq))
            if seq is not None and isinstance(clip := ev.data.get("sha256"), str):
                # which custody entries are about which clip: what retention must keep as long as the clip
                # (appended: SQLite's || makes text of two blobs, the CAST takes the same bytes back)
                db.execute("INSERT INTO clip_trail (item, seqs) SELECT item_id, ? FROM clips WHERE sha256=? "
                           "ON CONFLICT (item) DO UPDATE SET seqs = CAST(seqs || excluded.seqs AS BLOB)",
                           (packed_seqs([seq]), stored_hash(clip)))
            ids.append(str(eid))
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
              db: sqlite3.Connection | None = None, durable: bool = True, again: bool = False) -> None:
        """Check and make one state change and write its events, in the
        caller's transaction (*db*) or in one of its own. *again*: the call
        pulls again, so the moves out of a station-side quarantine are
        allowed too when the row's clip (the clip, or the item's content)
        is quarantined for such a reason (``states.AGAIN_*_MOVES``)."""
        if db is None:
            with self.tx(durable) as own:
                self._move(table, key, wanted, events, set_, bump_attempts, own, again=again)
            self._announce(events)
            return
        keycol = "id" if table == "items" else "sha256"
        bound = key if table == "items" else stored_hash(str(key))  # a clip's: the row's own form of its hash
        if again and table == "items":
            row = db.execute("SELECT i.state, c.state, c.quarantine_reason FROM items i "
                             "LEFT JOIN clips c ON c.sha256=i.sha256 WHERE i.id=?", (bound,)).fetchone()
        elif again:
            row = db.execute("SELECT state, state, quarantine_reason FROM clips WHERE sha256=?", (bound,)).fetchone()
        else:
            row = db.execute(f"SELECT state FROM {table} WHERE {keycol}=?", (bound,)).fetchone()
        current = None if row is None else row[0]
        cured = again and row is not None and can_pull_again(row[1], row[2])
        if table == "items":
            check_item(int(key), current, ItemState(wanted), again=cured)
        else:
            check_clip(str(key), current, ClipState(wanted), again=cured)
        cols = {"state": str(wanted), "updated_at": time.time(),
                **{c: stored_hash(v) if c in HASH_COLUMNS else v for c, v in (set_ or {}).items()}}
        assign = ", ".join(f"{c}=?" for c in cols) + (", attempts=attempts+1" if bump_attempts else "")
        db.execute(f"UPDATE {table} SET {assign} WHERE {keycol}=?", (*cols.values(), bound))
        self._write_events(db, events)

    # -- start-up ------------------------------------------------------------------
    def integrity(self) -> str:
        """SQLite's own quick check: "ok", or what is damaged."""
        rows = self.db.execute("PRAGMA quick_check").fetchall()
        return "; ".join(str(r[0]) for r in rows[:20])

    def custody_high(self) -> int | None:
        """The newest custody sequence number the catalog has recorded; None
        when it cannot tell (events from before it recorded them)."""
        # custody positions grow with the events' own order: the newest event that has one says it, found
        # from the end of the table, not by reading millions of events at every start (issue 30)
        row = self.db.execute("SELECT custody_seq FROM events WHERE custody_seq IS NOT NULL "
                              "ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None and self.db.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            return None
        return int(row[0]) if row else 0
