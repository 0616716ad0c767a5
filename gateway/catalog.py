"""The catalog: SQLite (WAL), the one place that knows each clip's state.

It is the persistent queue and the outbox at once. Two levels:

* ``items``: what a recorder holds, one row per (serial, path, size, mtime).
  States: discovered -> pulling -> pulled | sighting, or interrupted (pulled
  again on the next dock).
* ``clips``: content, one row per SHA-256 (a clip's identity). States:
  staged -> forwarding -> archived, or quarantined (kept, never deleted).
  A second item with known content is a *sighting*, never a second copy.

All writes are short transactions with synchronous=FULL: when a call returns,
the state survives power loss. The order on the data path is always "file
durable first, then catalog", so the catalog never points at missing bytes.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.base import ClipRef, DockedDevice, Identity

#: states shown to people and scripts, in pipeline order
STATES = ("discovered", "pulling", "interrupted", "staged", "stamped", "forwarding", "archived",
          "quarantined")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docks (
    id INTEGER PRIMARY KEY,
    slot INTEGER NOT NULL,
    vid INTEGER, pid INTEGER, usb_serial TEXT, detect_source TEXT,
    profile TEXT, serial TEXT, model TEXT, officer TEXT, officer_name TEXT, unit TEXT,
    recorder_clock REAL, station_clock REAL, clock_drift_s REAL, clock_set INTEGER,
    docked_at REAL NOT NULL, undocked_at REAL, result TEXT
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    dock_id INTEGER REFERENCES docks(id),
    officer TEXT,
    sha256 TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    discovered_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (serial, path, size, mtime_ns)
);
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE INDEX IF NOT EXISTS items_sha ON items(sha256);
CREATE TABLE IF NOT EXISTS clips (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items(id),
    staged_path TEXT,
    archive_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    archived_at REAL
);
CREATE INDEX IF NOT EXISTS clips_state ON clips(state, next_try_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    slot INTEGER,
    data TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_unpublished ON events(published, seq);
"""
# each step takes the schema from version i to i + 1, in one transaction
_MIGRATIONS = [
    _SCHEMA,
    """
    ALTER TABLE clips ADD COLUMN manifest_path TEXT;
    ALTER TABLE clips ADD COLUMN manifest_sha256 TEXT;
    ALTER TABLE clips ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE clips ADD COLUMN capture_utc REAL;
    ALTER TABLE clips ADD COLUMN assignment_id INTEGER;
    CREATE TABLE assignments (
        id INTEGER PRIMARY KEY,
        officer TEXT NOT NULL,
        from_ts REAL NOT NULL,
        to_ts REAL NOT NULL,
        case_number TEXT, proof TEXT, category TEXT, important INTEGER,
        created_at REAL NOT NULL,
        processed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE amendments (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL REFERENCES clips(sha256),
        assignment_id INTEGER NOT NULL REFERENCES assignments(id),
        path TEXT NOT NULL,
        state TEXT NOT NULL,
        archive_key TEXT,
        created_at REAL NOT NULL,
        UNIQUE (sha256, assignment_id)
    );
    CREATE TABLE segments (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    """
    ALTER TABLE items ADD COLUMN released_at REAL;
    ALTER TABLE clips ADD COLUMN purged_at REAL;
    """,
]
_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True)
class PendingItem:
    id: int
    ref: ClipRef


@dataclass(frozen=True)
class ClipRow:
    sha256: str
    size: int
    state: str
    staged_path: str | None
    archive_key: str | None
    attempts: int
    item_id: int
    serial: str
    officer: str | None
    path: bytes
    mtime_ns: int
    dock_id: int | None
    manifest_path: str | None
    manifest_sha256: str | None
    partial: int
    capture_utc: float | None
    assignment_id: int | None


@dataclass(frozen=True)
class Assignment:
    id: int
    officer: str
    from_ts: float
    to_ts: float
    case_number: str | None
    proof: str | None
    category: str | None
    important: int | None
    created_at: float


class Catalog:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10,
                                      isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > _VERSION:
            raise RuntimeError(f"{self.path} was written by a newer dockgate (schema {version})")
        for step in range(version, _VERSION):
            # one script, one transaction: a crash leaves no half-made schema
            self.db.executescript(f"BEGIN IMMEDIATE;{_MIGRATIONS[step]}PRAGMA user_version={step + 1};COMMIT;")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- start-up ---------------------------------------------------------
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

    # -- docks ------------------------------------------------------------
    def open_dock(self, device: DockedDevice, profile: str | None) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO docks (slot, vid, pid, usb_serial, detect_source, profile, docked_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (device.slot, device.ids.vid, device.ids.pid, device.ids.serial, device.source,
                 profile, time.time()))
            return int(cur.lastrowid or 0)

    def identify_dock(self, dock_id: int, ident: Identity) -> None:
        with self.tx() as db:
            db.execute("UPDATE docks SET serial=?, model=?, officer=?, officer_name=?, unit=? "
                       "WHERE id=?", (ident.serial, ident.model, ident.officer,
                                      ident.officer_name, ident.unit, dock_id))

    def clock_dock(self, dock_id: int, recorder: float | None, station: float,
                   drift: float | None, was_set: bool) -> None:
        with self.tx() as db:
            db.execute("UPDATE docks SET recorder_clock=?, station_clock=?, clock_drift_s=?, "
                       "clock_set=? WHERE id=?", (recorder, station, drift, int(was_set), dock_id))

    def close_dock(self, dock_id: int, result: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE docks SET undocked_at=?, result=? WHERE id=?",
                       (time.time(), result, dock_id))

    def dock(self, dock_id: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM docks WHERE id=?", (dock_id,)).fetchone()
        return dict(row) if row else None

    def recent_docks(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, slot, serial, officer, unit, model, profile, clock_drift_s, "
                               "clock_set, docked_at, undocked_at, result FROM docks "
                               "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    # -- items ------------------------------------------------------------
    def discover(self, dock_id: int, serial: str, officer: str | None,
                 refs: Iterable[ClipRef]) -> tuple[list[PendingItem], int]:
        """Record what the recorder holds; return (items to pull, items already had)."""
        now = time.time()
        pending: list[PendingItem] = []
        known = 0
        with self.tx() as db:
            for ref in refs:
                db.execute("INSERT OR IGNORE INTO items (serial, path, size, mtime_ns, state, "
                           "dock_id, officer, discovered_at, updated_at) "
                           "VALUES (?,?,?,?, 'discovered', ?,?,?,?)",
                           (serial, ref.relpath, ref.size, ref.mtime_ns, dock_id, officer, now, now))
                row = db.execute("SELECT id, state FROM items WHERE serial=? AND path=? AND size=? "
                                 "AND mtime_ns=?",
                                 (serial, ref.relpath, ref.size, ref.mtime_ns)).fetchone()
                if row[1] in ("discovered", "interrupted", "pulling"):
                    db.execute("UPDATE items SET dock_id=?, officer=coalesce(?, officer) "
                               "WHERE id=?", (dock_id, officer, row[0]))
                    pending.append(PendingItem(int(row[0]), ref))
                else:
                    known += 1
        return pending, known

    def mark_pulling(self, item_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE items SET state='pulling', attempts=attempts+1, updated_at=? "
                       "WHERE id=?", (time.time(), item_id))

    def mark_interrupted(self, item_id: int, why: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE items SET state='interrupted', error=?, updated_at=? WHERE id=?",
                       (why, time.time(), item_id))

    def has_clip(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM clips WHERE sha256=?", (sha256,)).fetchone() is not None

    def mark_pulled(self, item_id: int, sha256: str, size: int, staged_path: str | None) -> bool:
        """Item pulled: a new clip (True) or a sighting of known content (False)."""
        now = time.time()
        with self.tx() as db:
            if db.execute("SELECT 1 FROM clips WHERE sha256=?", (sha256,)).fetchone():
                db.execute("UPDATE items SET state='sighting', sha256=?, error=NULL, updated_at=? "
                           "WHERE id=?", (sha256, now, item_id))
                return False
            db.execute("INSERT INTO clips (sha256, size, state, item_id, staged_path, created_at, "
                       "updated_at) VALUES (?,?, 'staged', ?,?,?,?)",
                       (sha256, size, item_id, staged_path, now, now))
            db.execute("UPDATE items SET state='pulled', sha256=?, error=NULL, updated_at=? "
                       "WHERE id=?", (sha256, now, item_id))
            return True

    # -- clips ------------------------------------------------------------
    _CLIP_SELECT = ("SELECT c.sha256, c.size, c.state, c.staged_path, c.archive_key, c.attempts, "
                    "c.item_id, i.serial, i.officer, i.path, i.mtime_ns, i.dock_id, c.manifest_path, "
                    "c.manifest_sha256, c.partial, c.capture_utc, c.assignment_id "
                    "FROM clips c JOIN items i ON i.id = c.item_id ")

    def _clip(self, row: sqlite3.Row) -> ClipRow:
        return ClipRow(*tuple(row))

    def due_for_forward(self, now: float, limit: int) -> list[ClipRow]:
        rows = self.db.execute(self._CLIP_SELECT + "WHERE c.state='stamped' AND c.next_try_at<=? "
                               "ORDER BY c.created_at LIMIT ?", (now, limit)).fetchall()
        return [self._clip(r) for r in rows]

    def next_retry_at(self) -> float | None:
        row = self.db.execute("SELECT min(next_try_at) FROM clips WHERE state='stamped'").fetchone()
        return None if row[0] is None else float(row[0])

    def clip(self, sha256: str) -> ClipRow | None:
        row = self.db.execute(self._CLIP_SELECT + "WHERE c.sha256=?", (sha256,)).fetchone()
        return self._clip(row) if row else None

    def mark_forwarding(self, sha256: str, key: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE clips SET state='forwarding', archive_key=?, attempts=attempts+1, "
                       "updated_at=? WHERE sha256=?", (key, time.time(), sha256))

    def mark_archived(self, sha256: str) -> None:
        now = time.time()
        with self.tx() as db:
            db.execute("UPDATE clips SET state='archived', error=NULL, archived_at=?, updated_at=? "
                       "WHERE sha256=?", (now, now, sha256))

    def retry_later(self, sha256: str, error: str, at: float) -> None:
        with self.tx() as db:
            db.execute("UPDATE clips SET state='stamped', error=?, next_try_at=?, updated_at=? "
                       "WHERE sha256=?", (error, at, time.time(), sha256))

    def quarantine(self, sha256: str, error: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE clips SET state='quarantined', error=?, updated_at=? "
                       "WHERE sha256=?", (error, time.time(), sha256))

    # -- evidence -----------------------------------------------------------
    def due_for_stamp(self, limit: int = 16) -> list[ClipRow]:
        rows = self.db.execute(self._CLIP_SELECT + "WHERE c.state='staged' ORDER BY c.created_at LIMIT ?",
                               (limit,)).fetchall()
        return [self._clip(r) for r in rows]

    def mark_stamped(self, sha256: str, key: str, manifest_path: str, manifest_sha256: str, partial: bool,
                     capture_utc: float | None, assignment_id: int | None) -> None:
        with self.tx() as db:
            db.execute("UPDATE clips SET state='stamped', archive_key=?, manifest_path=?, manifest_sha256=?, "
                       "partial=?, capture_utc=?, assignment_id=?, updated_at=? "
                       "WHERE sha256=? AND state='staged'",
                       (key, manifest_path, manifest_sha256, int(partial), capture_utc, assignment_id,
                        time.time(), sha256))

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

    _ASSIGN_COLS = "id, officer, from_ts, to_ts, case_number, proof, category, important, created_at"

    def assignment_for(self, officer: str | None, when: float | None) -> Assignment | None:
        if officer is None or when is None:
            return None
        row = self.db.execute(f"SELECT {self._ASSIGN_COLS} FROM assignments WHERE officer=? AND from_ts<=? "
                              "AND to_ts>=? ORDER BY id DESC LIMIT 1", (officer, when, when)).fetchone()
        return Assignment(*tuple(row)) if row else None

    def new_assignments(self) -> list[Assignment]:
        rows = self.db.execute(f"SELECT {self._ASSIGN_COLS} FROM assignments WHERE processed=0 ORDER BY id")
        return [Assignment(*tuple(r)) for r in rows.fetchall()]

    def mark_assignment_processed(self, assignment_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE assignments SET processed=1 WHERE id=?", (assignment_id,))

    def clips_to_amend(self, a: Assignment) -> list[ClipRow]:
        rows = self.db.execute(
            self._CLIP_SELECT + "WHERE c.state IN ('stamped','forwarding','archived','quarantined') "
            "AND i.officer=? AND c.capture_utc BETWEEN ? AND ? AND coalesce(c.assignment_id, -1) != ? "
            "AND NOT EXISTS (SELECT 1 FROM amendments m WHERE m.sha256=c.sha256 AND m.assignment_id=?)",
            (a.officer, a.from_ts, a.to_ts, a.id, a.id)).fetchall()
        return [self._clip(r) for r in rows]

    def add_amendment(self, sha256: str, assignment_id: int, path: str) -> int:
        with self.tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO amendments (sha256, assignment_id, path, state, created_at) "
                             "VALUES (?,?,?, 'pending', ?)", (sha256, assignment_id, path, time.time()))
            return int(cur.lastrowid or 0)

    def due_amendments(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT m.id, m.sha256, m.path, c.archive_key FROM amendments m "
                               "JOIN clips c ON c.sha256=m.sha256 WHERE m.state='pending' "
                               "AND c.state='archived' ORDER BY m.id").fetchall()
        return [dict(r) for r in rows]

    def mark_amendment_archived(self, amendment_id: int, key: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE amendments SET state='archived', archive_key=? WHERE id=?", (key, amendment_id))

    def add_segment(self, name: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO segments (name, state, created_at) VALUES (?, 'sealed', ?)",
                       (name, time.time()))

    def due_segments(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM segments WHERE state='sealed' ORDER BY name")]

    def mark_segment_archived(self, name: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE segments SET state='archived' WHERE name=?", (name,))

    # -- release and purge ------------------------------------------------------
    def release_candidates(self, serial: str, refs: list[ClipRef]) -> list[dict[str, Any]]:
        """For each listed clip we hold: its item, content state and partial flag."""
        out = []
        for ref in refs:
            row = self.db.execute(
                "SELECT i.id, i.state AS item_state, i.released_at, c.sha256, c.state AS clip_state, c.partial "
                "FROM items i LEFT JOIN clips c ON c.sha256=i.sha256 WHERE i.serial=? AND i.path=? AND i.size=? "
                "AND i.mtime_ns=?", (serial, ref.relpath, ref.size, ref.mtime_ns)).fetchone()
            if row is not None:
                out.append({**dict(row), "ref": ref})
        return out

    def mark_released(self, item_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE items SET released_at=? WHERE id=?", (time.time(), item_id))

    def purgeable(self, archived_before: float, limit: int = 500) -> list[tuple[str, str, int]]:
        """(sha256, staged path, size) of archived clips still in staging, oldest first."""
        rows = self.db.execute("SELECT sha256, staged_path, size FROM clips WHERE state='archived' AND "
                               "staged_path IS NOT NULL AND purged_at IS NULL AND archived_at<=? "
                               "ORDER BY archived_at LIMIT ?", (archived_before, limit)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def mark_purged(self, sha256: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE clips SET purged_at=? WHERE sha256=? AND state='archived'", (time.time(), sha256))

    def released_and_purged(self) -> tuple[int, int]:
        r = self.db.execute("SELECT count(*) FROM items WHERE released_at IS NOT NULL").fetchone()[0]
        p = self.db.execute("SELECT count(*) FROM clips WHERE purged_at IS NOT NULL").fetchone()[0]
        return int(r), int(p)

    # -- reporting --------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, count(*) FROM items "
                                        "WHERE state IN ('discovered','pulling','interrupted') "
                                        "GROUP BY state"):
            out[state] = n
        for state, n in self.db.execute("SELECT state, count(*) FROM clips GROUP BY state"):
            out[state] = n
        return out

    def queue(self) -> tuple[int, int]:
        """Clips and bytes not yet archived (staged or forwarding)."""
        row = self.db.execute("SELECT count(*), coalesce(sum(size), 0) FROM clips "
                              "WHERE state IN ('staged','stamped','forwarding')").fetchone()
        return int(row[0]), int(row[1])

    def sightings(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items WHERE state='sighting'").fetchone()[0])

    # -- events outbox ----------------------------------------------------
    def add_event(self, type_: str, slot: int | None, data: dict[str, Any]) -> str:
        eid = str(uuid.uuid4())
        with self.tx() as db:
            db.execute("INSERT INTO events (id, ts, type, slot, data) VALUES (?,?,?,?,?)",
                       (eid, time.time(), type_, slot, json.dumps(data, ensure_ascii=False)))
        return eid

    def unpublished(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT seq, id, ts, type, slot, data FROM events WHERE published=0 "
                               "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]

    def mark_published(self, seq: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE events SET published=1 WHERE seq=?", (seq,))

    def unpublished_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM events WHERE published=0").fetchone()[0])

    def events(self, since_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT seq, id, ts, type, slot, data FROM events WHERE seq>? "
                               "ORDER BY seq LIMIT ?", (since_seq, limit)).fetchall()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]
