"""Retention by category and legal hold, on S3 Object Lock (moto): a
station whose [retention] table gives traffic footage the six-month class,
one clip of it, one clip without a category, then a case assigned to the
traffic clip after archiving."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.config import load_config
from tests.helpers import DaemonProc, attach, dockgate
from tests.servers import MotoServer
from tests.test_casefile import recorder
from tests.test_e2e_s3 import s3_station

pytestmark = pytest.mark.e2e
OFFICER = "0123456"
CASE = "T-2024-009"
RETENTION = """
[retention]
enabled = true
classes = { standard = 183, case = 3650, permanent = "permanent" }
categories = { traffic = "standard", obstruction = "permanent" }
important = "permanent"
case = "case"
permanent_days = 36500
"""


@pytest.fixture(scope="module")
def run(s3server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("retention")
    bucket = s3server.make_bucket()
    station = s3_station(tmp, s3server.endpoint, bucket, release="never")
    station.write_text(station.read_text() + RETENTION)
    rec = recorder(tmp / "rec", "ZF00042", OFFICER, "张伟", {
        "20240301083015": "2024-03-01T08:30:15Z",   # traffic
        "20240301100000": "2024-03-01T10:00:00Z"})  # no category
    dockgate("assign", "-c", str(station), "--officer", OFFICER, "--from", "2024-03-01T08:00:00+00:00",
             "--to", "2024-03-01T09:00:00+00:00", "--category", "traffic")
    d = DaemonProc(station, tmp / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["queue"]["clips"] == 0, timeout=90,
                   what="2 clips archived")
        before = lock_dates(s3server, bucket)
        dockgate("assign", "-c", str(station), "--officer", OFFICER, "--from", "2024-03-01T08:00:00+00:00",
                 "--to", "2024-03-01T09:00:00+00:00", "--case", CASE)
        d.wait_for(lambda s: any(".amendment-" in k for k in lock_dates(s3server, bucket)), timeout=30,
                   what="amendment archived")
    finally:
        assert d.stop() == 0
    yield {"station": station, "bucket": bucket, "before": before, "after": lock_dates(s3server, bucket),
           "cfg": load_config(station)}


def lock_dates(server: MotoServer, bucket: str) -> dict[str, datetime]:
    c = server.client()
    out = {}
    for o in c.list_objects_v2(Bucket=bucket).get("Contents", []):
        head = c.head_object(Bucket=bucket, Key=o["Key"])
        out[o["Key"]] = head["ObjectLockRetainUntilDate"]
    return out


def media(dates: dict[str, datetime], stamp: str) -> tuple[str, datetime]:
    (hit,) = [(k, v) for k, v in dates.items() if f"_{stamp}_" in k and k.endswith(".MP4")]
    return hit


def days_from_now(when: datetime) -> float:
    return (when - datetime.now(UTC)).total_seconds() / 86400


def test_a_categorised_clip_is_locked_for_its_class(run: dict[str, object]) -> None:
    key, until = media(run["before"], "20240301083015")  # type: ignore[arg-type]
    assert 182 < days_from_now(until) <= 183
    before: dict[str, datetime] = run["before"]  # type: ignore[assignment]
    for suffix in (".manifest.json", ".manifest.json.sig"):  # its manifest and signature alike
        assert abs((before[key + suffix] - until).total_seconds()) < 120


def test_a_clip_without_a_category_gets_the_longest_class(run: dict[str, object]) -> None:
    _, until = media(run["before"], "20240301100000")  # type: ignore[arg-type]
    assert days_from_now(until) > 36499


def test_a_later_case_assignment_extends_the_lock(run: dict[str, object]) -> None:
    _, until = media(run["after"], "20240301083015")  # type: ignore[arg-type]
    assert 3649 < days_from_now(until) <= 3650


def test_an_assignment_never_shortens_the_lock(run: dict[str, object], s3server: MotoServer) -> None:
    from gateway.archive import open_backend
    from gateway.evidence.retention import extend

    cfg = run["cfg"]
    key, until = media(run["after"], "20240301100000")  # type: ignore[arg-type]
    shorter = datetime.now(UTC) + timedelta(days=200)
    (r,) = extend(open_backend(cfg), [key], shorter)  # type: ignore[arg-type]
    assert r.refused_shorter and r.kept_until == until
    assert lock_dates(s3server, run["bucket"])[key] == until  # type: ignore[arg-type]


def test_legal_hold_is_set_and_released_on_every_object_of_the_case(run: dict[str, object],
                                                                    s3server: MotoServer) -> None:
    c = s3server.client()
    bucket = str(run["bucket"])
    out = dockgate("legal-hold", "set", CASE, "-c", str(run["station"])).stdout
    n = int(re.search(r"on (\d+) objects", out).group(1))  # type: ignore[union-attr]
    assert n >= 5  # media, manifest, signature, amendment, its signature
    keys = [k for k in lock_dates(s3server, bucket) if "_20240301083015_" in k]
    assert all(c.head_object(Bucket=bucket, Key=k).get("ObjectLockLegalHoldStatus") == "ON" for k in keys)
    other = media(lock_dates(s3server, bucket), "20240301100000")[0]
    assert c.head_object(Bucket=bucket, Key=other).get("ObjectLockLegalHoldStatus") != "ON"
    dockgate("legal-hold", "release", CASE, "-c", str(run["station"]))
    assert all(c.head_object(Bucket=bucket, Key=k).get("ObjectLockLegalHoldStatus") == "OFF" for k in keys)


def test_retention_report_lists_what_expires_when_soonest_first(run: dict[str, object]) -> None:
    out = dockgate("retention", "report", "-c", str(run["station"]), "--json").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["class"] for r in rows] == ["case", "permanent"]
    assert rows[0]["case"] == CASE and rows[0]["category"] == "traffic"
    assert rows[0]["retain_until"] < rows[1]["retain_until"]


def test_the_config_refuses_a_class_shorter_than_six_months(tmp_path: Path) -> None:
    from gateway.config import RetentionConfig

    with pytest.raises(ValueError, match=r"retention.classes.short: 30 days"):
        RetentionConfig.model_validate({"classes": {"short": 30}})
    with pytest.raises(ValueError, match=r"retention.categories.traffic: no class 'nope'"):
        RetentionConfig.model_validate({"categories": {"traffic": "nope"}})


def test_verify_reads_an_s3_archive_without_a_station_config(run: dict[str, object], s3server: MotoServer,
                                                             tmp_path: Path) -> None:
    secrets = Path(str(run["station"])).parent / "secrets"
    r = subprocess.run([sys.executable, "-m", "gateway.cli.main", "verify", "--s3-endpoint", s3server.endpoint,
                        "--bucket", str(run["bucket"]), "--access-key-file", str(secrets / "s3_access"),
                        "--secret-key-file", str(secrets / "s3_secret"), "--pubkey", str(secrets / "station.pub.pem"),
                        "--json"], capture_output=True, text=True, timeout=120, check=False,
                       env={**os.environ, "TMPDIR": str(tmp_path)})
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["clips"] == 2, out
    assert list(tmp_path.iterdir()) == []  # its scratch folder is gone (each run used to leave one)
