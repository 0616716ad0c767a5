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

Why ~460 lines in one module: every query made for people is here, beside
the indexes it relies on (the review's searches name theirs,
``search_where``), so a change to one read is checked against the others
and the schema in one place; the typed rows they return are most of it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast

from gateway.catalog.records import (
    DockRow,
    EventRow,
    from_row,
    hash_sql,
    manifest_sql,
    staged_sql,
    stored_hash,
    unpacked_seqs,
)
from gateway.catalog.schema import CLIP_OPEN, FILE_NAME, ITEM_OPEN, STATS_LATE_S
from gateway.catalog.states import QUEUED, STATES, TO_PULL
from gateway.catalog.store import CatalogError


def open_readonly(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """A read-only connection. With the daemon running its -wal and -shm
    files are there to read; with it stopped they are not, and nobody
    writes, so the file is opened as immutable. *any_thread*: the web reads
    from its handlers' threads."""
    if not path.exists():
        raise FileNotFoundError(path)
    # a PermissionError here names the file, not "unable to open". Never open() the file to find out:
    # closing any descriptor of it drops every POSIX lock this process holds on it, the daemon's own
    # writer's among them (the housekeeper checks the catalog from inside the daemon), and other
    # processes then stopped seeing the daemon's commits in the WAL
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
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
    """Recorder items still to pull and clips, by state: from ``state_counts`` (kept by triggers: the daemon's
    status and metrics, `status`), counted only in a catalog its migration has not reached yet."""
    return kept_counts(db)[0]


def kept_counts(db: sqlite3.Connection) -> tuple[dict[str, int], int]:
    """(``counts``, items seen but not to pull: sightings) from ``state_counts``."""
    try:
        kept = db.execute("SELECT tbl, state, n FROM state_counts").fetchall()
    except sqlite3.OperationalError:  # a catalog the daemon has not migrated yet (just upgraded)
        return _counted(db), _sightings_counted(db)
    out = dict.fromkeys(STATES, 0)
    sightings = 0
    for tbl, state, n in sorted(kept, key=lambda r: r[0] != "items"):  # as _counted: a clip's state wins
        if n and (tbl == "clips" or state in TO_PULL):
            out[state] = int(n)
        elif tbl == "items" and state == "sighting":
            sightings = int(n)
    return out, sightings


def _sightings_counted(db: sqlite3.Connection) -> int:
    return int(db.execute(f"SELECT count(*) FROM items WHERE state='sighting' AND {ITEM_OPEN}").fetchone()[0])


def _counted(db: sqlite3.Connection) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for state, n in db.execute(f"SELECT state, count(*) FROM items WHERE state IN ({in_list(TO_PULL)}) "
                               f"AND {ITEM_OPEN} GROUP BY state"):
        out[state] = n
    # the clips not archived on their (partial) index, the archived the rest of every clip (the smallest index)
    (out["archived"],) = db.execute("SELECT count(*) FROM clips").fetchone()
    for state, n in db.execute(f"SELECT state, count(*) FROM clips WHERE {CLIP_OPEN} GROUP BY state"):
        out[state] = n
        out["archived"] -= n
    return out


def queue(db: sqlite3.Connection) -> tuple[int, int]:
    """Clips and bytes not yet archived (staged or forwarding)."""
    # INDEXED BY: on a station whose clips are nearly all archived, ANALYZE's
    # average rows per state (250 000 at a year) makes the planner scan every
    # clip for an IN list of the rare queued states (115 ms at 250 000 clips,
    # twice a second from the daemon's status and the forwarder's lag check)
    row = db.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM clips INDEXED BY clips_queue "
                     f"WHERE state IN ({in_list(QUEUED)}) AND {CLIP_OPEN}").fetchone()
    return int(row[0]), int(row[1])


def queue_oldest_age(db: sqlite3.Connection, now: float) -> float:
    """Seconds since the oldest clip not yet archived was staged (0: none)."""
    row = db.execute(f"SELECT min(created_at) FROM clips INDEXED BY clips_queue "
                     f"WHERE state IN ({in_list(QUEUED)}) AND {CLIP_OPEN}").fetchone()
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
    category: str | None
    important: int
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
    """One custody entry about a clip. ``seq`` is its outbox event's, and
    ``type``/``ts``/``data`` come from it, while the catalog keeps that event;
    once pruned (``Catalog.prune_events``) they are None here and the custody
    log (entry ``custody_seq``) is the place to read them."""

    seq: int | None
    custody_seq: int
    ts: float | None
    type: str | None
    slot: int | None
    data: dict[str, Any] | None


class Pruned(TypedDict):
    """How far the outbox was pruned: events up to ``upto_seq`` (``events``
    of them in all), custody entries up to ``custody_upto``."""

    upto_seq: int
    custody_upto: int | None
    events: int
    at: float


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


class StatsRow(TypedDict):
    officer: str
    unit: str
    name: str | None
    clips: int
    hours: float
    late_docks: int
    without_case: int


@dataclass(frozen=True)
class ClipQuery:
    """What the review searches by, every filter in SQL (``search_where``):
    officer (number, or the name a dock recorded), capture time, state,
    case, category and importance (the newest assignment that says, else the
    manifest: columns of the clip, kept current by the catalog), and *text*,
    a piece of the file name."""

    officer: str = ""
    case: str = ""
    date_from: float | None = None
    date_to: float | None = None
    important: str = ""  # "", "yes", "no"
    category: str = ""
    state: str = ""
    text: str = ""


#: the order of the review's results and of the indexes it walks: capture time, else when staged
WHEN = "coalesce(c.capture_utc, c.created_at)"
#: shortest free text the trigram index finds (a shorter one is matched by scanning the names)
MIN_TEXT = 3


def search_where(db: sqlite3.Connection, q: ClipQuery) -> tuple[str, list[Any]]:
    """The WHERE clause over ``clips c`` for *q*, and its arguments. Each
    typical search walks an index in result order or fetches a small set by
    key (docs/performance.md, "A year of history"): officer (+ day):
    ``clips_officer_when``; category: ``clips_category_when``; importance:
    ``clips_important_when``; case: its assignments by ``assignments_case``,
    then the clips by ``clips_assignment`` and ``amendments_assignment``;
    free text: the trigram index ``clip_names``; days alone: ``clips_when``."""
    where: list[str] = []
    args: list[Any] = []
    if q.officer:
        names = [r[0] for r in db.execute("SELECT DISTINCT officer FROM docks WHERE officer_name=? "
                                          "AND officer IS NOT NULL", (q.officer,))]
        officers = sorted({q.officer, *names})
        where.append(f"c.officer IN ({','.join('?' * len(officers))})")
        args += officers
    if q.date_from is not None:
        where.append(f"{WHEN}>=? AND c.capture_utc IS NOT NULL")
        args.append(q.date_from)
    if q.date_to is not None:
        where.append(f"{WHEN}<? AND c.capture_utc IS NOT NULL")
        args.append(q.date_to)
    if q.state:
        where.append("c.state=?" + ("" if q.state == "archived" else f" AND c.{CLIP_OPEN}"))  # clips_state
        args.append(q.state)
    if q.category:
        where.append("c.category=?")
        args.append(q.category)
    if q.important:  # literal: ``clips_important_when`` holds the important ones only
        where.append("c.important=1" if q.important == "yes" else "c.important=0")
    if q.case:
        # INDEXED BY: nearly every clip has no assignment, and ANALYZE then says one matches every row
        where.append("c.sha256 IN (SELECT k.sha256 FROM clips k INDEXED BY clips_assignment WHERE k.assignment_id IN "
                     "(SELECT id FROM assignments WHERE case_number=?) UNION SELECT m.sha256 FROM amendments m "
                     "WHERE m.assignment_id IN (SELECT id FROM assignments WHERE case_number=?))")
        args += [q.case, q.case]
    if len(q.text) >= MIN_TEXT:
        where.append("c.sha256 IN (SELECT t.sha256 FROM items t WHERE t.id IN "
                     "(SELECT rowid FROM clip_names WHERE clip_names MATCH ?))")
        args.append('"' + q.text.replace('"', '""') + '"')
    elif q.text:
        name = FILE_NAME.format(p="CAST(t.path AS TEXT)")  # what the trigram index holds
        where.append(f"c.item_id IN (SELECT t.id FROM items t WHERE instr(lower({name}), ?))")
        args.append(q.text.lower())
    return " AND ".join(where) or "1", args


_CLIP_COLS = (f"SELECT {hash_sql('c.sha256')} AS sha256, c.size, c.state, c.capture_utc, c.partial, c.archive_key, "
              f"{staged_sql()} AS staged_path, c.purged_at, {manifest_sql()} AS manifest_path, c.assignment_id, "
              "c.created_at, c.archived_at, c.category, c.important, "
              "i.serial, i.officer, "
              "i.path, i.dock_id, d.officer_name, d.unit, d.docked_at, d.model, d.slot "
              "FROM clips c JOIN items i ON i.id=c.item_id LEFT JOIN docks d ON d.id=i.dock_id ")
#: the clip's assignments: the one it was stamped with and those its amendments carry
def assigned(clip: str = "c") -> str:
    """SQL: assignment ``a`` is one of clip *clip*'s (the table or its alias)."""
    return (f"(a.id={clip}.assignment_id OR a.id IN (SELECT m.assignment_id FROM amendments m "
            f"WHERE m.sha256={clip}.sha256))")


_ASSIGNED = assigned()
#: the station alarms the statistics count
ALARMS = ("wrong_password", "foreign_device", "unrecognised_device", "login_failed")


#: a clip docked more than this after its capture is a late dock (fixed: the rollup counts by it)
LATE_DOCK_S = STATS_LATE_S
#: the statistics: the rollup's rows (their clips not under a case counted for the days before the
#: boundary day), and the clips of the boundary day captured before the boundary and not under a case
_STATS = (
    "SELECT o.officer AS officer, coalesce(d.unit, '') AS unit, max(d.officer_name) AS name, "
    "sum(o.clips) AS clips, sum(o.seconds) / 3600.0 AS hours, sum(o.late_docks) AS late_docks, "
    "sum(o.uncased) AS without_case FROM ("
    " SELECT officer, dock_id, clips, seconds, late_docks, CASE WHEN day < :day THEN uncased ELSE 0 END AS uncased"
    " FROM stats_rollup WHERE clips > 0"
    " UNION ALL"
    " SELECT coalesce(c.officer, '?'), coalesce(i.dock_id, 0), 0, 0, 0, 1 FROM clips c JOIN items i ON i.id=c.item_id"
    f" WHERE {WHEN}>=:start AND {WHEN}<:before AND c.capture_utc IS NOT NULL AND NOT c.cased"
    ") o LEFT JOIN docks d ON d.id=o.dock_id GROUP BY 1, 2 ORDER BY 2, 1")

#: how often each alarm was recorded: its WHERE is ``events_alarms``'s, so the count reads that index only
_ALARMS = f"SELECT type, count(*) FROM events WHERE type IN ({in_list(set(ALARMS))}) GROUP BY type"


def _stats_args(unassigned_before: float) -> dict[str, float]:
    day = math.floor(unassigned_before / 86400)
    return {"day": day, "start": day * 86400.0, "before": unassigned_before}


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

    def integrity(self) -> str:
        """SQLite's own quick check: "ok", or what is damaged (reads the whole file)."""
        rows = self.db.execute("PRAGMA quick_check").fetchall()
        return "; ".join(str(r[0]) for r in rows[:20])

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
        return kept_counts(self.db)[1]

    def kept_counts(self) -> tuple[dict[str, int], int]:
        """``counts()`` and ``sightings()`` in one read."""
        return kept_counts(self.db)

    def newest_checkpoint(self) -> str | None:
        """The name of the newest checkpoint the catalog recorded (``checkpoint-STATION-SEQ.json``: the custody
        segment sealed last ended at SEQ), without reading every one."""
        row = self.db.execute("SELECT name FROM segments WHERE name LIKE 'checkpoint-%.json' "
                              "ORDER BY rowid DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def released_and_purged(self) -> tuple[int, int]:
        """Over the station's life: kept by triggers (``station_totals``), not counted row by row."""
        try:
            totals = dict(self.db.execute("SELECT name, n FROM station_totals").fetchall())
        except sqlite3.OperationalError:  # a catalog the daemon has not migrated yet (just upgraded)
            totals = {"released": self.db.execute("SELECT count(*) FROM items WHERE released_at IS NOT NULL")
                      .fetchone()[0],
                      "purged": self.db.execute("SELECT count(*) FROM clips WHERE purged_at IS NOT NULL").fetchone()[0]}
        return int(totals.get("released", 0)), int(totals.get("purged", 0))

    def dock(self, dock_id: int) -> DockRow | None:
        row = self.db.execute("SELECT * FROM docks WHERE id=?", (dock_id,)).fetchone()
        return from_row(DockRow, row) if row else None

    def recent_docks(self, limit: int = 10) -> list[DockSummary]:
        return cast(list[DockSummary], _rows(self.db.execute(
            "SELECT id, slot, serial, officer, unit, model, profile, clock_drift_s, clock_set, docked_at, "
            "undocked_at, result, idcode, volume_label FROM docks ORDER BY id DESC LIMIT ?", (limit,))))

    # -- clips, for the review --------------------------------------------------------------
    def clip(self, sha256: str) -> ClipView | None:
        row = self.db.execute(_CLIP_COLS + "WHERE c.sha256=?", (stored_hash(sha256),)).fetchone()
        return cast(ClipView, dict(row)) if row else None

    def search(self, q: ClipQuery, limit: int, offset: int = 0) -> list[ClipView]:
        """One page of the clips *q* matches, newest capture first (``search_where``)."""
        where, args = search_where(self.db, q)
        return cast(list[ClipView], _rows(self.db.execute(
            _CLIP_COLS + "WHERE " + where + f" ORDER BY {WHEN} DESC, c.rowid DESC LIMIT ? OFFSET ?",
            (*args, limit, offset))))

    def search_count(self, q: ClipQuery) -> int:
        """How many clips *q* matches (on the same index as its pages)."""
        where, args = search_where(self.db, q)
        return int(self.db.execute("SELECT count(*) FROM clips c WHERE " + where, args).fetchone()[0])

    def search_plan(self, q: ClipQuery) -> str:
        """SQLite's plan for one page of *q* (``EXPLAIN QUERY PLAN``): which
        index the search walks; tests and the benchmark assert on it."""
        where, args = search_where(self.db, q)
        rows = self.db.execute("EXPLAIN QUERY PLAN " + _CLIP_COLS + "WHERE " + where
                               + f" ORDER BY {WHEN} DESC, c.rowid DESC LIMIT 50", args).fetchall()
        return "\n".join(str(r[3]) for r in rows)

    def assignments(self, sha256: str) -> list[AssignmentView]:
        """The clip's assignments, oldest first."""
        return cast(list[AssignmentView], _rows(self.db.execute(
            f"SELECT a.* FROM assignments a, clips c WHERE c.sha256=? AND {_ASSIGNED} ORDER BY a.id",
            (stored_hash(sha256),))))

    def amendments(self, sha256: str) -> list[AmendmentView]:
        return cast(list[AmendmentView], _rows(self.db.execute(
            "SELECT id, assignment_id, path, state, archive_key, created_at FROM amendments WHERE sha256=? "
            "ORDER BY id", (stored_hash(sha256),))))

    def trail(self, sha256: str, limit: int = 500) -> list[TrailEntry]:
        """Every custody entry about this clip, oldest first, with its event
        while the outbox keeps it (``TrailEntry``): the clip's entries
        (``clip_trail``, by its item) and their events, by index (reading
        every event's JSON took seconds at a year's history)."""
        row = self.db.execute("SELECT t.seqs FROM clips c JOIN clip_trail t ON t.item=c.item_id WHERE c.sha256=?",
                              (stored_hash(sha256),)).fetchone()
        seqs = unpacked_seqs(row[0] if row else None)[:max(0, limit)]
        kept: dict[int, sqlite3.Row] = {}
        for i in range(0, len(seqs), 500):  # SQLite's bound parameters are limited
            part = seqs[i:i + 500]
            kept.update((r["custody_seq"], r) for r in self.db.execute(
                f"SELECT seq, ts, type, slot, data, custody_seq FROM events WHERE custody_seq IN "
                f"({','.join('?' * len(part))})", part))
        return [cast(TrailEntry, {"custody_seq": s, "seq": None, "ts": None, "type": None, "slot": None, "data": None}
                     if (e := kept.get(s)) is None else
                     {"custody_seq": s, "seq": e["seq"], "ts": e["ts"], "type": e["type"], "slot": e["slot"],
                      "data": json.loads(e["data"])})
                for s in seqs]

    def pruned(self) -> Pruned | None:
        """How far the outbox was pruned (None: never)."""
        row = self.db.execute("SELECT upto_seq, custody_upto, events, at FROM events_pruned WHERE id=1").fetchone()
        return cast(Pruned, dict(row)) if row else None

    def dock_clips(self, dock_id: int, limit: int = 200) -> list[DockClip]:
        """What the recorder of one dock holds, as far as that dock pulled it."""
        return cast(list[DockClip], _rows(self.db.execute(
            f"SELECT i.path, i.size, i.state AS item_state, {hash_sql('i.sha256')} AS sha256, i.officer, c.state, "
            "c.capture_utc, "
            f"{manifest_sql()} AS manifest_path, c.assignment_id FROM items i LEFT JOIN clips c ON c.sha256=i.sha256 "
            "WHERE i.dock_id=? ORDER BY i.path LIMIT ?", (dock_id, limit))))

    # -- statistics -------------------------------------------------------------------------
    def stats(self, unassigned_before: float) -> list[StatsRow]:
        """Per officer and unit: clips, recorded hours, late docks (docked
        more than ``LATE_DOCK_S`` after capture), clips captured before
        *unassigned_before* that no assignment files under a case. From the
        rollup the catalog keeps per officer, dock and capture day
        (``stats_rollup``, schema.py), not from the clips: the days before
        *unassigned_before*'s count whole, its own day is counted from the
        clips captured in it (``clips_when``), flat in the catalog's size."""
        return cast(list[StatsRow], _rows(self.db.execute(_STATS, _stats_args(unassigned_before))))

    def stats_plan(self, unassigned_before: float) -> str:
        """SQLite's plan for ``stats`` (``EXPLAIN QUERY PLAN``): it reads no clip but its boundary day's."""
        rows = self.db.execute("EXPLAIN QUERY PLAN " + _STATS, _stats_args(unassigned_before)).fetchall()
        rows += self.db.execute("EXPLAIN QUERY PLAN " + _ALARMS).fetchall()
        return "\n".join(str(r[3]) for r in rows)

    def alarm_counts(self) -> dict[str, int]:
        """How often each of ``ALARMS`` was recorded (on the partial index ``events_alarms``)."""
        found = dict(self.db.execute(_ALARMS).fetchall())
        return {a: int(found.get(a, 0)) for a in ALARMS}
