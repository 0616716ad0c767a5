"""Statistics for supervision, as pages and JSON, and the dispatch import.

Per officer and unit: clips and hours recorded, clips docked later than 24 h
after recording, clips still without a case after ``web.unassigned_after_h``;
station-wide: wrong-password and foreign-device counts. A dispatch list
(CSV: officer, start, end, case number) proposes case assignments where
clip times overlap; a supervisor confirms each one (it then takes the same
path as `dockgate assign`), and dispatches with no footage are listed."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.web_request import FileField

from gateway.values import check_assignment
from gateway.web.context import Web
from gateway.web.heavy import compute_in_worker, propose_in_worker
from gateway.web.supervision import MAX_CSV_ROWS, Dispatch, parse_dispatches

__all__ = ["MAX_CSV_ROWS", "Dispatch", "parse_dispatches", "routes"]


def routes(app: web.Application, w: Web) -> None:
    async def stats_page(request: web.Request) -> web.Response:
        s = await w.in_worker(compute_in_worker, w.cfg.web.unassigned_after_h)
        await w.record("statistics_viewed", request, what="statistics page", officers=len(s["officers"]))
        return w.render(request, "stats.html", s=s)

    async def stats_json(request: web.Request) -> web.Response:
        s = await w.in_worker(compute_in_worker, w.cfg.web.unassigned_after_h)
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
        proposals, empty, problems = await w.in_worker(propose_in_worker, raw.decode("utf-8-sig", "replace"))
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
