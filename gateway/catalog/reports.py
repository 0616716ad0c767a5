"""Reports: every read of the catalog made for people and programs rather
than to move a clip. `dockgate status` and `events`, the review's searches
and clip pages, the statistics, the station screen's dock lists and the
dispatch matching all ask here; the pipeline's few reads (counts, queue,
the outbox) share these queries through the facade.

``Reports`` reads on a connection of its own, opened read-only: a search
never holds the daemon's writer and cannot change a state by mistake, and
members of the dockgate group, who may read the catalog but not write
beside it, can use it. Rows come back typed (``TypedDict``: named columns
the pages and the CLI read as they always did).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast

from gateway.catalog.records import DockRow, EventRow, from_row
from gateway.catalog.states import QUEUED, STATES, TO_PULL
from gateway.catalog.store import CatalogError


def open_readonly(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """A read-only connection. With the daemon running its -wal and -shm
    files are there to read; with it stopped they are not, and nobody
    writes, so the file is opened as immutable. *any_thread*: the web reads
    from its handlers' threads."""
    if not path.exists():
        raise FileNotFoundError(path)
    with open(path, "rb"):  # a PermissionError here names the file, not "unable to open"
        pass
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, isolation_level=None,
                         check_same_thread=not any_thread)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        db.close()
        if Path(f"{path}-wal").exists():
            raise
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None,
                             check_same_thread=not any_thread)
    db.row_factory = sqlite3.Row
    return db


def in_list(states: Iterable[str]) -> str:
    """States (our own constants, never input) as an SQL IN list."""
    return ",".join(f"'{s}'" for s in sorted(states))


# -- the station: counts, queue, events (status, metrics, the outbox) -------------------------------------------

def counts(db: sqlite3.Connection) -> dict[str, int]:
    """Recorder items still to pull and clips, by state."""
    out = dict.fromkeys(STATES, 0)
    for state, n in db.execute(f"SELECT state, count(*) FROM items WHERE state IN ({in_list(TO_PULL)}) GROUP BY state"):
        out[state] = n
    for state, n in db.execute("SELECT state, count(*) FROM clips GROUP BY state"):
        out[state] = n
    return out


def queue(db: sqlite3.Connection) -> tuple[int, int]:
    """Clips and bytes not yet archived (staged or forwarding)."""
    row = db.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM clips "
                     f"WHERE state IN ({in_list(QUEUED)})").fetchone()
    return int(row[0]), int(row[1])


def queue_oldest_age(db: sqlite3.Connection, now: float) -> float:
    """Seconds since the oldest clip not yet archived was staged (0: none)."""
    row = db.execute(f"SELECT min(created_at) FROM clips WHERE state IN ({in_list(QUEUED)})").fetchone()
    return 0.0 if row[0] is None else max(0.0, now - float(row[0]))


def unpublished(db: sqlite3.Connection, limit: int) -> list[EventRow]:
    rows = db.execute("SELECT seq, id, ts, type, slot, data FROM events WHERE published=0 "
                      "ORDER BY seq LIMIT ?", (limit,)).fetchall()
    return [EventRow.of(r) for r in rows]


def unpublished_count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM events WHERE published=0").fetchone()[0])


def _types(types: set[str] | None) -> tuple[str, list[str]]:
    if not types:
        return "", []
    return f"AND type IN ({','.join('?' * len(types))})", sorted(types)


def events(db: sqlite3.Connection, since_seq: int = 0, limit: int = 1000,
           types: set[str] | None = None) -> list[EventRow]:
    """Events after *since_seq*, oldest first."""
    where, args = _types(types)
    rows = db.execute(f"SELECT seq, id, ts, type, slot, data FROM events WHERE seq>? {where} "
                      "ORDER BY seq LIMIT ?", (since_seq, *args, limit)).fetchall()
    return [EventRow.of(r) for r in rows]


def newest(db: sqlite3.Connection, limit: int = 50, types: set[str] | None = None) -> list[EventRow]:
    """The newest *limit* events, newest first."""
    where, args = _types(types)
    rows = db.execute(f"SELECT seq, id, ts, type, slot, data FROM events WHERE 1 {where} "
                      "ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
    return [EventRow.of(r) for r in rows]


# -- typed rows ---------------------------------------------------------------------------------------------------

class DockSummary(TypedDict):
    id: int
    slot: int
    serial: str | None
    officer: str | None
    unit: str | None
    model: str | None
    profile: str | None
    clock_drift_s: float | None
    clock_set: int | None
    docked_at: float
    undocked_at: float | None
    result: str | None
    idcode: str | None
    volume_label: str | None


class ClipView(TypedDict):
    """A clip with the recorder item and dock it came from."""

    sha256: str
    size: int
    state: str
    capture_utc: float | None
    partial: int
    archive_key: str | None
    staged_path: str | None
    purged_at: float | None
    manifest_path: str | None
    assignment_id: int | None
    created_at: float
    archived_at: float | None
    serial: str
    officer: str | None
    path: bytes
    dock_id: int | None
    officer_name: str | None
    unit: str | None
    docked_at: float | None
    model: str | None
    slot: int | None


class AssignmentView(TypedDict):
    id: int
    officer: str
    from_ts: float
    to_ts: float
    case_number: str | None
    proof: str | None
    category: str | None
    important: int | None
    created_at: float
    processed: int


class AmendmentView(TypedDict):
    id: int
    assignment_id: int
    path: str
    state: str
    archive_key: str | None
    created_at: float


class TrailEntry(TypedDict):
    seq: int
    ts: float
    type: str
    slot: int | None
    data: dict[str, Any]


class DockClip(TypedDict):
    """What a dock's recorder held, as far as that dock pulled it."""

    path: bytes
    size: int
    item_state: str
    sha256: str | None
    officer: str | None
    state: str | None
    capture_utc: float | None
    manifest_path: str | None
    assignment_id: int | None


class StatsClip(TypedDict):
    sha256: str
    capture_utc: float | None
    manifest_path: str | None
    assignment_id: int | None
    officer: str | None
    unit: str | None
    officer_name: str | None
    docked_at: float | None


@dataclass(frozen=True)
class ClipQuery:
    """What the review searches by. Category and importance are read from
    the newest assignment or the manifest, so the caller filters by them
    after the query (``search``'s *limit* leaves room)."""

    officer: str = ""
    case: str = ""
    date_from: float | None = None
    date_to: float | None = None
    important: str = ""  # "", "yes", "no"
    category: str = ""
    state: str = ""


_CLIP_COLS = ("SELECT c.sha256, c.size, c.state, c.capture_utc, c.partial, c.archive_key, c.staged_path, "
              "c.purged_at, c.manifest_path, c.assignment_id, c.created_at, c.archived_at, i.serial, i.officer, "
              "i.path, i.dock_id, d.officer_name, d.unit, d.docked_at, d.model, d.slot "
              "FROM clips c JOIN items i ON i.id=c.item_id LEFT JOIN docks d ON d.id=i.dock_id ")
#: the clip's assignments: the one it was stamped with and those its amendments carry
_ASSIGNED = ("(a.id=c.assignment_id OR a.id IN (SELECT m.assignment_id FROM amendments m "
             "WHERE m.sha256=c.sha256))")
#: the station alarms the statistics count
ALARMS = ("wrong_password", "foreign_device", "unrecognised_device", "login_failed")


def _rows(cursor: sqlite3.Cursor) -> list[Any]:
    return [dict(r) for r in cursor.fetchall()]


#: what a report raises when the catalog cannot be read just now (busy, or
#: not created yet by a first start); callers need not know it is SQLite
ReportError = sqlite3.Error


class Reports:
    """Read-only reports on a connection of their own."""

    def __init__(self, path: Path, *, any_thread: bool = False) -> None:
        try:
            self.db = open_readonly(path, any_thread=any_thread)
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"catalog {path}: {e}") from None

    def close(self) -> None:
        self.db.close()

    # -- the station ----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return counts(self.db)

    def queue(self) -> tuple[int, int]:
        return queue(self.db)

    def events(self, since_seq: int = 0, limit: int = 1000, types: set[str] | None = None) -> list[EventRow]:
        return events(self.db, since_seq, limit, types)

    def newest(self, limit: int = 50, types: set[str] | None = None) -> list[EventRow]:
        return newest(self.db, limit, types)

    def sightings(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items WHERE state='sighting'").fetchone()[0])

    def released_and_purged(self) -> tuple[int, int]:
        r = self.db.execute("SELECT count(*) FROM items WHERE released_at IS NOT NULL").fetchone()[0]
        p = self.db.execute("SELECT count(*) FROM clips WHERE purged_at IS NOT NULL").fetchone()[0]
        return int(r), int(p)

    def dock(self, dock_id: int) -> DockRow | None:
        row = self.db.execute("SELECT * FROM docks WHERE id=?", (dock_id,)).fetchone()
        return from_row(DockRow, row) if row else None

    def recent_docks(self, limit: int = 10) -> list[DockSummary]:
        return cast(list[DockSummary], _rows(self.db.execute(
            "SELECT id, slot, serial, officer, unit, model, profile, clock_drift_s, clock_set, docked_at, "
            "undocked_at, result, idcode, volume_label FROM docks ORDER BY id DESC LIMIT ?", (limit,))))

    # -- clips, for the review --------------------------------------------------------------
    def clip(self, sha256: str) -> ClipView | None:
        row = self.db.execute(_CLIP_COLS + "WHERE c.sha256=?", (sha256,)).fetchone()
        return cast(ClipView, dict(row)) if row else None

    def search(self, q: ClipQuery, limit: int) -> list[ClipView]:
        """Newest capture first: officer, capture time, state, case."""
        where: list[str] = ["1"]
        args: list[Any] = []
        if q.officer:
            where.append("(i.officer=? OR d.officer_name=?)")
            args += [q.officer, q.officer]
        if q.date_from is not None:
            where.append("c.capture_utc>=?")
            args.append(q.date_from)
        if q.date_to is not None:
            where.append("c.capture_utc<?")
            args.append(q.date_to)
        if q.state:
            where.append("c.state=?")
            args.append(q.state)
        if q.case:
            where.append(f"EXISTS (SELECT 1 FROM assignments a WHERE {_ASSIGNED} AND a.case_number=?)")
            args.append(q.case)
        return cast(list[ClipView], _rows(self.db.execute(
            _CLIP_COLS + "WHERE " + " AND ".join(where) + " ORDER BY coalesce(c.capture_utc, c.created_at) DESC "
            "LIMIT ?", (*args, limit))))

    def assignments(self, sha256: str) -> list[AssignmentView]:
        """The clip's assignments, oldest first."""
        return cast(list[AssignmentView], _rows(self.db.execute(
            f"SELECT a.* FROM assignments a, clips c WHERE c.sha256=? AND {_ASSIGNED} ORDER BY a.id", (sha256,))))

    def amendments(self, sha256: str) -> list[AmendmentView]:
        return cast(list[AmendmentView], _rows(self.db.execute(
            "SELECT id, assignment_id, path, state, archive_key, created_at FROM amendments WHERE sha256=? "
            "ORDER BY id", (sha256,))))

    def trail(self, sha256: str, limit: int = 500) -> list[TrailEntry]:
        """Every recorded event about this clip, oldest first."""
        rows = self.db.execute("SELECT seq, ts, type, slot, data FROM events WHERE json_extract(data, '$.sha256')=? "
                               "ORDER BY seq LIMIT ?", (sha256, limit)).fetchall()
        return [cast(TrailEntry, {**dict(r), "data": json.loads(r["data"])}) for r in rows]

    def dock_clips(self, dock_id: int, limit: int = 200) -> list[DockClip]:
        """What the recorder of one dock holds, as far as that dock pulled it."""
        return cast(list[DockClip], _rows(self.db.execute(
            "SELECT i.path, i.size, i.state AS item_state, i.sha256, i.officer, c.state, c.capture_utc, "
            "c.manifest_path, c.assignment_id FROM items i LEFT JOIN clips c ON c.sha256=i.sha256 "
            "WHERE i.dock_id=? ORDER BY i.path LIMIT ?", (dock_id, limit))))

    # -- statistics -------------------------------------------------------------------------
    def stats_clips(self) -> list[StatsClip]:
        """Every clip with its officer, unit and dock time."""
        return cast(list[StatsClip], _rows(self.db.execute(
            "SELECT c.sha256, c.capture_utc, c.manifest_path, c.assignment_id, i.officer, d.unit, d.officer_name, "
            "d.docked_at FROM clips c JOIN items i ON i.id=c.item_id LEFT JOIN docks d ON d.id=i.dock_id")))

    def cased(self) -> set[str]:
        """Clips that some assignment (stamped or amended) files under a case."""
        return {r[0] for r in self.db.execute(
            f"SELECT c.sha256 FROM clips c JOIN assignments a ON {_ASSIGNED} WHERE a.case_number IS NOT NULL")}

    def alarm_counts(self) -> dict[str, int]:
        """How often each of ``ALARMS`` was recorded."""
        found = dict(self.db.execute(f"SELECT type, count(*) FROM events WHERE type IN ({in_list(set(ALARMS))}) "
                                     "GROUP BY type").fetchall())
        return {a: int(found.get(a, 0)) for a in ALARMS}
