"""Poison pills are set aside, never a stopped station (issue 27).

The doors refuse what breaks the rules (tests/test_values.py); these are the
records that got past them: an assignment written straight through the
catalog facade (as a corrupt or old catalog holds it), a recorder whose
clock is no clock, a clip that cannot be made into a manifest. The stamper
sets each aside with one event naming it and goes on; before, the first of
them crashed the stamper six times and the daemon with it, and every
restart met it again."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drivers.profiles import Registry
from gateway.catalog import Catalog, ClipRow, ClipState
from gateway.config import Config, load_config
from gateway.evidence import container
from gateway.evidence.container import ContainerFacts
from gateway.evidence.custody import CustodyLog
from gateway.evidence.manifest import build_manifest, read_signed
from gateway.evidence.signing import keygen
from gateway.pipeline import stamp as stamp_module
from gateway.pipeline.events import CUSTODY_EVENTS, WARNING_EVENTS, Journal
from gateway.pipeline.stamp import Stamper
from tests.helpers import DaemonProc, attach, dockgate, events, wait_until
from tests.pipeline import Station, make_station

OFFICER = "012345"
YEAR_1 = datetime.fromisoformat("0001-01-01T00:00:00+08:00").timestamp()
YEAR_2100 = datetime.fromisoformat("2100-01-01T00:00:00+08:00").timestamp()
MAR_1 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()

#: (officer, from, to, case, proof, category, important) as only a catalog written past the doors holds them
FORCED = {
    "the issue's dispatch row": (OFFICER, YEAR_1, YEAR_2100, "OPEN", None, None, None),
    "the hand-made confirm": (OFFICER, -1e308, 1e308, "OPEN", None, None, None),
    "infinities": (OFFICER, -math.inf, math.inf, "OPEN", None, None, None),
    "40 days": (OFFICER, MAR_1, MAR_1 + 40 * 86400, "OPEN", None, None, None),
    "end before start": (OFFICER, MAR_1, MAR_1 - 1, "OPEN", None, None, None),
    "a case of control characters": (OFFICER, MAR_1, MAR_1 + 60, "A\n\x1b[2J", None, None, None),
    "a case of a megabyte": (OFFICER, MAR_1, MAR_1 + 60, "x" * 1_000_000, None, None, None),
    "no officer": ("", MAR_1, MAR_1 + 60, "OPEN", None, None, None),
    "nothing to assign": (OFFICER, MAR_1, MAR_1 + 60, None, None, None, None),
}


@pytest.fixture
def pipe(tmp_path: Path, cfg: Config) -> Station:
    return make_station(tmp_path, cfg)


@pytest.fixture
def stamper(pipe: Station, tmp_path: Path) -> Stamper:
    signer = keygen(tmp_path / "pipe.key")
    custody = CustodyLog(tmp_path / "custody", signer, pipe.cfg.station.id)
    pipe.catalog.journal = Journal(custody)
    st = Stamper(pipe.cfg, pipe.catalog, pipe.staging, Registry.load(), signer, custody, lambda: None)
    asyncio.run(st.start())
    return st


def staged(pipe: Station, when: float = MAR_1 + 3600) -> str:
    """A clip staged, its file written at *when* (a Station's clips date from
    1970 unless told: no assignment may name that)."""
    return pipe.staged(officer=OFFICER, mtime_ns=int(when * 1e9))


def stamp_all(stamper: Stamper) -> None:
    while asyncio.run(stamper.step()) == 0:
        pass


def custody_entries(stamper: Stamper) -> list[dict[str, Any]]:
    stamper.rotate(force=True)
    return [json.loads(line) for seg in sorted(stamper.custody.dir.glob("custody-*.jsonl"))
            for line in seg.read_bytes().splitlines()]


def manifest(pipe: Station, sha: str) -> dict[str, Any]:
    clip = pipe.catalog.clip(sha)
    assert clip is not None and clip.manifest_path
    doc: dict[str, Any] = json.loads(read_signed(pipe.staging.resolve(clip.manifest_path)).body)
    return doc


def test_the_set_aside_event_is_a_warning_on_the_custody_record() -> None:
    assert "assignment_set_aside" in CUSTODY_EVENTS and "assignment_set_aside" in WARNING_EVENTS


def test_forced_assignments_are_set_aside_each_with_one_event_and_a_good_one_still_applies(
        pipe: Station, stamper: Stamper) -> None:
    sha = staged(pipe)
    stamp_all(stamper)
    clip = pipe.catalog.clip(sha)
    assert clip is not None and clip.capture_utc is not None
    ids = {why: pipe.catalog.add_assignment(*row) for why, row in FORCED.items()}
    good = pipe.catalog.add_assignment(OFFICER, clip.capture_utc - 60, clip.capture_utc + 60, "A-2024-7",
                                          None, None, True)
    stamp_all(stamper)  # before: ValueError year 0 is out of range, six times, and the daemon gone
    assert pipe.catalog.new_assignments() == []
    evs = pipe.catalog.events()
    aside = {e.data["assignment"]: e.data for e in evs if e.type == "assignment_set_aside"}
    assert set(aside) == set(ids.values())
    assert {e.data["assignment"] for e in evs if e.type == "assigned"} == {good}
    assert [e.data["sha256"] for e in evs if e.type == "amended"] == [sha]
    row = aside[ids["the issue's dispatch row"]]
    assert row["field"] == "from" and row["reason"].startswith("from: before 2000-01-01")
    assert (row["from_ts"], row["to_ts"], row["case_number"]) == (YEAR_1, YEAR_2100, "OPEN")
    assert aside[ids["infinities"]]["from_ts"] == "-inf"
    assert aside[ids["40 days"]]["field"] == "to" and "at most 31 days" in aside[ids["40 days"]]["reason"]
    assert len(aside[ids["a case of a megabyte"]]["case_number"]) == 201
    on_record = [e["data"]["assignment"] for e in custody_entries(stamper) if e["event"] == "assignment_set_aside"]
    assert sorted(on_record) == sorted(ids.values())


def test_a_set_aside_assignment_never_reaches_a_manifest(pipe: Station, stamper: Stamper) -> None:
    pipe.catalog.add_assignment(*FORCED["the issue's dispatch row"])
    stamp_all(stamper)
    sha = staged(pipe)  # captured inside the forced span, stamped after it was set aside
    stamp_all(stamper)
    assert pipe.state(sha) == ClipState.STAMPED
    doc = manifest(pipe, sha)
    assert doc["case_number"] is None and doc["assignment"] is None
    # one made at a door applies to the next clip, the set-aside one notwithstanding
    pipe.catalog.add_assignment(OFFICER, MAR_1, MAR_1 + 86400, "A-2024-8", None, None, None)
    stamp_all(stamper)
    later = staged(pipe)
    stamp_all(stamper)
    assert manifest(pipe, later)["case_number"] == "A-2024-8"


def test_a_recorder_clock_that_is_no_reading_is_not_applied(pipe: Station, stamper: Stamper) -> None:
    sha = staged(pipe)
    clip = pipe.catalog.clip(sha)
    assert clip is not None and clip.dock_id is not None
    # a recorder answering year 9999: capture times corrected by it would be before year 1
    recorder = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
    pipe.catalog.clock_dock(clip.dock_id, recorder, MAR_1, recorder - MAR_1, False)
    stamp_all(stamper)
    assert pipe.state(sha) == ClipState.STAMPED
    doc = manifest(pipe, sha)
    assert doc["capture_time"]["drift_s"] is None  # not applied (the manifest may still say what was read)
    assert doc["capture_time"]["utc"] == "2024-03-01T01:00:00Z" and doc["capture_time"]["plausible"] is True


def test_a_clip_that_cannot_be_stamped_is_quarantined_and_its_batch_goes_on(
        pipe: Station, stamper: Stamper, monkeypatch: pytest.MonkeyPatch) -> None:
    shas = [staged(pipe) for _ in range(4)]
    bad = shas[1]
    def build(cfg: Config, clip: ClipRow, *args: Any, **kw: Any) -> tuple[dict[str, Any], float]:
        if clip.sha256 == bad:  # what a recorder's data could still do to the manifest's code
            raise ValueError("year 0 is out of range")
        return build_manifest(cfg, clip, *args, **kw)

    def probe(path: Path, name: str) -> ContainerFacts:
        if shas[2] in str(path):
            raise ValueError("month must be in 1..12")  # a container header the parser chokes on
        return container.probe(path, name)

    monkeypatch.setattr(stamp_module, "build_manifest", build)
    monkeypatch.setattr(stamp_module, "probe", probe)
    stamp_all(stamper)
    assert [pipe.state(s) for s in shas] == ["stamped", "quarantined", "stamped", "stamped"]
    (q,) = [e for e in pipe.catalog.events() if e.type == "quarantined"]
    assert q.data["sha256"] == bad and q.data["reason"] == "unstampable"
    assert q.data["error"] == "cannot stamp: ValueError: year 0 is out of range"
    assert manifest(pipe, shas[2])["clip"]["container"]["reason"].startswith("probe failed: ValueError")
    # the custody position each manifest names is still the entry its stamping got
    entries = custody_entries(stamper)
    at = {e["data"]["sha256"]: e["seq"] for e in entries if e["event"] == "stamped"}
    for sha in (shas[0], shas[2], shas[3]):
        assert manifest(pipe, sha)["custody_seq"] == at[sha]
    assert [e["data"]["sha256"] for e in entries if e["event"] == "quarantined"] == [bad]


@pytest.mark.e2e
def test_a_forced_assignment_is_set_aside_while_the_daemon_keeps_docking(station: Path, tmp_path: Path) -> None:
    """The issue's row, written past every door, against the real daemon."""
    cfg = load_config(station)
    log = tmp_path / "daemon.log"
    d = DaemonProc(station, log).start()
    try:
        cat = Catalog(cfg.catalog_path)
        try:
            forced = cat.add_assignment(*FORCED["the issue's dispatch row"])
            overflow = cat.add_assignment(*FORCED["the hand-made confirm"])
        finally:
            cat.close()
        wait_until(lambda: {e["data"]["assignment"] for e in events(station, "assignment_set_aside")}
                   == {forced, overflow}, what="both set aside")
        rec = tmp_path / "rec"
        dockgate("sim", "make", str(rec), "--clips", "3", "--size", "20k", "--serial", "POISON01",
                 "--officer", OFFICER)
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, what="docked and archived")
        assert d.status()["daemon"]["running"]
    finally:
        assert d.stop() == 0
    text = log.read_text()
    assert "crashed" not in text and "Traceback" not in text
    assert len(events(station, "assignment_set_aside")) == 2  # one event each, not one per step
    d = DaemonProc(station, tmp_path / "daemon2.log").start()  # a restart finds nothing pending
    try:
        d.wait_for(lambda s: s["daemon"]["running"], what="restart")
    finally:
        assert d.stop() == 0
    assert len(events(station, "assignment_set_aside")) == 2
