"""A station with history (bench/history.py's generator, 1 600 clips over
16 days): the review lists every match of a search, page by page, however
old; each typical search walks its index (SQLite's EXPLAIN QUERY PLAN names
it), never the whole catalog; the statistics count every clip from one
aggregate; and the review page says how many clips match and links every
page."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bench.history import CATEGORIES, History, Size, build
from gateway.catalog.reports import ClipQuery, Reports
from gateway.config import load_config
from gateway.pipeline.staging import Staging
from gateway.web.queries import Reader
from gateway.web.supervision import compute
from tests.helpers import DaemonProc
from tests.servers import free_port
from tests.test_web_support import enable_web, wait_http

SMALL = Size(clips=1_600, amendments=300, days=16, recorders=10, officers=12, cases=12, media_days=1)
SUPERVISOR, PASSWORD = "inspector", "correct horse battery"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    h = build(tmp_path_factory.mktemp("history"), SMALL)
    # as the housekeeper's PRAGMA optimize does on a station: the planner then knows that nearly every
    # clip is archived and under no case, and would scan every clip for the rare ones without the indexes
    import sqlite3

    db = sqlite3.connect(load_config(h.config).catalog_path)
    db.execute("ANALYZE")
    db.close()
    return h


@pytest.fixture(scope="module")
def reader(history: History) -> Iterator[Reader]:
    cfg = load_config(history.config)
    r = Reader(cfg.catalog_path, Staging(cfg.paths.staging, 0))
    yield r
    r.close()


def every_clip(reader: Reader) -> list[dict[str, Any]]:
    return reader.search_all(ClipQuery())


def expected(reader: Reader, history: History, pick: Any) -> set[str]:
    """The clips the generator filed under the cases *pick* chooses, from
    the cases' spans (officer, time) and every clip: the ground truth."""
    spans = [s for i, s in enumerate(history.case_spans) if pick(i)]
    return {c["sha256"] for c in every_clip(reader)
            if any(c["officer"] == o and a <= (c["capture_utc"] or 0) <= b for o, a, b, _ in spans)}


def test_the_history_is_the_size_asked_for(history, reader):
    assert len(every_clip(reader)) == SMALL.clips
    assert reader.reports.search_count(ClipQuery()) == SMALL.clips


def test_every_clip_of_a_category_is_listed_however_old(history, reader):
    """The oldest clips are far past the newest 800 (issue 30: they vanished)."""
    for n, category in enumerate(CATEGORIES[:3]):
        want = expected(reader, history, lambda i, n=n: i % len(CATEGORIES) == n)
        assert want, category
        got = reader.search_all(ClipQuery(category=category))
        assert {c["sha256"] for c in got} == want
        assert reader.reports.search_count(ClipQuery(category=category)) == len(want)
    newest_800 = {c["sha256"] for c in reader.search(ClipQuery(), 800)}
    assert expected(reader, history, lambda i: True) - newest_800, "some match must be older than the newest 800"


def test_every_important_clip_is_listed_across_pages(history, reader):
    want = expected(reader, history, lambda i: i % 10 == 0)
    pages, offset = [], 0
    while batch := reader.search(ClipQuery(important="yes"), 7, offset):
        pages.append(batch)
        offset += len(batch)
    assert {c["sha256"] for p in pages for c in p} == want and len(pages) > 1
    assert sum(len(p) for p in pages) == len(want)  # no clip twice


def test_a_case_lists_every_amended_clip(history, reader):
    officer, start, end, case = history.case_spans[0]
    want = {c["sha256"] for c in every_clip(reader) if c["officer"] == officer and start <= c["capture_utc"] <= end}
    assert {c["sha256"] for c in reader.case_clips(case)} == want and want


def test_an_officers_day_and_a_piece_of_a_file_name_are_found(history, reader):
    officer = sorted(history.officer_days)[3]
    day = history.officer_days[officer][0]
    got = reader.search_all(ClipQuery(officer=officer, date_from=day, date_to=day + 86400))
    assert got and all(c["officer"] == officer and day <= c["capture_utc"] < day + 86400 for c in got)
    assert {c["sha256"] for c in got} == {c["sha256"] for c in every_clip(reader)
                                          if c["officer"] == officer and day <= c["capture_utc"] < day + 86400}
    name = got[-1]["name"]
    found = reader.search_all(ClipQuery(text=name[3:-6].lower()))
    assert got[-1]["sha256"] in {c["sha256"] for c in found}
    assert all(name[3:-6].lower() in c["name"].lower() for c in found)
    by_name = reader.search_all(ClipQuery(officer=f"officer {officer}"))  # the name a dock recorded
    assert len(by_name) == len(reader.search_all(ClipQuery(officer=officer)))


@pytest.mark.parametrize(("query", "index"), [
    (ClipQuery(officer="0100003", date_from=1.0, date_to=2e9), "clips_officer_when"),
    (ClipQuery(officer="0100003"), "clips_officer_when"),
    (ClipQuery(category="theft"), "clips_category_when"),
    (ClipQuery(important="yes"), "clips_important_when"),
    (ClipQuery(case="C-00001"), "assignments_case"),
    (ClipQuery(text="0100003_2026"), "clip_names"),
    (ClipQuery(date_from=1.0, date_to=2e9), "clips_when"),
    (ClipQuery(), "clips_when"),
])
def test_each_typical_search_walks_its_index(reader, query, index):
    plan = reader.reports.search_plan(query)
    assert index in plan, plan
    assert not re.search(r"^\s*SCAN (c|k|i|t)\b(?! USING)", plan, re.M), plan  # never every clip
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan or query.case or query.text, plan


def test_the_statistics_count_every_clip(history, reader):
    s = compute(reader, 24)
    assert sum(o["clips"] for o in s["officers"]) == SMALL.clips
    assert sum(u["clips"] for u in s["units"]) == SMALL.clips
    assert all(o["hours"] > 0 for o in s["officers"])
    assert sum(o["late_docks"] for o in s["officers"]) > 0


def test_the_review_page_counts_the_matches_and_links_every_page(history, tmp_path):
    config = history.config
    url = enable_web(config, free_port())
    subprocess.run([sys.executable, "-m", "gateway.cli.main", "web-user", "add", SUPERVISOR, "-c", str(config),
                    "--password-stdin"], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    d = DaemonProc(config, tmp_path / "daemon.log").start()
    try:
        wait_http(url + "/login")
        jar = http.cookiejar.CookieJar()
        web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login = urllib.request.Request(url + "/login", urllib.parse.urlencode(
            {"user": SUPERVISOR, "password": PASSWORD, "next": "/review"}).encode(), headers={"Origin": url})
        web.open(login, timeout=30).read()
        cfg = load_config(config)
        r = Reports(cfg.catalog_path)
        total = r.search_count(ClipQuery(important="no"))
        r.close()
        seen: list[str] = []
        first = web.open(url + "/review?important=no", timeout=30).read().decode()
        assert f"{total} matches" in first or f"共 {total} 条" in first
        todo, done = ["/review?important=no&page=1"], set()
        while todo:  # follow the page links from each page, as a supervisor would
            link = todo.pop()
            n = re.search(r"page=(\d+)", link)
            if n is None or n.group(1) in done:
                continue
            done.add(n.group(1))
            page = web.open(url + link.replace("&amp;", "&"), timeout=30).read().decode()
            seen += re.findall(r'data-sha="([0-9a-f]{64})"', page)
            todo += re.findall(r'href="(/review\?[^"]*page=\d+)"', page)
        assert len(seen) == len(set(seen)) == total and len(done) == -(-total // 100) > 10
    finally:
        d.stop()


def test_the_queue_is_counted_on_its_index_when_nearly_every_clip_is_archived(history):
    """ANALYZE (the fixture's) on a station of archived clips says a state matches every row;
    the daemon's status and the forwarder's lag check (twice a second) must
    still read only the queued clips' index entries, not every clip."""
    import sqlite3

    from gateway.catalog import reports

    db = sqlite3.connect(load_config(history.config).catalog_path)
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    reports.queue(db)
    reports.queue_oldest_age(db, 0.0)
    db.set_trace_callback(None)
    for sql in seen:
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING" in plan and "clips_queue" in plan, (sql, plan)
    db.close()


def test_an_assignment_finds_its_clips_on_the_officers_index_not_every_clip(history):
    """A day's dispatches (300 at a busy precinct) each look for the clips
    they cover: on clips_officer_when, never a scan of the year's clips."""
    from gateway.catalog import Catalog
    from gateway.catalog.records import Assignment

    catalog = Catalog(load_config(history.config).catalog_path)
    try:
        seen: list[str] = []
        catalog.db.set_trace_callback(seen.append)
        catalog.clips_to_amend(Assignment(1, "0100003", 0.0, 2e9, "C-1", None, None, None, 0.0))
        catalog.db.set_trace_callback(None)
        (sql,) = seen
        plan = " ".join(r[3] for r in catalog.db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "clips_officer_when" in plan and not re.search(r"\bSCAN c\b", plan), plan
    finally:
        catalog.close()


def test_the_lifetime_totals_status_shows_are_kept_not_counted_and_equal_the_rows(history, reader):
    """`status`'s released and purged: the generator released and purged
    through the catalog's own transitions; the kept totals equal a count of
    every row (and a catalog migrated from before them is back-filled)."""
    db = reader.reports.db
    counted = (db.execute("SELECT count(*) FROM items WHERE released_at IS NOT NULL").fetchone()[0],
               db.execute("SELECT count(*) FROM clips WHERE purged_at IS NOT NULL").fetchone()[0])
    assert counted[0] > 0 and counted[1] > 0
    assert reader.reports.released_and_purged() == counted
