"""What the pages read: the catalog's reports (``gateway/catalog/reports.py``,
on a read-only connection of their own: searches and statistics never hold
the daemon's writer, and a query cannot change a state by mistake) joined
with what the signed manifests say. Writes (events, assignments) go through
the catalog facade as everywhere else."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.catalog import DockRow
from gateway.catalog.reports import AmendmentView, ClipQuery, ClipView, Reports, TrailEntry
from gateway.evidence.custody import read_entries
from gateway.evidence.manifest import MANIFEST_SUFFIX
from gateway.pipeline.staging import Staging
from gateway.web.names import display_name

#: events that are a person looking at evidence through the pages
LOOK_EVENTS = ("viewed", "played", "downloaded", "exported")
#: what the review searches by (every filter in the catalog's SQL: ``reports.search_where``)
Filters = ClipQuery
#: clips on one page of the review's results
PAGE = 100


@dataclass(frozen=True)
class Results:
    """One page of a search: its rows, how many clips match in all, and where the page starts."""

    rows: list[dict[str, Any]]
    total: int
    offset: int
    page_size: int


class Reader:
    """Reads for the pages, from the web's loop and its worker threads: each
    thread reads on a read-only connection of its own."""

    def __init__(self, catalog_path: Path, staging: Staging, custody_dir: Path | None = None) -> None:
        self.path = catalog_path
        self.staging = staging
        #: where the trail reads custody entries the catalog's outbox no longer keeps
        self.custody_dir = custody_dir
        self._manifests: dict[str, dict[str, Any]] = {}
        self._local = threading.local()
        self._opened: list[Reports] = []
        self._lock = threading.Lock()
        self.reports  # noqa: B018 - open one now: a catalog that cannot be read fails here, not mid-page

    @property
    def reports(self) -> Reports:
        r: Reports | None = getattr(self._local, "reports", None)
        if r is None:
            r = self._local.reports = Reports(self.path, any_thread=True)
            with self._lock:
                self._opened.append(r)
        return r

    def close(self) -> None:
        with self._lock:
            for r in self._opened:
                r.close()
            self._opened.clear()

    # -- one clip ------------------------------------------------------------------
    def manifest(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
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

    def dock(self, dock_id: int) -> DockRow | None:
        return self.reports.dock(dock_id)

    def assignments(self, sha256: str) -> list[dict[str, Any]]:
        return [dict(a) for a in self.reports.assignments(sha256)]

    def describe(self, row: ClipView) -> dict[str, Any]:
        """A clip row with what people search by: case numbers, category,
        importance (the newest assignment that says, else the manifest)."""
        d: dict[str, Any] = dict(row)
        d["path"] = display_name(bytes(row["path"]))  # GBK names on a FAT volume read as people wrote them
        d["name"] = d["path"].rsplit("/", 1)[-1]
        ms = self.manifest(row)
        assigned = self.assignments(row["sha256"])
        d["cases"] = sorted({a["case_number"] for a in assigned if a["case_number"]})
        # category and importance: the catalog keeps the newest assignment's word, else the manifest's
        d["important"] = bool(row["important"])
        proofs = [a["proof"] for a in assigned if a["proof"]]
        d["proof"] = proofs[-1] if proofs else (ms or {}).get("proof_object")
        return d

    def clip(self, sha256: str) -> dict[str, Any] | None:
        row = self.reports.clip(sha256)
        return self.describe(row) if row else None

    def manifest_key(self, clip: dict[str, Any]) -> str | None:
        return clip["archive_key"] + MANIFEST_SUFFIX if clip["archive_key"] else None

    def amendments(self, sha256: str) -> list[AmendmentView]:
        return self.reports.amendments(sha256)

    def trail(self, sha256: str, limit: int = 500) -> list[TrailEntry]:
        """Every recorded event about this clip, oldest first. Those the
        catalog's outbox no longer keeps (pruned once published and archived:
        ``Catalog.prune_events``) are read from the custody log on the
        station; one whose segment has left the station too says so, with
        its number in the log (the archive's ``custody/`` holds it)."""
        rows = self.reports.trail(sha256, limit)
        gone = [r["custody_seq"] for r in rows if r["type"] is None]
        if not gone:
            return rows
        found = read_entries(self.custody_dir, gone) if self.custody_dir is not None else {}
        for r in rows:
            if r["type"] is not None:
                continue
            entry = found.get(r["custody_seq"])
            if entry is None:
                r["type"] = "archived"
                r["data"] = {"custody_seq": r["custody_seq"], "where": "the archive's custody log"}
                continue
            data = dict(entry.get("data") or {})
            r["slot"] = data.pop("slot", None)
            r["type"] = str(entry.get("event"))
            r["data"] = data
            with contextlib.suppress(ValueError, TypeError):
                r["ts"] = datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()
        return rows

    def looks(self, sha256: str) -> list[TrailEntry]:
        return [e for e in self.trail(sha256, 100_000) if e["type"] in LOOK_EVENTS]

    # -- many ----------------------------------------------------------------------
    def search(self, f: Filters, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        """The matches *offset* to *offset* + *limit*, newest first."""
        return [self.describe(r) for r in self.reports.search(f, limit, offset)]

    def page(self, f: Filters, offset: int = 0, page_size: int = PAGE) -> Results:
        """One page of every match, and how many there are."""
        return Results(self.search(f, page_size, offset), self.reports.search_count(f), offset, page_size)

    def search_all(self, f: Filters) -> list[dict[str, Any]]:
        """Every match, page by page (a case's clips, a dispatch's span)."""
        out: list[dict[str, Any]] = []
        while len(batch := self.search(f, 1000, len(out))) == 1000:
            out += batch
        return out + batch

    def dock_clips(self, dock_id: int) -> list[dict[str, Any]]:
        """What the recorder now in a slot holds, as far as this dock pulled it."""
        out = []
        for r in self.reports.dock_clips(dock_id):
            d: dict[str, Any] = dict(r)
            d["name"] = display_name(bytes(r["path"])).rsplit("/", 1)[-1]
            d["important"] = False
            d["cases"] = []
            if r["sha256"] and r["state"]:
                full = self.clip(r["sha256"])
                if full is not None:
                    d["important"], d["cases"] = full["important"], full["cases"]
            out.append(d)
        return out

    def case_clips(self, case: str) -> list[dict[str, Any]]:
        return self.search_all(Filters(case=case))
