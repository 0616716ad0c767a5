"""The district archive on S3 (a real moto server), end to end through the
daemon: Object Lock, manifests beside media, release after archive, an
archive outage, and a byte flipped on the way."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.evidence.manifest import is_evidence_metadata
from tests.helpers import DaemonProc, attach, dockgate, events, sha256_file, source_hashes
from tests.servers import MotoServer, Proxy

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


#: the credentials the tests' moto server accepts
TEST_KEYS = ("dockgate-test", "dockgate-test-secret")


def s3_station(tmp: Path, endpoint: str, bucket: str, release: str = "after-archive",
               keys: tuple[str, str] = TEST_KEYS) -> Path:
    station = write_station(tmp / "station", slots=2, reserve_bytes=0, custody_rotate_s=1.0)
    creds = tmp / "station" / "secrets"
    for name, value in zip(("s3_access", "s3_secret"), keys, strict=True):
        (creds / name).write_text(value)
        os.chmod(creds / name, 0o600)
    text = station.read_text()
    text = re.sub(r"\[archive\].*?(?=\n\[|\Z)", f'''[archive]
backend = "s3"
endpoint = "{endpoint}"
bucket = "{bucket}"
access_key_file = "{creds / 's3_access'}"
secret_key_file = "{creds / 's3_secret'}"
verify = "readback"
retention_mode = "GOVERNANCE"
retention_days = 1
multipart_threshold = {5 * MiB}
part_size = {5 * MiB}
connect_timeout_s = 1
read_timeout_s = 5
broad_credentials_ok = true  # the tests' open moto: every key may do everything

[forward]
retry_initial_s = 0.2
retry_max_s = 1.0
attempts_per_try = 1
refused_retry_s = 1.0

[release]
policy = "{release}"
''', text, flags=re.S)
    station.write_text(text)
    if keys == TEST_KEYS:  # wrong ones are what check-config is for: the caller sees it say so
        dockgate("check-config", "-c", str(station))
    return station


def recorder(tmp: Path, serial: str, clips: int, size: str) -> Path:
    folder = tmp / serial
    dockgate("sim", "make", str(folder), "--protocol", "zfy-ctrl", "--serial", serial, "--officer", "345678",
             "--clips", str(clips), "--size", size)
    return folder


def bucket_media(server: MotoServer, bucket: str) -> dict[str, str]:
    c = server.client()
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=bucket).get("Contents", [])]
    out = {}
    for k in keys:
        if not is_evidence_metadata(k):
            out[k] = __import__("hashlib").sha256(c.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
    return out


def versions(server: MotoServer, bucket: str) -> Counter[str]:
    resp = server.client().list_object_versions(Bucket=bucket)
    return Counter(v["Key"] for v in resp.get("Versions", []))


def test_s3_end_to_end_locked_verified_and_released(s3server: MotoServer, tmp_path: Path) -> None:
    bucket = s3server.make_bucket()
    station = s3_station(tmp_path, s3server.endpoint, bucket)
    rec = recorder(tmp_path, "S3REC01", 4, "1M")
    big = rec / "storage" / "DCIM" / "big_0099.MP4"
    big.write_bytes(os.urandom(12 * MiB + 5))  # multipart
    want = source_hashes(rec / "storage")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 5 and s["released"] == 5, timeout=90,
                   what="5 clips archived and released")
    finally:
        assert d.stop() == 0
    media = bucket_media(s3server, bucket)
    assert Counter(media.values()) == want  # every clip once, byte for byte
    c = s3server.client()
    for key in media:
        head = c.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"], key
        assert head["Metadata"]["sha256"] == media[key]
        c.head_object(Bucket=bucket, Key=key + ".manifest.json")
        c.head_object(Bucket=bucket, Key=key + ".manifest.json.sig")
    assert all(n == 1 for n in versions(s3server, bucket).values()), versions(s3server, bucket)
    assert not [p for p in (rec / "storage").rglob("*") if p.is_file()]  # recorder freed
    r = dockgate("verify", "-c", str(station))
    assert r.stdout.startswith("OK: 5 clips")


def test_archive_outage_loses_nothing_and_drains_without_duplicates(s3server: MotoServer, tmp_path: Path) -> None:
    bucket = s3server.make_bucket()
    proxy = Proxy(s3server.port)
    proxy.down()
    station = s3_station(tmp_path, proxy.endpoint, bucket, release="never")
    rec = recorder(tmp_path, "S3REC02", 6, "2M")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 2)
        s = d.wait_for(lambda s: s["clips"]["stamped"] + s["clips"]["forwarding"] == 6 and s["archive_up"] is False,
                       timeout=60, what="everything queued while the archive is down")
        assert s["clips"]["archived"] == 0
        proxy.up()
        d.wait_for(lambda s: s["clips"]["archived"] == 6 and s["queue"]["clips"] == 0, timeout=90,
                   what="queue drained after the outage")
        # and once more, mid-upload this time: the proxy holds the requests
        # in flight (a fast machine archives 3 clips between two polls)
        rec2 = recorder(tmp_path, "S3REC03", 3, "6M")
        dockgate("sim", "detach", "-c", str(station), "--slot", "2")
        proxy.hold()
        attach(station, rec2, 2)
        d.wait_for(lambda s: s["clips"]["forwarding"] >= 1, timeout=60, what="upload under way")
        proxy.down()
        d.wait_for(lambda s: s["archive_up"] is False, timeout=60, what="archive noticed down")
        proxy.up()
        d.wait_for(lambda s: s["clips"]["archived"] == 9 and s["queue"]["clips"] == 0, timeout=120,
                   what="second drain")
    finally:
        assert d.stop() == 0
        proxy.down()
    media = bucket_media(s3server, bucket)
    assert Counter(media.values()) == source_hashes(rec / "storage") + source_hashes(rec2 / "storage")
    assert all(n == 1 for n in versions(s3server, bucket).values()), versions(s3server, bucket)
    assert events(station, "archive_down") and events(station, "archive_up")


def test_byte_flipped_on_the_way_is_caught_never_archived_never_released(s3server: MotoServer,
                                                                          tmp_path: Path) -> None:
    bucket = s3server.make_bucket()
    station = s3_station(tmp_path, s3server.endpoint, bucket)
    rec = recorder(tmp_path, "S3REC04", 3, "300k")
    victim = next(p for p in (rec / "storage").rglob("*_0002.MP4"))
    victim_hash = sha256_file(victim)
    d = DaemonProc(station, tmp_path / "daemon.log", module="tests.faulty_daemon",
                   env={"DOCKGATE_TEST_FLIP": "_0002_"}).start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["clips"]["quarantined"] == 1, timeout=90,
                   what="two archived, the corrupted one quarantined")
        s = d.wait_for(lambda s: any(x["slot"] == 1 and x["state"] == "done" for x in s["slots"]), timeout=30,
                       what="release finished")
    finally:
        assert d.stop() == 0
    assert s["released"] == 2
    left = [p for p in (rec / "storage").rglob("*") if p.is_file()]
    assert left == [victim] and sha256_file(victim) == victim_hash  # the recorder keeps it, intact
    assert victim_hash not in bucket_media(s3server, bucket).values()  # never stored as good
    log = (tmp_path / "daemon.log").read_text()
    assert "reads back as" in log


@pytest.fixture
def s3_after_clean_stop(s3server: MotoServer, tmp_path: Path) -> tuple[Path, str]:
    """A station's S3 archive after a dock and a clean stop (Object Lock in
    GOVERNANCE: moto lets the test delete what a real store would refuse)."""
    bucket = s3server.make_bucket()
    station = s3_station(tmp_path, s3server.endpoint, bucket, release="never")
    rec = recorder(tmp_path, "S3DEL01", 3, "100k")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, timeout=60, what="archived")
    finally:
        assert d.stop() == 0
    assert dockgate("verify", "-c", str(station), check=False).returncode == 0
    return station, bucket


def delete_keys(server: MotoServer, bucket: str, keys: list[str]) -> None:
    c = server.client()
    for k in keys:
        c.delete_object(Bucket=bucket, Key=k)  # the current version goes: what `verify` lists


def test_s3_a_clip_deleted_whole_is_caught(s3server: MotoServer, s3_after_clean_stop: tuple[Path, str]) -> None:
    station, bucket = s3_after_clean_stop
    media = sorted(bucket_media(s3server, bucket))[0]
    delete_keys(s3server, bucket, [media, media + ".manifest.json", media + ".manifest.json.sig"])
    r = dockgate("verify", "-c", str(station), check=False)
    assert r.returncode == 1 and "clip-missing" in r.stderr and media in r.stderr


def test_s3_all_of_custody_deleted_is_caught(s3server: MotoServer, s3_after_clean_stop: tuple[Path, str]) -> None:
    station, bucket = s3_after_clean_stop
    keys = [o["Key"] for o in s3server.client().list_objects_v2(Bucket=bucket, Prefix="custody/").get("Contents", [])]
    assert keys
    delete_keys(s3server, bucket, keys)
    r = dockgate("verify", "-c", str(station), check=False)
    assert r.returncode == 1 and "custody-missing" in r.stderr


def test_s3_a_deleted_custody_segment_is_caught(s3server: MotoServer, s3_after_clean_stop: tuple[Path, str]) -> None:
    station, bucket = s3_after_clean_stop
    segs = sorted(o["Key"] for o in s3server.client().list_objects_v2(Bucket=bucket, Prefix="custody/")
                  .get("Contents", []) if o["Key"].endswith(".jsonl"))
    delete_keys(s3server, bucket, segs[:1])
    r = dockgate("verify", "-c", str(station), check=False)
    assert r.returncode == 1 and re.search(r"custody-(sequence|missing)", r.stderr)
