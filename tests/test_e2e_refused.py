"""An archive that refuses the station (wrong credentials, not writable) is
the station's fault, never a clip's: end to end with the real daemon, no
clip is quarantined, one clear alarm is raised, forwarding pauses, and once
the fault is fixed every clip is archived, without a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, archive_hashes, attach, dockgate, events, read_only, source_hashes
from tests.servers import MotoServer
from tests.test_e2e_s3 import bucket_media, s3_station

pytestmark = pytest.mark.e2e


def refused(s: dict) -> bool:
    return bool(s.get("archive_refused")) and s["clips"]["stamped"] + s["clips"]["forwarding"] == 3


def recorder(tmp_path: Path) -> Path:
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "3", "--size", "300k", "--serial", "REFUSE01")
    return rec


def test_s3_refusing_the_credentials_quarantines_nothing_and_resumes_once_fixed(
        s3auth: MotoServer, tmp_path: Path) -> None:
    bucket = s3auth.make_bucket()
    station = s3_station(tmp_path, s3auth.endpoint, bucket, release="never",
                         keys=("AKIAWRONGWRONGWRONG0", "not-the-secret"))
    told = dockgate("check-config", "-c", str(station), check=False)  # the admin was told before the daemon ran
    assert told.returncode == 1 and "archive.access_key_file" in told.stdout + told.stderr
    rec = recorder(tmp_path)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        s = d.wait_for(refused, timeout=60, what="clips queued, archive refusing")
        assert s["clips"]["quarantined"] == 0
        alarms = events(station, "archive_refused")
        assert len(alarms) == 1 and "403" in alarms[0]["data"]["error"]
        assert "REFUSES" in dockgate("status", "-c", str(station)).stdout
        secrets = tmp_path / "station" / "secrets"  # the operator corrects the credential files
        for name, value in (("s3_access", s3auth.access_key), ("s3_secret", s3auth.secret_key)):
            (secrets / name).write_text(value)
            os.chmod(secrets / name, 0o600)
        # the live status (refused or not) follows the catalog within the status writer's half second
        s = d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0
                       and not s["archive_refused"], timeout=60,
                       what="every clip archived once the credentials are right, the refusal cleared")
        assert s["clips"]["quarantined"] == 0
    finally:
        d.stop()
    assert sorted(bucket_media(s3auth, bucket).values()) == sorted(source_hashes(rec / "storage").elements())
    assert len(events(station, "archive_refused")) == 1


def test_a_read_only_directory_archive_quarantines_nothing_and_resumes_once_writable(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    station.write_text(station.read_text() + "\n[forward]\nrefused_retry_s = 1.0\n")
    archive = tmp_path / "st" / "archive"
    rec = recorder(tmp_path)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        with read_only(archive):
            attach(station, rec, 1)
            s = d.wait_for(refused, timeout=60, what="clips queued, archive read-only")
            assert s["clips"]["quarantined"] == 0
            assert len(events(station, "archive_refused")) == 1
        s = d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, timeout=60,
                       what="every clip archived once the archive is writable")
        assert s["clips"]["quarantined"] == 0
    finally:
        d.stop()
    assert archive_hashes(archive) == source_hashes(rec / "storage")
