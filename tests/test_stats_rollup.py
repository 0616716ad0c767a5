"""The statistics read a rollup the catalog keeps (issue 30), and it never
drifts: after any mix of the catalog's transitions the page equals an
aggregate over every clip made from scratch, at any boundary of "without a
case", and it reads no clip but its boundary day's, nor any event but the
alarms it counts."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.base import ClipRef, DockedDevice, Identity, UsbIds
from gateway.catalog import Catalog, ClipState, TransitionRefused, event
from gateway.catalog.reports import ALARMS, LATE_DOCK_S, Reports
from gateway.catalog.schema import MIGRATIONS, VERSION
from tests.test_catalog_size import OLD_RETENTION_TABLES

DAY = 86400.0

#: the statistics as they were computed before the rollup: one aggregate over every clip (the oracle)
SCRATCH = ("SELECT coalesce(c.officer, '?') AS officer, coalesce(d.unit, '') AS unit, max(d.officer_name) AS name, "
           "count(*) AS clips, coalesce(sum(c.duration_s), 0) / 3600.0 AS hours, "
           "coalesce(sum(d.docked_at - c.capture_utc > ?), 0) AS late_docks, "
           "coalesce(sum(c.capture_utc < ? AND NOT c.cased), 0) AS without_case "
           "FROM clips c JOIN items i ON i.id=c.item_id LEFT JOIN docks d ON d.id=i.dock_id "
           "GROUP BY 1, 2 ORDER BY 2, 1")
#: the rollup's rows made from scratch (days as the rollup counts them: floor, none for no capture time)
SCRATCH_ROLLUP = (
    "SELECT coalesce(c.officer, '?'), coalesce(i.dock_id, 0), c.capture_utc, count(*), "
    "coalesce(sum(c.duration_s), 0), coalesce(sum(d.docked_at - c.capture_utc > ?), 0), "
    "coalesce(sum(c.capture_utc IS NOT NULL AND NOT c.cased), 0) "
    "FROM clips c JOIN items i ON i.id=c.item_id LEFT JOIN docks d ON d.id=i.dock_id GROUP BY c.sha256")


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to within rounding (sums of the same seconds added in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


def _scratch(db: Any, before: float) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute(SCRATCH, (LATE_DOCK_S, before))]


def _page(path: Path, before: float) -> list[dict[str, Any]]:
    r = Reports(path)
    try:
        return [dict(s) for s in r.stats(before)]
    finally:
        r.close()


def _rollup_from_scratch(db: Any) -> dict[tuple[str, int, int], list[float]]:
    out: dict[tuple[str, int, int], list[float]] = {}
    for officer, dock, capture, n, seconds, late, uncased in db.execute(SCRATCH_ROLLUP, (LATE_DOCK_S,)):
        day = -(2 ** 40) if capture is None else math.floor(capture / DAY)
        row = out.setdefault((officer, dock, day), [0, 0.0, 0, 0])
        for k, v in enumerate((n, seconds, late, uncased)):
            row[k] += v
    return out


def _rollup(db: Any) -> dict[tuple[str, int, int], list[float]]:
    return {(o, d, day): [n, s, late, u] for o, d, day, n, s, late, u in
            db.execute("SELECT officer, dock_id, day, clips, seconds, late_docks, uncased FROM stats_rollup")}


class Mix:
    """A seeded random mix of the catalog's transitions on a few recorders
    and officers: docks (a recorder's items listed again at another dock,
    interrupted pulls moving there), pulls, sightings, stamps with capture
    times on and around day boundaries and 24 h before the dock, amendments
    with and without a case, forwarding, quarantine, a pull again and a
    stamp anew, purges, restored clips, recovery. The machine refuses what
    it does not allow; refused moves write nothing."""

    def __init__(self, cat: Catalog, seed: int) -> None:
        self.cat, self.rng = cat, random.Random(seed)
        self.now = time.time()
        self.refs: dict[str, list[ClipRef]] = {}
        self.content: dict[tuple[str, bytes], str] = {}
        self.to_pull: dict[int, tuple[str, ClipRef, int]] = {}
        self.clips: list[str] = []
        self.docked_at: dict[int, float] = {}
        self.n = 0

    def sha(self) -> str:
        self.n += 1
        return f"{self.n:064x}"

    def capture(self, dock: int | None) -> float | None:
        r = self.rng
        today = math.floor(self.now / DAY) * DAY
        return r.choice([
            None,
            self.now - r.uniform(0, 4 * DAY),
            today - r.randrange(0, 4) * DAY,  # on a day boundary
            (self.docked_at.get(dock or 0, self.now)) - LATE_DOCK_S,  # exactly the late rule's limit
            (self.docked_at.get(dock or 0, self.now)) - LATE_DOCK_S - 1,
        ])

    def step(self) -> None:
        r = self.rng
        op = r.choices(["dock", "pull", "stamp", "amend", "forward", "purge", "restore", "again", "recover", "alarm"],
                       [3, 8, 6, 3, 4, 1, 1, 2, 1, 1])[0]
        try:
            getattr(self, op)()
        except TransitionRefused:
            pass

    def dock(self) -> None:
        r, cat = self.rng, self.cat
        serial = r.choice(["R1", "R2", "R3"])
        officer = r.choice(["0001", "0002", "0003", None])
        dock = cat.open_dock(DockedDevice(slot=r.randrange(1, 4), ids=UsbIds(0x1209, 1, serial), volume=None,
                                          source="sim"), "generic-ums")
        self.docked_at[dock] = cat.dock(dock).docked_at  # type: ignore[union-attr]
        cat.identify_dock(dock, Identity(serial=serial, officer=officer, unit=r.choice(["A", "B", None]),
                                         officer_name=r.choice(["Ann", "Bo", None])))
        refs = self.refs.setdefault(serial, [])
        for _ in range(r.randrange(0, 4)):
            ref = ClipRef(f"{serial}-{len(refs)}.mp4".encode(), 10, 1)
            refs.append(ref)
            # some content is on two recorders (a sighting when the second is pulled)
            self.content[(serial, ref.relpath)] = r.choice(self.clips) if self.clips and r.random() < 0.1 \
                else self.sha()
        pending, _ = cat.discover(dock, serial, officer, refs)
        for p in pending:
            self.to_pull[p.id] = (serial, p.ref, dock)

    def pull(self) -> None:
        if not self.to_pull:
            return
        r, cat = self.rng, self.cat
        item = r.choice(sorted(self.to_pull))
        serial, ref, _ = self.to_pull.pop(item)
        cat.begin_pull(item)
        if r.random() < 0.25:
            cat.interrupt(item, "unplugged")
            return
        sha = self.content[(serial, ref.relpath)]
        again = event("pulled_again", 1, sha256=sha) if cat.lost_copy(sha) else None
        if cat.finish_pull(item, sha, 10, f"media/{sha}", event("pulled", 1, sha256=sha),
                           event("seen_again", 1, sha256=sha), again=again, manifest_intact=r.random() < 0.5) \
                and sha not in self.clips:
            self.clips.append(sha)

    def _clip(self) -> str | None:
        return self.rng.choice(self.clips) if self.clips else None

    def stamp(self) -> None:
        sha = self._clip()
        row = self.cat.clip(sha) if sha else None
        if row is None or row.state != ClipState.STAGED:
            return
        r = self.rng
        self.cat.stamped(row.sha256, f"k/{row.sha256}", "m", "ff" * 32, False, self.capture(row.dock_id), None,
                         event("stamped", sha256=row.sha256), cased=r.random() < 0.2,
                         duration_s=r.choice([None, 0.0, r.uniform(1, 900), 30.5]))

    def amend(self) -> None:
        sha = self._clip()
        if sha is None:
            return
        r, cat = self.rng, self.cat
        aid = cat.add_assignment(r.choice(["0001", "0002"]), 0.0, 1e10, r.choice([None, "C-1", "C-2"]), None,
                                 r.choice([None, "theft"]), r.choice([None, True]))
        cat.add_amendment(sha, aid, f"amend/{sha}-{aid}", event("amended", sha256=sha))

    def forward(self) -> None:
        sha = self._clip()
        row = self.cat.clip(sha) if sha else None
        if row is None or row.state != ClipState.STAMPED:
            return
        r, cat = self.rng, self.cat
        cat.start_forward(row.sha256, row.archive_key or "k")
        outcome = r.choice(["archived", "archived", "retry", "quarantine"])
        if outcome == "archived":
            cat.archived(row.sha256, event("clip_archived", sha256=row.sha256))
        elif outcome == "retry":
            cat.retry_later(row.sha256, "archive down", 0.0)
        else:
            cat.quarantine(row.sha256, "bytes changed", event("quarantined", sha256=row.sha256),
                           reason=r.choice(["source_fault", "manifest_fault", None]))

    def purge(self) -> None:
        sha = self._clip()
        if sha:
            self.cat.purged(sha, event("purged", sha256=sha))

    def restore(self) -> None:
        sha = self.sha()
        if self.cat.restore_clip(sha, "R9", sha.encode(), 10, self.rng.choice(["0001", None]), f"media/{sha}",
                                 f"k/{sha}", "m", "ff" * 32, self.rng.random() < 0.5):
            self.clips.append(sha)

    def again(self) -> None:
        """A lost copy restored from the custody log: out of quarantine, to be stamped anew."""
        sha = self._clip()
        if sha and self.cat.lost_copy(sha):
            self.cat.restore_pulled_again(sha, f"media/{sha}", ClipState.STAGED)

    def recover(self) -> None:
        self.cat.recover()

    def alarm(self) -> None:
        self.cat.emit(self.rng.choice([*ALARMS, "docked", "status"]), 1)


def _mixed(path: Path, seed: int, steps: int) -> Catalog:
    """A catalog after *steps* of a seeded mix of the catalog's transitions."""
    cat = Catalog(path)
    mix = Mix(cat, seed)
    for _ in range(steps):
        mix.step()
    return cat


def _boundaries(db: Any, now: float, rng: random.Random) -> list[float]:
    """Boundaries of "without a case" that matter: now, 48 h ago, day starts, and clips' own capture times."""
    today = math.floor(now / DAY) * DAY
    captures = [r[0] for r in db.execute("SELECT capture_utc FROM clips WHERE capture_utc IS NOT NULL")]
    picked = rng.sample(captures, min(8, len(captures)))
    return [now, now - 48 * 3600, now + 9 * DAY, 0.0, *(today - k * DAY for k in range(6)),
            *picked, *(c + 0.001 for c in picked), *(c - 0.001 for c in picked)]


@pytest.mark.parametrize("seed", range(3))
def test_the_statistics_equal_an_aggregate_over_every_clip_after_any_mix_of_transitions(tmp_path: Path,
                                                                                         seed: int) -> None:
    path = tmp_path / "c.sqlite"
    cat = Catalog(path)
    mix = Mix(cat, seed)
    for n in range(1, 241):
        mix.step()
        if n % 80 == 0:
            assert _same(_rollup(cat.db), _rollup_from_scratch(cat.db)), f"rollup drifted after {n} steps"
            for before in _boundaries(cat.db, mix.now, mix.rng):
                assert _same(_page(path, before), _scratch(cat.db, before)), f"boundary {before} after {n} steps"
    counted = cat.db.execute("SELECT count(*), sum(capture_utc IS NOT NULL), sum(cased) FROM clips").fetchone()
    assert counted[0] > 10 and 0 < counted[1] < counted[0] and counted[2] > 0  # the mix reached every column
    assert cat.db.execute("SELECT count(*) FROM stats_rollup WHERE clips = 0").fetchone()[0] == 0
    r = Reports(path)
    assert r.alarm_counts() == {a: cat.db.execute("SELECT count(*) FROM events NOT INDEXED WHERE type=?",
                                                  (a,)).fetchone()[0] for a in ALARMS}
    r.close()


def test_the_migration_back_fills_the_rollup_from_the_clips(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cat = _mixed(path, 7, 150)
    expected = _rollup(cat.db)
    assert expected
    # the catalog as it was before the rollup: no table, no triggers, at the rollup's version (and without
    # what the migrations after it made)
    rollup = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE stats_rollup" in m)
    later = "".join(f"DROP TRIGGER totals_{n}_{k}; " for n in ("released", "purged") for k in ("ins", "upd", "del"))
    totals = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE station_totals" in m)
    # the ones after the totals' run again here: each can (the paths' and the indexes' of issue 30's size), and
    # the state counts' once its table and triggers are gone
    assert rollup == totals - 1 and totals <= VERSION - 1, "a migration between: drop what it makes here too"
    later += "".join(f"DROP TRIGGER state_counts_{t}_{k}; " for t in ("items", "clips") for k in ("ins", "upd", "del"))
    later += "DROP TABLE state_counts; " + OLD_RETENTION_TABLES + " "  # and retention's tables as they were then
    cat.db.executescript("BEGIN; DROP TRIGGER stats_clip_added; DROP TRIGGER stats_clip_changed; "
                         "DROP TRIGGER stats_clip_deleted; DROP TRIGGER stats_item_docked; DROP TABLE stats_rollup; "
                         f"DROP INDEX events_alarms; {later}DROP TABLE station_totals; "
                         f"PRAGMA user_version={rollup}; COMMIT;")
    cat.close()
    again = Catalog(path)
    assert _same(_rollup(again.db), expected) and _same(expected, _rollup_from_scratch(again.db))
    totals = dict(again.db.execute("SELECT name, n FROM station_totals").fetchall())
    assert totals == {"released": again.db.execute("SELECT count(*) FROM items WHERE released_at IS NOT NULL")
                      .fetchone()[0], "purged": again.db.execute("SELECT count(*) FROM clips WHERE purged_at IS NOT "
                                                                 "NULL").fetchone()[0]}
    assert _kept_by_state(again.db) == _counted_by_state(again.db)


def _kept_by_state(db: Any) -> dict[tuple[str, str], int]:
    return {(t, s): n for t, s, n in db.execute("SELECT tbl, state, n FROM state_counts") if n}


def _counted_by_state(db: Any) -> dict[tuple[str, str], int]:
    """The oracle: a count(*) GROUP BY state over every item and clip."""
    return {(t, s): n for t in ("items", "clips") for s, n in db.execute(f"SELECT state, count(*) FROM {t} "
                                                                          "GROUP BY state")}


@pytest.mark.parametrize("seed", range(2))
def test_the_kept_counts_by_state_equal_a_count_over_every_row_after_any_mix_of_transitions(tmp_path: Path,
                                                                                             seed: int) -> None:
    path = tmp_path / "c.sqlite"
    cat = Catalog(path)
    mix = Mix(cat, seed)
    for n in range(1, 201):
        mix.step()
        if n % 50 == 0:
            assert _kept_by_state(cat.db) == _counted_by_state(cat.db), f"state counts drifted after {n} steps"
    counted = _counted_by_state(cat.db)
    assert len([k for k in counted if k[0] == "clips"]) >= 3 and len([k for k in counted if k[0] == "items"]) >= 3
    assert cat.db.execute("SELECT count(*) FROM state_counts WHERE n < 0").fetchone()[0] == 0
    r = Reports(path)
    assert r.kept_counts() == (r.counts(), r.sightings())  # what `status` shows, as it counted before
    r.close()


def test_the_statistics_page_reads_no_clip_but_its_boundary_days_nor_every_event(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cat = _mixed(path, 3, 100)
    for analyse in (False, True):  # without and with the planner's statistics (the housekeeper's PRAGMA optimize)
        if analyse:
            cat.db.execute("ANALYZE")
        r = Reports(path)
        plan = r.stats_plan(time.time() - 48 * 3600)
        r.close()
        assert "SCAN stats_rollup" in plan
        assert "USING INDEX clips_when" in plan
        assert "USING COVERING INDEX events_alarms" in plan  # the alarm counts
        assert not any(line.startswith(("SCAN c", "SCAN i", "SCAN clips", "SCAN items", "SCAN events"))
                       for line in plan.splitlines()), plan


def test_a_clip_counts_at_the_dock_its_interrupted_pull_again_moved_to(tmp_path: Path) -> None:
    """A lost copy pulled again, interrupted, listed at another dock: its
    item (the clip's) now belongs to that dock, and so does its count."""
    path = tmp_path / "c.sqlite"
    cat = Catalog(path)
    sha = "ab" * 32
    ref = ClipRef(b"a.mp4", 10, 1)

    def dock(unit: str) -> tuple[int, list[int]]:
        d = cat.open_dock(DockedDevice(slot=1, ids=UsbIds(0x1209, 1, "R1"), volume=None, source="sim"), "generic-ums")
        cat.identify_dock(d, Identity(serial="R1", officer="0001", unit=unit))
        pending, _ = cat.discover(d, "R1", "0001", [ref])
        return d, [p.id for p in pending]

    _, (item,) = dock("A")
    cat.begin_pull(item)
    assert cat.finish_pull(item, sha, 10, "media/x", event("pulled", 1, sha256=sha), event("seen_again", 1))
    cat.stamped(sha, "k", "m", "ff" * 32, False, time.time() - 3 * DAY, None, duration_s=60.0)
    cat.start_forward(sha, "k")
    cat.quarantine(sha, "staged copy changed", reason="source_fault")
    _, again = dock("B")
    assert again == [item]
    cat.begin_pull(item)
    cat.interrupt(item, "unplugged")
    dock("C")
    page = _page(path, time.time())
    assert [(s["unit"], s["clips"], s["late_docks"], s["without_case"]) for s in page] == [("C", 1, 1, 1)]
    assert _same(page, _scratch(cat.db, time.time())) and _same(_rollup(cat.db), _rollup_from_scratch(cat.db))
