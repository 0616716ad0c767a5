"""What supervision reads from the catalog, as plain functions of a
``Reader``: the statistics (per officer and unit: clips, hours, late docks,
clips without a case; station alarms) and a dispatch list's proposals. The
pages (``stats.py``) run them in the heavy worker process (``heavy.py``)."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from typing import Any

from gateway.catalog.reports import LATE_DOCK_S
from gateway.values import ValueRefused, check_assignment, parse_time
from gateway.web.queries import Filters, Reader

#: a CSV larger than this is refused (a precinct's month of dispatches fits many times over)
MAX_CSV_ROWS = 20_000


def compute(reader: Reader, unassigned_after_h: float, now: float | None = None) -> dict[str, Any]:
    """The statistics: one query of the rollup the catalog keeps per officer,
    dock and capture day (``Reports.stats``), flat in the catalog's size
    (issue 30: 570 ms at 50 000 clips when every manifest was read, 99 ms
    at 25 000 as an aggregate over every clip)."""
    now = time.time() if now is None else now
    officers: list[dict[str, Any]] = []
    for r in reader.reports.stats(now - unassigned_after_h * 3600):
        officers.append({**r, "hours": round(float(r["hours"]), 3)})
    counts = reader.reports.alarm_counts()
    units: dict[str, dict[str, Any]] = {}
    for s in officers:
        u = units.setdefault(s["unit"], {"unit": s["unit"], "clips": 0, "hours": 0.0, "late_docks": 0,
                                         "without_case": 0})
        for k in ("clips", "hours", "late_docks", "without_case"):
            u[k] += s[k]
    return {"generated_at": now, "unassigned_after_h": unassigned_after_h, "late_dock_after_h": LATE_DOCK_S // 3600,
            "officers": officers, "units": sorted(units.values(), key=lambda u: u["unit"]),
            "wrong_password": counts.get("wrong_password", 0),
            "foreign_device": counts.get("foreign_device", 0) + counts.get("unrecognised_device", 0),
            "login_failed": counts.get("login_failed", 0)}


@dataclass(frozen=True)
class Dispatch:
    line: int
    officer: str
    start: float
    end: float
    case: str


def parse_dispatches(text: str) -> tuple[list[Dispatch], list[str]]:
    """Rows of officer, start, end, case number (ISO 8601 times; a header
    row is skipped). Each row meets the rules every door applies to an
    assignment (``gateway/values.py``: times within the window, the end not
    before the start, a bounded span, printable texts); problems name
    their line and field."""
    out, problems = [], []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if n == 1 and row[0].strip().lower() in ("officer", "警号"):
            continue
        if n > MAX_CSV_ROWS:
            problems.append(f"more than {MAX_CSV_ROWS} rows; the rest is ignored")
            break
        if len(row) < 4:
            problems.append(f"line {n}: want officer, start, end, case number")
            continue
        try:
            start = parse_time("start", row[1])
            end = parse_time("end", row[2])
            v = check_assignment(row[0], start, end, row[3].strip() or None)
            if v.case is None:
                raise ValueRefused("case", "missing")
        except ValueRefused as e:
            problems.append(f"line {n}: {e}")
            continue
        out.append(Dispatch(n, v.officer, v.start, v.end, v.case))
    return out, problems


def propose(reader: Reader, text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """A dispatch list's proposals: for each row, the officer's clips of its
    span not yet under its case (and the rows with no footage)."""
    dispatches, problems = parse_dispatches(text)
    proposals: list[dict[str, Any]] = []
    empty: list[dict[str, Any]] = []
    for d in dispatches:
        clips = [c for c in reader.search_all(_filters(d.officer, d.start, d.end)) if d.case not in c["cases"]]
        (proposals if clips else empty).append({"d": d, "clips": clips})
    return proposals, empty, problems


def _filters(officer: str, start: float, end: float) -> Any:
    return Filters(officer=officer, date_from=start, date_to=end + 1e-6)
