"""End to end: the real `dockgate run` process, simulated recorders docked
through the CLI, and our own hashing of what the archive holds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gateway.config import load_config
from tests.helpers import DaemonProc, archive_hashes, attach, detach, dockgate, source_hashes

pytestmark = pytest.mark.e2e


def make(dirpath: Path, serial: str, officer: str, clips: int, size: str, rate: str = "0") -> Path:
    dockgate("sim", "make", str(dirpath), "--clips", str(clips), "--size", size, "--serial", serial,
             "--officer", officer, "--link-rate", rate)
    return dirpath


def settled(n: int):
    return lambda s: s["clips"]["archived"] == n and s["queue"]["clips"] == 0


def test_two_recorders_then_sigkill_mid_run_loses_and_doubles_nothing(
        station: Path, daemon: DaemonProc, tmp_path: Path) -> None:
    cfg = load_config(station)
    a = make(tmp_path / "A", "SNA0001", "000101", 5, "1M")
    b = make(tmp_path / "B", "SNB0002", "000202", 4, "3M")
    daemon.start()
    attach(station, a, 1)
    attach(station, b, 2)
    s = daemon.wait_for(settled(9), timeout=60, what="9 clips archived")
    assert s["clips"]["quarantined"] == 0
    want = source_hashes(a / "storage") + source_hashes(b / "storage")
    assert archive_hashes(cfg.archive.path) == want  # byte for byte, each exactly once

    # second run: a slow recorder, killed while it is being pulled and forwarded
    c = make(tmp_path / "C", "SNC0003", "000303", 12, "2M", rate="8M")
    detach(station, 1)
    attach(station, c, 1)
    daemon.wait_for(lambda s: s["clips"]["archived"] >= 11, timeout=60, what="C under way")
    s = daemon.status()
    assert s["clips"]["archived"] < 21, "the kill should land mid-run; make C slower"
    daemon.kill()
    killed_at = s["clips"]
    daemon.start()  # slot 1 still holds C: the restarted daemon picks it up
    daemon.wait_for(settled(21), timeout=90, what="all 21 clips archived after restart")
    want += source_hashes(c / "storage")
    assert archive_hashes(cfg.archive.path) == want, f"killed at {killed_at}"
    assert list((cfg.paths.staging / "tmp").iterdir()) == []
    assert daemon.stop() == 0


def test_undock_mid_clip_is_interrupted_then_pulled_on_next_dock(
        station: Path, daemon: DaemonProc, tmp_path: Path) -> None:
    cfg = load_config(station)
    rec = make(tmp_path / "R", "SNR0001", "000404", 2, "16M", rate="4M")
    daemon.start()
    attach(station, rec, 3)
    daemon.wait_for(lambda s: any(x["slot"] == 3 and x["bytes_done"] > 0 for x in s["slots"]),
                    what="pull under way")
    detach(station, 3)
    s = daemon.wait_for(lambda s: s["clips"]["interrupted"] >= 1, what="clip interrupted")
    assert s["clips"]["archived"] == 0
    assert list((cfg.paths.staging / "tmp").iterdir()) == []  # never half-staged
    # dock again with a fast link: the interrupted clip is pulled again, once
    text = (rec / "device.toml").read_text().replace("link_rate = 4194304", "link_rate = 0")
    (rec / "device.toml").write_text(text)
    attach(station, rec, 3)
    daemon.wait_for(settled(2), what="both clips archived")
    assert archive_hashes(cfg.archive.path) == source_hashes(rec / "storage")


def test_hand_written_recorder_is_archived_byte_for_byte(tmp_path: Path) -> None:
    """A recorder folder written by hand, the way a new user would try it."""
    rec = tmp_path / "my-recorder"
    storage = rec / "storage"
    (storage / "DCIM" / "100MEDIA").mkdir(parents=True)
    (storage / "RECORD").mkdir()
    (rec / "device.toml").write_text('serial = "HW-777"\nofficer = "123456"\nunit = "test unit"\n'
                                     'protocol = "ums"\npassword = "000000"\nclock_offset_s = 0\n')
    (storage / "DCIM" / "100MEDIA" / "VID_0001.MP4").write_bytes(os.urandom(2_500_000))
    (storage / "DCIM" / "100MEDIA" / "VID_0002.mp4").write_bytes(os.urandom(700_001))
    (storage / "RECORD" / "audio 1.wav").write_bytes(os.urandom(123_457))
    (storage / "RECORD" / "same-as-vid1.MP4").write_bytes(
        (storage / "DCIM" / "100MEDIA" / "VID_0001.MP4").read_bytes())
    (storage / "empty.jpg").write_bytes(b"")
    with open(os.path.join(os.fsencode(storage), "现场录像.mp4".encode("gbk")), "wb") as f:
        f.write(os.urandom(4096))
    (tmp_path / "outside.mp4").write_bytes(b"must never be read")
    (storage / "link.mp4").symlink_to(tmp_path / "outside.mp4")

    work = tmp_path / "work"
    dockgate("sim", "station", str(work))
    config = work / "dockgate.toml"
    d = DaemonProc(config, tmp_path / "daemon.log").start()
    try:
        attach(config, rec, 1)
        want = source_hashes(storage)  # the symlink is excluded: it is not the recorder's data
        unique = len(want)
        s = d.wait_for(settled(unique), what="every distinct clip archived")
        have = archive_hashes(work / "archive")
        assert set(have) == set(want) and all(n == 1 for n in have.values())
        assert s["sightings"] == 1  # the duplicate content was seen, not stored twice
        assert b"must never be read" not in b"".join(
            p.read_bytes() for p in (work / "archive").rglob("*") if p.is_file())
    finally:
        assert d.stop() == 0


def test_demo_runs_and_archives_every_clip_once(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    started = time.monotonic()
    r = dockgate("demo", "--workdir", str(work), timeout=300)
    assert "every clip is in the archive exactly once" in r.stdout
    assert time.monotonic() - started < 300
    want = sum((source_hashes(p / "storage") for p in (work / "recorders").iterdir()),
               start=source_hashes(tmp_path / "nothing"))
    assert archive_hashes(work / "archive") == want
    assert sum(want.values()) == 12


def test_release_frees_exactly_the_archived_clips_and_purge_empties_staging(tmp_path: Path) -> None:
    work = tmp_path / "w"
    dockgate("sim", "station", str(work))
    config = work / "dockgate.toml"
    config.write_text(config.read_text() + '\n[release]\npolicy = "after-archive"\n\n[purge]\nafter_s = 0\n'
                                           'interval_s = 0.5\n')
    rec = make(tmp_path / "R", "SNREL01", "000505", 4, "2M", rate="4M")
    d = DaemonProc(config, tmp_path / "daemon.log").start()
    try:
        attach(config, rec, 1)
        d.wait_for(lambda s: any(x["slot"] == 1 and x["bytes_done"] > 0 for x in s["slots"]), what="pulling")
        # the officer records one more clip while docked: not listed, not archived, never deleted
        late = rec / "storage" / "DCIM" / "late_0100.MP4"
        late.write_bytes(os.urandom(50_000))
        s = d.wait_for(lambda s: s["released"] == 4 and s["purged"] == 4, timeout=60, what="released and purged")
        assert s["clips"]["archived"] == 4
    finally:
        assert d.stop() == 0
    assert [p for p in (rec / "storage").rglob("*") if p.is_file()] == [late]
    assert not [p for p in (work / "staging" / "media").rglob("*") if p.is_file()]
    assert len(archive_hashes(work / "archive")) == 4
