"""Issue 27: a station-side loss no longer strands a clip. A clip quarantined
because the station lost or spoiled its own copy (the staged media deleted or
changed, its signed manifest gone) is pulled again from a recorder that still
holds it, at the next dock, archived once, and only then released from the
recorder; a clip quarantined for the archive's sake (other bytes under its
key) stays quarantined, as before."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from drivers.base import ClipRef, DockedDevice, UsbIds
from gateway.archive import ArchiveConflict
from gateway.catalog import Catalog, ClipState, PendingItem, TransitionRefused, event
from gateway.catalog.schema import MIGRATIONS
from gateway.catalog.states import AGAIN_CLIP_MOVES, CLIP_MOVES, REPULL_REASONS
from gateway.cli.simstation import write_station
from gateway.config import Config, load_config
from gateway.evidence.custody import CustodyLog
from gateway.evidence.signing import keygen
from gateway.pipeline.events import CUSTODY_EVENTS, Journal
from gateway.pipeline.forward import Forwarder
from gateway.pipeline.ingest import Pulled
from gateway.pipeline.live import SlotState
from gateway.pipeline.pullcommit import SET_ASIDE, Done, SlotCommitter
from gateway.pipeline.recovery import catch_up
from tests.helpers import DaemonProc, archive_hashes, attach, detach, dockgate, events, sha256_file, source_hashes
from tests.pipeline import Scripted, Station, make_station
from tests.test_forward import until, with_forwarder


def ref_of(data: bytes, name: bytes | None = None) -> ClipRef:
    return ClipRef(name or f"DCIM/{hashlib.sha256(data).hexdigest()[:8]}.MP4".encode(), len(data), 1)


def dock(cat: Catalog, serial: str = "SN1") -> int:
    return cat.open_dock(DockedDevice(1, UsbIds(0x1209, 1, serial), None, "sim"), "generic-ums")


def write_manifest(st: Station, sha: str) -> str:
    """A signed manifest on the station's disk as the stamper leaves it (its
    signature a stand-in: nobody checks it before the archive)."""
    path = st.staging.root / "manifests" / f"{sha}.manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps({"clip": {"sha256": sha}}).encode())
    path.with_name(path.name + ".sig").write_bytes(b"s" * 64)
    return st.staging.relative(path)


def stamped(st: Station, data: bytes) -> str:
    sha = st.staged(data)
    st.catalog.stamped(sha, f"012345/SN1/{sha[:8]}.MP4", write_manifest(st, sha), "ff" * 32, False, 1.0, None,
                       event("stamped", sha256=sha))
    return sha


def quarantined(st: Station, data: bytes, reason: str | None) -> str:
    sha = stamped(st, data)
    st.catalog.start_forward(sha, "k")
    st.catalog.quarantine(sha, "test", event("quarantined", sha256=sha, reason=reason), reason=reason)
    return sha


def pull(st: Station, item: PendingItem, data: bytes, serial: str = "SN1") -> None:
    """What a dock session does with one clip: the pull begins, the bytes
    are copied into tmp/, then the slot's group commit."""
    st.catalog.begin_pull(item.id)
    temp = st.staging.temp_path(item.id)
    temp.write_bytes(data)
    committer = SlotCommitter(st.catalog, st.staging, 1, SlotState(1), serial, lambda: None)
    committer.add(Done(item, Pulled(hashlib.sha256(data).hexdigest(), len(data), temp), 0.1))
    asyncio.run(committer.drain())


@pytest.fixture
def st(tmp_path: Path, cfg: Config) -> Station:
    return make_station(tmp_path, cfg)


# -- the state machine: the one way out of quarantine -----------------------------------------------------------
def test_only_a_pull_again_leaves_quarantine_and_only_for_the_stations_own_copy() -> None:
    assert CLIP_MOVES[ClipState.QUARANTINED] == frozenset()  # no ordinary call moves a quarantined clip
    assert {ClipState.QUARANTINED: frozenset({ClipState.STAGED, ClipState.STAMPED})} == AGAIN_CLIP_MOVES
    assert {"source_fault", "manifest_fault"} == REPULL_REASONS  # not archive_conflict, bad_key, verify_failed
    assert "pulled_again" in CUSTODY_EVENTS


def test_a_clip_whose_staged_copy_was_lost_is_pulled_again_at_the_next_dock_and_queued(st: Station) -> None:
    data = os.urandom(5000)
    sha = quarantined(st, data, "source_fault")
    st.staging.path_for(sha).unlink()  # what quarantined it
    assert st.catalog.lost_copy(sha) is not None

    pending, known = st.catalog.discover(dock(st.catalog), "SN1", "012345", [ref_of(data)])
    assert [p.ref for p in pending] == [ref_of(data)] and known == 0  # not "already held"
    item = pending[0].id
    st.catalog.begin_pull(item)  # a pulled item starts again: its clip lost its station copy
    temp = st.staging.temp_path(item)
    temp.write_bytes(data)
    final = st.staging.commit(temp, sha)
    assert st.catalog.finish_pull(item, sha, len(data), st.staging.relative(final),
                                  pulled=event("pulled", 1), seen_again=event("seen_again", 1),
                                  again=event("pulled_again", 1, sha256=sha, serial="SN1"), manifest_intact=True)

    clip = st.catalog.clip(sha)
    # its signed manifest is intact: back in the queue with it, no second manifest
    assert clip is not None and clip.state == ClipState.STAMPED and clip.attempts == 0
    assert st.catalog.due_for_forward(now=1e12, limit=10)[0].sha256 == sha
    (again,) = [e for e in st.catalog.events() if e.type == "pulled_again"]
    assert again.data == {"sha256": sha, "serial": "SN1", "reason": "source_fault", "quarantined_for": "test",
                          "state": "stamped"}
    assert st.catalog.lost_copy(sha) is None
    assert st.catalog.counts()["quarantined"] == 0


def test_a_clip_whose_manifest_was_lost_is_stamped_anew_after_the_pull_again(st: Station) -> None:
    data = os.urandom(3000)
    sha = quarantined(st, data, "manifest_fault")
    (item,), _ = st.catalog.discover(dock(st.catalog), "SN1", "012345", [ref_of(data)])
    st.catalog.begin_pull(item.id)
    assert st.catalog.finish_pull(item.id, sha, len(data), f"media/{sha}", pulled=event("pulled", 1),
                                  seen_again=event("seen_again", 1), again=event("pulled_again", 1),
                                  manifest_intact=True)
    assert st.state(sha) == ClipState.STAGED
    assert st.catalog.due_for_stamp()[0].archive_key == "k"  # stamped again under the key it was given


@pytest.mark.parametrize("reason", ["archive_conflict", "bad_key", "verify_failed", "unstampable", None])
def test_a_quarantine_not_of_the_stations_copy_stays_final(st: Station, reason: str | None) -> None:
    data = os.urandom(2000)
    sha = quarantined(st, data, reason)
    assert st.catalog.lost_copy(sha) is None
    pending, known = st.catalog.discover(dock(st.catalog), "SN1", "012345", [ref_of(data)])
    assert pending == [] and known == 1  # already held, as before
    item = st.catalog.db.execute("SELECT id FROM items WHERE sha256=?", (bytes.fromhex(sha),)).fetchone()[0]
    with pytest.raises(TransitionRefused):
        st.catalog.begin_pull(item)
    assert st.state(sha) == ClipState.QUARANTINED


def test_ordinary_calls_cannot_move_a_clip_out_of_a_station_side_quarantine(st: Station) -> None:
    sha = quarantined(st, os.urandom(1000), "source_fault")
    for move in (lambda: st.catalog.retry_later(sha, "x", 0.0), lambda: st.catalog.start_forward(sha, "k"),
                 lambda: st.catalog.archived(sha)):
        with pytest.raises(TransitionRefused):
            move()
    assert st.state(sha) == ClipState.QUARANTINED


def test_content_of_a_lost_clip_on_another_recorder_is_staged_again_not_seen_again(st: Station) -> None:
    data = os.urandom(4000)
    sha = quarantined(st, data, "source_fault")
    st.staging.path_for(sha).unlink()
    (item,), _ = st.catalog.discover(dock(st.catalog, "SN2"), "SN2", "012345", [ClipRef(b"copy.MP4", len(data), 7)])
    pull(st, item, data, serial="SN2")
    assert st.state(sha) == ClipState.STAMPED
    assert st.staging.path_for(sha).read_bytes() == data
    assert [e.data["serial"] for e in st.catalog.events() if e.type == "pulled_again"] == ["SN2"]


def test_a_spoiled_staged_copy_is_set_aside_not_overwritten_by_the_pull_again(st: Station) -> None:
    data = os.urandom(6000)
    sha = quarantined(st, data, "source_fault")
    st.staging.path_for(sha).write_bytes(b"tampered" + data[8:])
    (item,), _ = st.catalog.discover(dock(st.catalog), "SN1", "012345", [ref_of(data)])
    pull(st, item, data)
    assert st.staging.path_for(sha).read_bytes() == data
    (aside,) = (st.staging.root / SET_ASIDE).iterdir()
    assert aside.name.startswith(sha) and aside.read_bytes().startswith(b"tampered")
    assert st.state(sha) == ClipState.STAMPED


# -- the forwarder says whose copy failed ------------------------------------------------------------------------
def test_the_forwarder_tells_a_lost_staged_copy_from_an_archive_conflict(st: Station, tmp_path: Path) -> None:
    archive = Scripted(st.archive_root)

    async def scenario(forwarder: Forwarder) -> None:
        lost = stamped(st, os.urandom(3000))
        st.staging.path_for(lost).unlink()
        conflict = stamped(st, os.urandom(3000))
        archive.fault = lambda key: ArchiveConflict(key, conflict, "00" * 32) if conflict[:8] in key else None
        forwarder.wake()
        await until(lambda: st.state(lost) == st.state(conflict) == ClipState.QUARANTINED)
        reasons = {e.data["sha256"]: e.data["reason"] for e in st.catalog.events() if e.type == "quarantined"}
        assert reasons == {lost: "source_fault", conflict: "archive_conflict"}
        assert st.catalog.lost_copy(lost) is not None and st.catalog.lost_copy(conflict) is None

    with_forwarder(st, archive, tmp_path, scenario)


# -- an upgraded catalog: clips stranded before are pulled again too -----------------------------------------------
def test_clips_quarantined_before_the_upgrade_get_their_recorded_reason(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for step, script in enumerate(MIGRATIONS[:5]):  # the schema before quarantine_reason
        db.executescript(f"BEGIN;{script}PRAGMA user_version={step + 1};COMMIT;")
    for n, (sha, data) in enumerate([("a" * 64, {"sha256": "a" * 64, "reason": "source_fault", "error": "gone"}),
                                     ("b" * 64, {"sha256": "b" * 64, "error": "manifest unreadable: x"}),
                                     ("c" * 64, {"sha256": "c" * 64, "reason": "archive_conflict"})]):
        db.execute("INSERT INTO items (serial, path, size, mtime_ns, state, sha256, discovered_at, updated_at) "
                   "VALUES ('SN1', ?, 1, 1, 'pulled', ?, 0, 0)", (sha.encode(), sha))
        db.execute("INSERT INTO clips (sha256, size, state, item_id, created_at, updated_at) "
                   "VALUES (?, 1, 'quarantined', ?, 0, 0)", (sha, n + 1))
        db.execute("INSERT INTO events (id, ts, type, data) VALUES (?, 0, 'quarantined', ?)",
                   (str(n), json.dumps(data)))
    db.close()
    cat = Catalog(path)
    assert cat.lost_copy("a" * 64) is not None and cat.lost_copy("b" * 64) is not None
    assert cat.lost_copy("c" * 64) is None


# -- a catalog that lost the pull again's commit ------------------------------------------------------------------
def test_a_pull_again_the_catalog_lost_is_caught_up_from_the_custody_log(tmp_path: Path, cfg: Config) -> None:
    custody = CustodyLog(tmp_path / "custody", keygen(tmp_path / "k.key"), "st1")
    st = make_station(tmp_path, cfg)
    live = tmp_path / "catalog.sqlite"
    st.catalog.journal = Journal(custody)
    data = os.urandom(3000)
    sha = quarantined(st, data, "source_fault")
    st.staging.path_for(sha).unlink()
    st.catalog.close()
    shutil.copy(live, tmp_path / "yesterday.sqlite")  # a copy of the catalog taken now, restored later
    st.catalog = Catalog(live, journal=Journal(custody))
    (item,), _ = st.catalog.discover(dock(st.catalog), "SN1", "012345", [ref_of(data)])
    pull(st, item, data)
    st.catalog.start_forward(sha, "k")
    st.catalog.archived(sha, event("clip_archived", sha256=sha))
    st.catalog.close()
    # yesterday's catalog restored over it: the clip quarantined there, archived in the custody log
    shutil.copy(tmp_path / "yesterday.sqlite", live)
    cat = Catalog(live, journal=Journal(custody))
    before = cat.clip(sha)
    assert before is not None and before.state == ClipState.QUARANTINED
    gap = catch_up(cat, custody.dir, custody.seq, st.staging)
    assert gap is not None and gap.pulled_again == 1
    clip = cat.clip(sha)
    assert clip is not None and clip.state == ClipState.ARCHIVED  # not stranded, not a crash at start-up


# -- end to end: the real daemon and simulated recorders ----------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.parametrize("loss", ["deleted", "altered"])
def test_a_staged_copy_lost_on_the_station_is_pulled_again_at_the_next_dock_archived_once_then_released(
        tmp_path: Path, loss: str) -> None:
    work = tmp_path / "w"
    station = write_station(work)
    archive = work / "archive"
    station.write_text(station.read_text() + '\n[release]\npolicy = "after-archive"\n')
    cfg = load_config(station)
    archive.rename(work / "archive-unmounted")  # the NAS is not mounted yet: the clips wait stamped
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "3", "--size", "500k", "--serial", "LOST01")
    want = source_hashes(rec / "storage")
    victim = sorted((rec / "storage").rglob("*_0002.MP4"))[0]
    victim_hash = sha256_file(victim)
    def done(s: dict[str, Any]) -> bool:
        return any(x["slot"] == 1 and x["state"] == "done" for x in s["slots"])

    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["stamped"] + s["clips"]["forwarding"] == 3, what="queued")
        staged = cfg.paths.staging / "media" / victim_hash[:2] / victim_hash
        if loss == "deleted":
            staged.unlink()  # someone cleaning the station's disk
        else:
            spoiled = bytearray(staged.read_bytes())
            spoiled[1000] ^= 0xFF  # bit rot on the station's disk
            staged.write_bytes(bytes(spoiled))
        (work / "archive-unmounted").rename(archive)
        d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["clips"]["quarantined"] == 1
                   and s["released"] == 2 and done(s), timeout=90,
                   what="two archived and released, the lost one quarantined")
        (q,) = events(station, "quarantined")
        assert q["data"]["sha256"] == victim_hash and q["data"]["reason"] == "source_fault"
        assert victim.exists() and sha256_file(victim) == victim_hash  # the recorder keeps it
        assert victim_hash not in archive_hashes(archive)

        detach(station, 1)  # the officer takes the recorder out on patrol; docks it again at the end of the shift
        d.wait_for(lambda s: any(x["slot"] == 1 and x["state"] == "idle" for x in s["slots"]), what="undocked")
        attach(station, rec, 1)
        s = d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["clips"]["quarantined"] == 0
                       and s["released"] == 3 and done(s), timeout=90,
                       what="pulled again, archived and released")
        assert s["queue"]["clips"] == 0
    finally:
        d.stop()
    assert not victim.exists()  # freed, now that the archive holds it
    assert archive_hashes(archive) == want and set(want.values()) == {1}  # every clip, each exactly once
    (again,) = events(station, "pulled_again")
    assert again["data"]["sha256"] == victim_hash and again["data"]["reason"] == "source_fault"
    assert again["data"]["serial"] == "LOST01" and again["data"]["state"] == "stamped"
    assert len(events(station, "stamped")) == 3  # its signed manifest was intact: no second one
    order = [(e["type"], e["data"].get("sha256")) for e in events(station)]
    archived_at = order.index(("clip_archived", victim_hash))
    assert order.index(("quarantined", victim_hash)) < order.index(("pulled_again", victim_hash)) < archived_at
    assert order.index(("released", victim_hash)) > archived_at  # freed only once the archive held it
    aside = list((cfg.paths.staging / SET_ASIDE).glob("*")) if (cfg.paths.staging / SET_ASIDE).exists() else []
    if loss == "altered":  # the spoiled copy is kept, set aside, never forwarded
        assert [sha256_file(p) != victim_hash and p.name.startswith(victim_hash) for p in aside] == [True]
    else:
        assert aside == []
    assert dockgate("verify", "-c", str(station), check=False).returncode == 0
    assert Counter(archive_hashes(archive))[victim_hash] == 1
