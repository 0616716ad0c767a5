"""Faults, end to end with the real daemon: SIGKILL loops, archive and broker
down together, a full disk, and a staged file altered before forwarding."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import DaemonProc, archive_hashes, attach, dockgate, events, sha256_file, source_hashes
from tests.mqttclient import Recorder
from tests.servers import Mosquitto, MotoServer, Proxy

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def test_sigkill_loop_loses_and_doubles_nothing() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--iterations", "8", "--seed", "20261126"],
                       capture_output=True, text=True, timeout=900, check=False)
    assert "lost=0 duplicated=0" in r.stdout, r.stdout + r.stderr[-3000:]
    assert "verify=ok" in r.stdout and r.returncode == 0, r.stdout


def test_archive_and_broker_down_together_then_everything_drains(s3server: MotoServer, tmp_path: Path) -> None:
    from tests.test_e2e_s3 import bucket_media, s3_station

    broker = Mosquitto(tmp_path / "broker")
    proxy = Proxy(s3server.port)
    bucket = s3server.make_bucket()
    station = s3_station(tmp_path, proxy.endpoint, bucket, release="never")
    station.write_text(station.read_text() + f'\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n')
    base = "dockgate/sim-station-01"
    sub = Recorder(broker.port, f"{base}/events", client_id="ops-board", clean=False)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        sub.wait(sub.subscribed.is_set, what="subscribed")
        rec = tmp_path / "rec"
        dockgate("sim", "make", str(rec), "--protocol", "amba-ascii", "--clips", "4", "--size", "700k", "--serial", "BOTH01")
        proxy.down()
        broker.stop()
        attach(station, rec, 1)
        s = d.wait_for(lambda s: s["clips"]["stamped"] + s["clips"]["forwarding"] == 4 and s["archive_up"] is False,
                       timeout=60, what="queued with archive and broker down")
        assert s["clips"]["archived"] == 0
        proxy.up()
        broker.start()
        d.wait_for(lambda s: s["clips"]["archived"] == 4 and s["queue"]["clips"] == 0, timeout=90, what="drained")
        want = {e["id"] for e in events(station)}
        sub.wait(lambda: want <= {e["id"] for e in sub.json_on("/events")}, timeout=60, what="every event")
        ids = [e["id"] for e in sub.json_on("/events")]
        assert len(ids) == len(set(ids))
    finally:
        sub.close()
        d.stop()
        broker.stop()
        proxy.down()
    assert sorted(bucket_media(s3server, bucket).values()) == sorted(source_hashes(rec / "storage"))


@contextlib.contextmanager
def small_staging(tmp_path: Path, slots: int = 8) -> Iterator[tuple[Path, Path]]:
    """(work folder, config) of a station whose staging is a 40 MiB tmpfs with an 8 MiB
    reserve, purging only when room is short."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs for staging and must run as root (CI does)")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(small)], check=True)
    try:
        work = tmp_path / "w"
        station = write_station(work, slots=slots, reserve_bytes=8 << 20)
        text = station.read_text().replace(f'staging = "{work / "staging"}"', f'staging = "{small / "staging"}"')
        station.write_text(text + '\n[purge]\nafter_s = 3600\ninterval_s = 0.5\n')
        yield work, station
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_disk_full_while_staging_waits_alarms_and_resumes(tmp_path: Path) -> None:
    """Staging on a 40 MiB tmpfs: 48 MiB of clips cannot all be staged at
    once; pulls stop at the reserve, raise disk_low, and resume as archived
    copies are purged."""
    with small_staging(tmp_path) as (work, station):
        rec = tmp_path / "rec"
        dockgate("sim", "make", str(rec), "--clips", "6", "--size", "8M", "--serial", "FULL01")
        d = DaemonProc(station, tmp_path / "daemon.log").start()
        try:
            attach(station, rec, 1)
            s = d.wait_for(lambda s: s["clips"]["archived"] == 6 and s["queue"]["clips"] == 0, timeout=120,
                           what="all archived despite the small disk")
            assert s["purged"] >= 2  # space came back by purging archived copies, oldest first
        finally:
            d.stop()
        assert events(station, "disk_low")
        assert archive_hashes(work / "archive") == source_hashes(rec / "storage")
        assert dockgate("verify", "-c", str(station)).returncode == 0


def test_slots_waiting_for_room_do_not_hold_back_the_uploads_that_make_it(tmp_path: Path) -> None:
    """Two recorders docked at a station whose staging fills: both slots wait for room, and
    only uploads (then purging) can make it. Waiting slots copy nothing: counted as pulling,
    two of them held every upload until the queue was catch_up_s (30 min) old."""
    with small_staging(tmp_path, slots=2) as (work, station):
        recs = [tmp_path / f"rec{i}" for i in (1, 2)]
        for i, rec in enumerate(recs, start=1):
            dockgate("sim", "make", str(rec), "--clips", "4", "--size", "8M", "--serial", f"ROOM0{i}")
        d = DaemonProc(station, tmp_path / "daemon.log").start()
        try:
            dockgate("sim", "attach", *map(str, recs), "-c", str(station), "--slot", "1")  # docked at one instant
            d.wait_for(lambda s: s["clips"]["archived"] == 8 and s["queue"]["clips"] == 0, timeout=120,
                       what="both recorders archived through a staging too small for either")
        finally:
            d.stop()
        assert {e["slot"] for e in events(station, "disk_low")} == {1, 2}  # both did wait
        assert archive_hashes(work / "archive") == source_hashes(recs[0] / "storage") + source_hashes(recs[1] / "storage")


def test_staged_file_altered_before_forwarding_is_quarantined_and_kept(tmp_path: Path) -> None:
    work = tmp_path / "w"
    station = write_station(work)
    archive = work / "archive"
    station.write_text(station.read_text() + '\n[release]\npolicy = "after-archive"\n')
    cfg = load_config(station)
    archive.rename(work / "archive-unmounted")  # the NAS is not mounted yet
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "3", "--size", "500k", "--serial", "ALTER1")
    victim = sorted((rec / "storage").rglob("*_0002.MP4"))[0]
    victim_hash = sha256_file(victim)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["stamped"] + s["clips"]["forwarding"] == 3, what="queued")
        staged = cfg.paths.staging / "media" / victim_hash[:2] / victim_hash
        data = bytearray(staged.read_bytes())
        data[1000] ^= 0xFF  # bit rot or tampering on the station's disk
        staged.write_bytes(bytes(data))
        (work / "archive-unmounted").rename(archive)
        d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["clips"]["quarantined"] == 1, timeout=60,
                   what="two archived, the altered one quarantined")
        d.wait_for(lambda s: s["released"] == 2, timeout=30, what="release of the good ones")
    finally:
        d.stop()
    assert victim_hash not in archive_hashes(archive)  # never forwarded as good
    assert victim.exists() and sha256_file(victim) == victim_hash  # the recorder keeps the original
    q = events(station, "quarantined")
    assert len(q) == 1 and re.search("no longer matches", q[0]["data"]["error"])


def test_two_slots_looking_at_the_free_space_together_cannot_both_take_the_last_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Room a slot found for its clip is claimed until its copy ends: another slot sees it taken,
    so the reserve stays for the manifests (two 8 MiB clips once filled a disk with room for one)."""
    from gateway.errors import StagingFull
    from gateway.pipeline.staging import Staging

    staging = Staging(tmp_path, reserve_bytes=8 << 20)
    monkeypatch.setattr(staging, "free_bytes", lambda: 20 << 20)  # room for one 8 MiB clip and the reserve
    staging.check_space(8 << 20, slot=1)
    with pytest.raises(StagingFull):
        staging.check_space(8 << 20, slot=2)
    staging.check_space(8 << 20, slot=1)  # a slot's own claim is not counted against it
    staging.release(1)  # its copy ended: the disk shows it (here: it was given up)
    staging.check_space(8 << 20, slot=2)
