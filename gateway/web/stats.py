"""Statistics for supervision, as pages and JSON, and the dispatch import.

Per officer and unit: clips and hours recorded, clips docked later than 24 h
after recording, clips still without a case after ``web.unassigned_after_h``;
station-wide: wrong-password and foreign-device counts. A dispatch list
(CSV: officer, start, end, case number) proposes case assignments where
clip times overlap; a supervisor confirms each one (it then takes the same
path as `dockgate assign`), and dispatches with no footage are listed."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from gateway.values import ValueRefused, check_assignment, parse_time
from gateway.web.context import Web
from gateway.web.queries import Reader

LATE_DOCK_S = 24 * 3600
#: a CSV larger than this is refused (a precinct's month of dispatches fits many times over)
MAX_CSV_ROWS = 20_000


def compute(reader: Reader, unassigned_after_h: float, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    per: dict[tuple[str, str], dict[str, Any]] = {}
    rows = reader.reports.stats_clips()
    cased = reader.reports.cased()
    for r in rows:
        key = (r["officer"] or "?", r["unit"] or "")
        s = per.setdefault(key, {"officer": key[0], "name": r["officer_name"], "unit": key[1], "clips": 0,
                                 "hours": 0.0, "late_docks": 0, "without_case": 0})
        s["clips"] += 1
        ms = reader.manifest(r) or {}
        duration = ((ms.get("clip") or {}).get("container") or {}).get("duration_s")
        if duration:
            s["hours"] += float(duration) / 3600
        if r["capture_utc"] is not None and r["docked_at"] is not None \
                and r["docked_at"] - r["capture_utc"] > LATE_DOCK_S:
            s["late_docks"] += 1
        if r["capture_utc"] is not None and r["sha256"] not in cased \
                and now - r["capture_utc"] > unassigned_after_h * 3600:
            s["without_case"] += 1
    counts = reader.reports.alarm_counts()
    officers = sorted(per.values(), key=lambda s: (s["unit"], s["officer"]))
    for s in officers:
        s["hours"] = round(s["hours"], 3)
    units: dict[str, dict[str, Any]] = {}
    for s in officers:
        u = units.setdefault(s["unit"], {"unit": s["unit"], "clips": 0, "hours": 0.0, "late_docks": 0,
                                         "without_case": 0})
        for k in ("clips", "hours", "late_docks", "without_case"):
            u[k] += s[k]
    return {"generated_at": now, "unassigned_after_h": unassigned_after_h, "late_dock_after_h": 24,
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
        clips = [c for c in reader.search(_filters(d.officer, d.start, d.end), limit=1000) if d.case not in c["cases"]]
        (proposals if clips else empty).append({"d": d, "clips": clips})
    return proposals, empty, problems


def routes(app: web.Application, w: Web) -> None:
    async def stats_page(request: web.Request) -> web.Response:
        s = await w.heavy(compute, w.reader, w.cfg.web.unassigned_after_h)
        await w.record("statistics_viewed", request, what="statistics page", officers=len(s["officers"]))
        return w.render(request, "stats.html", s=s)

    async def stats_json(request: web.Request) -> web.Response:
        s = await w.heavy(compute, w.reader, w.cfg.web.unassigned_after_h)
        await w.record("statistics_viewed", request, what="statistics JSON", officers=len(s["officers"]))
        return web.json_response(s, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def dispatch_form(request: web.Request) -> web.Response:
        return w.render(request, "dispatch.html", proposals=None, empty=None, problems=[], done=None)

    async def dispatch_upload(request: web.Request) -> web.Response:
        """Proposals list officers, times, cases and clip names: a look at
        evidence, on the custody record with what it showed."""
        form = await request.post()
        field = form.get("csv")
        raw = field.file.read() if isinstance(field, FileField) else str(field or "").encode()
        proposals, empty, problems = await w.heavy(propose, w.reader, raw.decode("utf-8-sig", "replace"))
        await w.record("searched", request, what="dispatch proposal", rows=len(proposals) + len(empty),
                       proposals=len(proposals), clips=sum(len(p["clips"]) for p in proposals),
                       problems=len(problems))
        return w.render(request, "dispatch.html", proposals=proposals, empty=empty, problems=problems, done=None)

    async def dispatch_confirm(request: web.Request) -> web.Response:
        form = await request.post()
        done = []
        for value in form.getall("take", []):
            try:
                officer, start, end, case = json.loads(str(value))
                v = check_assignment(officer, start, end, case)
            except (ValueError, TypeError) as e:  # ValueRefused is a ValueError: it names the field
                raise web.HTTPBadRequest(text=f"a proposal was altered: {e}"[:300]) from None
            if v.case is None:
                raise web.HTTPBadRequest(text="a proposal was altered: case: missing")
            officer, start, end, case = v.officer, v.start, v.end, v.case
            aid = await w.door.add_assignment(officer, start, end, case, None, None, None)
            await w.door.emit("marked", None, assignment=aid, officer=officer, case_number=case,
                              via="dispatch import", user=w.user(request), remote=w.remote(request))
            done.append({"officer": officer, "case": case, "assignment": aid})
        w.door.wake_stamper()
        return w.render(request, "dispatch.html", proposals=None, empty=None, problems=[], done=done)

    app.router.add_get("/review/stats", stats_page)
    app.router.add_get("/review/stats.json", stats_json)
    app.router.add_get("/review/dispatch", dispatch_form)
    app.router.add_post("/review/dispatch", dispatch_upload)
    app.router.add_post("/review/dispatch/confirm", dispatch_confirm)


def _filters(officer: str, start: float, end: float) -> Any:
    from gateway.web.queries import Filters

    return Filters(officer=officer, date_from=start, date_to=end + 1e-6)
