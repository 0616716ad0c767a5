"""Crash consistency, with faults of our own: a catalog that lost its WAL (or
was restored from yesterday) is caught up from the custody log with one
alarm and no false quarantine; a kill -9 mid archive write leaves nothing
partial in the archive tree; `verify` names files it does not understand; a
clip cut by an undock says so, with how far it got."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from gateway.archive.directory import TMP_DIR
from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import (
    DaemonProc,
    archive_hashes,
    attach,
    detach,
    dockgate,
    events,
    hand_made_recorder,
    source_hashes,
)

pytestmark = pytest.mark.e2e


def settled(n: int):
    return lambda s: s["clips"]["archived"] == n and s["queue"]["clips"] == 0


@pytest.mark.parametrize("damage", ["wal-truncated", "wal-deleted", "yesterdays-catalog"])
def test_a_catalog_that_lost_commits_is_caught_up_without_false_quarantine(tmp_path: Path, damage: str) -> None:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    station.write_text(station.read_text() + '\n[release]\npolicy = "after-archive"\n')
    cfg = load_config(station)
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "4", "--size", "64k", "--serial", "WAL00001")
    want = source_hashes(rec / "storage")
    catalog = cfg.catalog_path
    d = DaemonProc(station, tmp_path / "daemon1.log")
    if damage == "yesterdays-catalog":  # a copy taken before today's dock, restored over it later
        d.start()
        d.stop()
        shutil.copy(catalog, tmp_path / "yesterday.sqlite")
    d.start()
    attach(station, rec, 1)
    d.wait_for(lambda s: s["clips"]["archived"] == 4, timeout=60, what="archived")
    d.kill()
    wal = Path(f"{catalog}-wal")
    if damage == "wal-truncated":
        os.truncate(wal, 0)
    elif damage == "wal-deleted":
        wal.unlink(missing_ok=True)
        Path(f"{catalog}-shm").unlink(missing_ok=True)
    else:
        for p in (wal, Path(f"{catalog}-shm")):
            p.unlink(missing_ok=True)
        shutil.copy(tmp_path / "yesterday.sqlite", catalog)
    d = DaemonProc(station, tmp_path / "daemon2.log").start()  # the recorder is still docked
    try:
        s = d.wait_for(lambda s: settled(4)(s) and s["clips"]["quarantined"] == 0
                       and all(x["state"] in ("done", "idle") for x in s["slots"]), timeout=90,
                       what="everything archived, the recorder served again")
        assert s["clips"]["quarantined"] == 0
    finally:
        d.stop()
    alarms = events(station, "catalog_behind")
    assert len(alarms) == 1 and alarms[0]["data"]["missing_entries"] > 0
    assert not events(station, "quarantined")
    assert archive_hashes(cfg.archive.path) == want  # every clip once
    assert dockgate("verify", "-c", str(station), check=False).returncode == 0


def test_kill_9_mid_archive_write_leaves_nothing_partial_in_the_archive(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    station.write_text(station.read_text() + "\n[forward]\nbandwidth_bytes_per_s = 4000000\n")
    cfg = load_config(station)
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "2", "--size", "24M", "--serial", "KIL00001")
    tmp = cfg.archive.path / TMP_DIR
    d = DaemonProc(station, tmp_path / "daemon1.log").start()
    attach(station, rec, 1)
    deadline = time.monotonic() + 60
    while not (tmp.is_dir() and any(p.stat().st_size > 0 for p in tmp.iterdir())):  # a write under way
        assert time.monotonic() < deadline, "no archive write seen"
        time.sleep(0.02)
    d.kill()
    partial = list(tmp.iterdir())
    assert partial and not any(p.name.startswith(".") for p in cfg.archive.path.rglob("*") if TMP_DIR not in str(p))
    d = DaemonProc(station, tmp_path / "daemon2.log").start()
    try:
        d.wait_for(settled(2), timeout=120, what="archived after the restart")
    finally:
        d.stop()
    assert list(tmp.iterdir()) == []
    assert events(station, "archive_swept")[0]["data"]["partial_files"] >= 1
    assert archive_hashes(cfg.archive.path) == source_hashes(rec / "storage")
    assert dockgate("verify", "-c", str(station), check=False).returncode == 0


def test_verify_names_a_file_it_does_not_understand(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    archive = tmp_path / "st" / "archive"
    (archive / "012345").mkdir(parents=True)
    (archive / "012345" / ".fragment.tmp").write_bytes(b"half a clip")
    r = dockgate("verify", "-c", str(station), check=False)
    assert r.returncode == 1 and ".fragment.tmp" in r.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_undock_at_a_random_offset_names_the_clip_cut_and_how_far_it_got(tmp_path: Path, seed: int) -> None:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "2", "--size", "3M", "--serial", "CUT00001", "--link-rate", "1M")
    clips = sorted(p for p in (rec / "storage").rglob("*") if p.is_file())
    # anywhere but the last moments, which the undock (a poll away) would no longer catch
    offset = random.Random(seed).randrange(1, sum(p.stat().st_size for p in clips) * 3 // 5)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: any(x["slot"] == 1 and x["bytes_done"] >= offset for x in s["slots"]), timeout=60,
                   what=f"{offset} bytes pulled", interval=0.02)
        detach(station, 1)
        # and nothing still pulling: a clip copied whole is made durable (then staged) while the next is read
        s = d.wait_for(lambda s: s["clips"]["interrupted"] == 1 and s["clips"]["pulling"] == 0, what="interrupted")
        done = s["clips"]["staged"] + s["clips"]["stamped"] + s["clips"]["forwarding"] + s["clips"]["archived"]
        (cut,) = events(station, "clip_interrupted")
        cut_clip = clips[done]  # pulled in name order: the first one not done is the one cut
        assert cut["data"]["path"] == str(cut_clip.relative_to(rec / "storage"))
        # read up to the end is possible too: cut while it was being made durable, before it was staged
        assert 0 <= cut["data"]["bytes_read"] <= cut["data"]["size"] == cut_clip.stat().st_size
        attach(station, rec, 1)  # docked again: pulled again, archived once
        d.wait_for(settled(2), timeout=60, what="both archived")
    finally:
        d.stop()
    assert archive_hashes(load_config(station).archive.path) == source_hashes(rec / "storage")



def test_an_undock_in_a_run_of_small_clips_keeps_the_whole_ones_and_names_only_the_one_cut(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    rec = tmp_path / "rec"
    # small clips are copied in runs (one thread hand-off for many): 40 x 64 KiB at 256 KiB/s is one run
    dockgate("sim", "make", str(rec), "--clips", "40", "--size", "64K", "--serial", "RUN00001",
             "--link-rate", "256K")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: any(x["slot"] == 1 and x["bytes_done"] >= 10 * 65536 + 1000 for x in s["slots"]),
                   timeout=60, what="ten clips and a bit pulled", interval=0.02)
        detach(station, 1)
        s = d.wait_for(lambda s: s["clips"]["interrupted"] > 0
                       and not any(x["slot"] == 1 and x["state"] == "pulling" for x in s["slots"]),
                       what="the run interrupted")
        kept = 40 - s["clips"]["interrupted"]
        assert kept >= 10, "the clips copied whole before the undock are staged, not pulled again"
        (cut,) = events(station, "clip_interrupted")  # the one being copied; the rest never started
        assert cut["data"]["error"] == "undocked during copy"
        assert list((load_config(station).paths.staging / "tmp").iterdir()) == []
        attach(station, rec, 1)
        d.wait_for(settled(40), timeout=120, what="all archived")
    finally:
        d.stop()
    assert archive_hashes(load_config(station).archive.path) == source_hashes(rec / "storage")


def test_a_hard_linked_clip_is_pulled_and_said(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    storage = hand_made_recorder(tmp_path / "rec", "LNK00001")
    outside = tmp_path / "outside.MP4"
    outside.write_bytes(os.urandom(5000))
    os.link(outside, storage / "clip.MP4")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, tmp_path / "rec", 1)
        d.wait_for(settled(1), what="archived")
    finally:
        d.stop()
    (said,) = events(station, "hard_linked_clip")
    assert said["data"]["path"] == "clip.MP4" and said["data"]["links"] == 2
