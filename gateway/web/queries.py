"""What the pages read from the catalog, on a read-only connection of their
own: searches and statistics never hold the daemon's writer, and a query
here cannot change a state by mistake. Writes (events, assignments) go
through the catalog facade as everywhere else."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.evidence.manifest import MANIFEST_SUFFIX
from gateway.pipeline.staging import Staging

#: events that are a person looking at evidence through the pages
LOOK_EVENTS = ("viewed", "played", "downloaded", "exported")

_CLIP_COLS = ("SELECT c.sha256, c.size, c.state, c.capture_utc, c.partial, c.archive_key, c.staged_path, "
              "c.purged_at, c.manifest_path, c.assignment_id, c.created_at, c.archived_at, i.serial, i.officer, "
              "i.path, i.dock_id, d.officer_name, d.unit, d.docked_at, d.model, d.slot "
              "FROM clips c JOIN items i ON i.id=c.item_id LEFT JOIN docks d ON d.id=i.dock_id ")
#: the clip's assignments: the one it was stamped with and those its amendments carry
_ASSIGNED = ("(a.id=c.assignment_id OR a.id IN (SELECT m.assignment_id FROM amendments m "
             "WHERE m.sha256=c.sha256))")


@dataclass(frozen=True)
class Filters:
    officer: str = ""
    case: str = ""
    date_from: float | None = None
    date_to: float | None = None
    important: str = ""  # "", "yes", "no"
    category: str = ""
    state: str = ""


class Reader:
    def __init__(self, catalog_path: Path, staging: Staging) -> None:
        self.db = sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=10, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.staging = staging
        self._manifests: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.db.close()

    # -- one clip ------------------------------------------------------------------
    def manifest(self, row: sqlite3.Row | dict[str, Any]) -> dict[str, Any] | None:
        """The clip's signed manifest as staging holds it (the archive has the same bytes)."""
        sha = row["sha256"]
        if sha in self._manifests:
            return self._manifests[sha]
        if not row["manifest_path"]:
            return None
        try:
            doc: dict[str, Any] = json.loads(self.staging.resolve(row["manifest_path"]).read_bytes())
        except (OSError, ValueError):
            return None
        self._manifests[sha] = doc
        return doc

    def assignments(self, sha256: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT a.* FROM assignments a, clips c WHERE c.sha256=? AND {_ASSIGNED} ORDER BY a.id",
            (sha256,)).fetchall()
        return [dict(r) for r in rows]

    def describe(self, row: sqlite3.Row) -> dict[str, Any]:
        """A clip row with what people search by: case numbers, category,
        importance (the newest assignment that says, else the manifest)."""
        d = dict(row)
        d["name"] = bytes(row["path"]).decode("utf-8", "backslashreplace").rsplit("/", 1)[-1]
        d["path"] = bytes(row["path"]).decode("utf-8", "backslashreplace")
        ms = self.manifest(row)
        assigned = self.assignments(row["sha256"])
        d["cases"] = sorted({a["case_number"] for a in assigned if a["case_number"]})
        cats = [a["category"] for a in assigned if a["category"]]
        d["category"] = cats[-1] if cats else (ms or {}).get("category")
        marks = [a["important"] for a in assigned if a["important"] is not None]
        d["important"] = bool(marks[-1]) if marks else bool(((ms or {}).get("importance") or {}).get("important"))
        proofs = [a["proof"] for a in assigned if a["proof"]]
        d["proof"] = proofs[-1] if proofs else (ms or {}).get("proof_object")
        return d

    def clip(self, sha256: str) -> dict[str, Any] | None:
        row = self.db.execute(_CLIP_COLS + "WHERE c.sha256=?", (sha256,)).fetchone()
        return self.describe(row) if row else None

    def manifest_key(self, clip: dict[str, Any]) -> str | None:
        return clip["archive_key"] + MANIFEST_SUFFIX if clip["archive_key"] else None

    def amendments(self, sha256: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, assignment_id, path, state, archive_key, created_at FROM amendments "
                               "WHERE sha256=? ORDER BY id", (sha256,)).fetchall()
        return [dict(r) for r in rows]

    def trail(self, sha256: str, limit: int = 500) -> list[dict[str, Any]]:
        """Every recorded event about this clip, oldest first."""
        rows = self.db.execute("SELECT seq, ts, type, slot, data FROM events WHERE "
                               "json_extract(data, '$.sha256')=? ORDER BY seq LIMIT ?", (sha256, limit)).fetchall()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]

    def looks(self, sha256: str) -> list[dict[str, Any]]:
        return [e for e in self.trail(sha256, 100_000) if e["type"] in LOOK_EVENTS]

    # -- many ----------------------------------------------------------------------
    def search(self, f: Filters, limit: int = 200) -> list[dict[str, Any]]:
        where: list[str] = ["1"]
        args: list[Any] = []
        if f.officer:
            where.append("(i.officer=? OR d.officer_name=?)")
            args += [f.officer, f.officer]
        if f.date_from is not None:
            where.append("c.capture_utc>=?")
            args.append(f.date_from)
        if f.date_to is not None:
            where.append("c.capture_utc<?")
            args.append(f.date_to)
        if f.state:
            where.append("c.state=?")
            args.append(f.state)
        if f.case:
            where.append(f"EXISTS (SELECT 1 FROM assignments a WHERE {_ASSIGNED} AND a.case_number=?)")
            args.append(f.case)
        rows = self.db.execute(_CLIP_COLS + "WHERE " + " AND ".join(where)
                               + " ORDER BY coalesce(c.capture_utc, c.created_at) DESC LIMIT ?",
                               (*args, limit * 4 if f.category or f.important else limit)).fetchall()
        out = []
        for r in rows:
            d = self.describe(r)
            if f.category and d["category"] != f.category:
                continue
            if f.important and d["important"] != (f.important == "yes"):
                continue
            out.append(d)
        return out[:limit]

    def dock_clips(self, dock_id: int) -> list[dict[str, Any]]:
        """What the recorder now in a slot holds, as far as this dock pulled it."""
        rows = self.db.execute(
            "SELECT i.path, i.size, i.state AS item_state, i.sha256, i.officer, c.state, c.capture_utc, "
            "c.manifest_path, c.assignment_id FROM items i LEFT JOIN clips c ON c.sha256=i.sha256 "
            "WHERE i.dock_id=? ORDER BY i.path LIMIT 200", (dock_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["name"] = bytes(r["path"]).decode("utf-8", "backslashreplace").rsplit("/", 1)[-1]
            d["important"] = False
            d["cases"] = []
            if r["sha256"] and r["state"]:
                full = self.clip(r["sha256"])
                if full is not None:
                    d["important"], d["cases"] = full["important"], full["cases"]
            out.append(d)
        return out

    def case_clips(self, case: str) -> list[dict[str, Any]]:
        return self.search(Filters(case=case), limit=10_000)
