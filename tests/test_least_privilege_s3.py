"""Least privilege at the archive, on a real S3 API server that enforces IAM
(moto with authentication): a station's key, with the policy `dockgate
archive-policy` prints, archives everything the station writes under its own
prefix, and cannot write, read or delete another station's objects, nor
delete its own; `dockgate check-config` fails a key that can do more and
passes one that cannot.

What moto cannot show (see `moto_dialect`): it evaluates no condition keys of
S3 requests (the ListBucket prefix condition) and maps no request to
s3:BypassGovernanceRetention; and it lets any PutObjectRetention shorten a
lock, even under COMPLIANCE, which real S3 refuses. Those promises rest on S3
itself and on the policy's own text (checked below)."""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from gateway.archive import ArchiveObject, ArchiveRefused
from gateway.archive.policy import DENIED_ACTIONS, render_template, station_policy
from gateway.archive.s3 import S3Archive
from gateway.cli.simstation import write_station
from gateway.config import S3ArchiveConfig
from tests.archive_contract import make_obj
from tests.helpers import DaemonProc, attach, dockgate, events
from tests.servers import MotoServer, free_port

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024

#: moto authorises an S3 request by its API operation's name; real S3 by the
#: IAM action AWS documents for that operation. Each real action of the
#: policy, as the operations moto checks for it (the others keep their name).
_MOTO_OPERATIONS = {
    "s3:PutObject": ["s3:PutObject", "s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload"],
    "s3:GetObject": ["s3:GetObject", "s3:HeadObject"],
    "s3:GetObjectVersion": ["s3:GetObject", "s3:HeadObject"],
    "s3:ListMultipartUploadParts": ["s3:ListParts"],
    "s3:PutBucket*": ["s3:PutBucket*", "s3:PutObjectLockConfiguration"],
    "s3:Delete*": ["s3:Delete*"],
}


def moto_dialect(policy: dict[str, Any]) -> dict[str, Any]:
    """*policy* as moto can enforce it: actions by operation name; an Allow
    with a condition dropped (moto would ignore the condition and grant the
    whole bucket's listing: dropping it is stricter, and the station's flow
    lists nothing)."""
    out = copy.deepcopy(policy)
    kept = []
    for st in out["Statement"]:
        if st["Effect"] == "Allow" and "Condition" in st:
            continue
        st["Action"] = sorted({op for a in st["Action"] for op in _MOTO_OPERATIONS.get(a, [a])})
        kept.append(st)
    out["Statement"] = kept
    return out


@dataclass
class Station:
    name: str
    prefix: str
    keys: tuple[str, str]


class District:
    """One bucket (Object Lock, GOVERNANCE by default so that the tests can
    see what a key may bypass), stations as IAM users with their policy."""

    def __init__(self, server: MotoServer, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.bucket = server.make_bucket()
        self.run = uuid.uuid4().hex[:8]
        self.iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                                aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)
        self.admin = server.client()

    def user(self, name: str, policy: dict[str, Any]) -> tuple[str, str]:
        user = f"{name}-{self.run}"
        self.iam.create_user(UserName=user)
        self.iam.put_user_policy(UserName=user, PolicyName="archive", PolicyDocument=json.dumps(policy))
        key = self.iam.create_access_key(UserName=user)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def station(self, name: str) -> Station:
        prefix = f"district-7/{name}/"
        return Station(name, prefix, self.user(name, moto_dialect(station_policy(self.bucket, prefix))))

    def archive(self, st: Station, **kw: Any) -> S3Archive:
        folder = self.tmp / f"{st.name}-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        for fname, value in zip(("ak", "sk"), st.keys, strict=True):
            (folder / fname).write_text(value)
            os.chmod(folder / fname, 0o600)
        cfg = S3ArchiveConfig.model_validate({
            "backend": "s3", "endpoint": self.server.endpoint, "bucket": self.bucket, "prefix": st.prefix,
            "access_key_file": folder / "ak", "secret_key_file": folder / "sk", "retention_mode": "GOVERNANCE",
            "retention_days": 1, "multipart_threshold": 5 * MiB, "part_size": 5 * MiB, "read_timeout_s": 5,
            "connect_timeout_s": 2, **kw})
        return S3Archive(cfg, folder / "state")

    def versions(self, key: str) -> list[str]:
        listed = self.admin.list_object_versions(Bucket=self.bucket, Prefix=key)
        return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]


@pytest.fixture
def district(s3auth: MotoServer, tmp_path: Path) -> District:
    return District(s3auth, tmp_path)


def denied(call: Any) -> bool:
    try:
        call()
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status == 403 and e.response.get("Error", {}).get("Code") in ("AccessDenied", "403")
    return False


def archive_clip(a: S3Archive, tmp: Path, size: int = 100_000) -> ArchiveObject:
    """A clip with its manifest (an extra), under the station's usual layout."""
    tmp.mkdir(parents=True, exist_ok=True)
    obj = make_obj(tmp, key=f"012345/2026-12-06/SN0001/{uuid.uuid4().hex[:8]}.MP4", size=size)
    a.put(obj)
    return obj


# -- the station's own flow ------------------------------------------------------------------------------

def test_a_station_key_archives_clips_manifests_and_custody_under_its_own_prefix(district: District,
                                                                                 tmp_path: Path) -> None:
    st = district.station("precinct-01")
    a = district.archive(st)
    small = archive_clip(a, tmp_path / "s")  # with its manifest and signature (extras)
    big = archive_clip(a, tmp_path / "b", size=6 * MiB)  # multipart
    a.put_bytes("custody/precinct-01/custody-precinct-01-0000000001.jsonl", b'{"seq":1}\n')
    for obj in (small, big):
        assert a.sha256(obj.key) == obj.sha256
        for suffix, data in obj.extras:
            assert a.read(obj.key + suffix).read() == data
    assert a.put(small).existed  # idempotent: read back, not sent again
    later = datetime.now(UTC) + timedelta(days=3)
    assert a.extend_retention(small.key, later) == later
    assert a.retain_until(small.key) == later.replace(microsecond=0) or a.retain_until(small.key) == later
    a.set_legal_hold(small.key, True)
    assert a.legal_hold(small.key)
    a.set_legal_hold(small.key, False)
    keys = {o["Key"] for o in district.admin.list_objects_v2(Bucket=district.bucket).get("Contents", [])}
    assert keys and all(k.startswith(st.prefix) for k in keys), keys


def test_a_head_refused_as_s3_refuses_it_for_a_missing_key_does_not_stop_the_upload(district: District,
                                                                                     tmp_path: Path) -> None:
    """Without ListBucket for the request, S3 answers a HEAD of a missing key
    with 403: the station then puts, and the PUT and the read-back decide."""
    prefix = "district-7/precinct-09/"
    policy = moto_dialect(station_policy(district.bucket, prefix))
    for st in policy["Statement"]:
        st["Action"] = [x for x in st["Action"] if x != "s3:HeadObject"]
    a = district.archive(Station("precinct-09", prefix, district.user("precinct-09", policy)))
    obj = archive_clip(a, tmp_path)
    assert district.versions(prefix + obj.key)


# -- what it cannot do ------------------------------------------------------------------------------------

def test_a_station_key_cannot_write_read_or_delete_another_stations_objects(district: District,
                                                                            tmp_path: Path) -> None:
    a_st, b_st = district.station("precinct-01"), district.station("precinct-02")
    b = district.archive(b_st)
    obj = archive_clip(b, tmp_path)
    theirs = b_st.prefix + obj.key
    before = district.versions(theirs)
    c = district.archive(a_st).client  # A's key, speaking S3 directly
    bucket = district.bucket
    assert denied(lambda: c.put_object(Bucket=bucket, Key=theirs, Body=b"forged", ChecksumAlgorithm="SHA256"))
    assert denied(lambda: c.put_object(Bucket=bucket, Key=b_st.prefix + "new.MP4", Body=b"x",
                                       ChecksumAlgorithm="SHA256"))
    assert denied(lambda: c.create_multipart_upload(Bucket=bucket, Key=theirs))
    assert denied(lambda: c.get_object(Bucket=bucket, Key=theirs))
    assert denied(lambda: c.head_object(Bucket=bucket, Key=theirs))
    assert denied(lambda: c.get_object(Bucket=bucket, Key=theirs, VersionId=before[0]))
    assert denied(lambda: c.delete_object(Bucket=bucket, Key=theirs))
    assert denied(lambda: c.delete_object(Bucket=bucket, Key=theirs, VersionId=before[0],
                                          BypassGovernanceRetention=True))
    assert denied(lambda: c.put_object_retention(
        Bucket=bucket, Key=theirs, BypassGovernanceRetention=True,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(minutes=1)}))
    assert denied(lambda: c.put_object_legal_hold(Bucket=bucket, Key=theirs, LegalHold={"Status": "OFF"}))
    assert denied(lambda: c.list_objects_v2(Bucket=bucket, Prefix=b_st.prefix))
    assert district.versions(theirs) == before
    assert b.sha256(obj.key) == obj.sha256
    # and A's archive, pointed at B's folder, is refused as a station, not a clip
    a_in_b = district.archive(Station("precinct-01", b_st.prefix, a_st.keys))
    with pytest.raises(ArchiveRefused):
        a_in_b.put(make_obj(tmp_path, key="012345/2026-12-06/SN0001/again.MP4", size=1000))


def test_a_station_key_cannot_delete_its_own_objects(district: District, tmp_path: Path) -> None:
    st = district.station("precinct-03")
    a = district.archive(st)
    obj = archive_clip(a, tmp_path)
    key = st.prefix + obj.key
    [version] = district.versions(key)
    c, bucket = a.client, district.bucket
    assert denied(lambda: c.delete_object(Bucket=bucket, Key=key))
    assert denied(lambda: c.delete_object(Bucket=bucket, Key=key, VersionId=version))
    assert denied(lambda: c.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True))
    try:  # a batch delete is authorised key by key: refused in the answer, or as a whole
        batch = c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": version}]})
        assert not batch.get("Deleted") and [e["Code"] for e in batch["Errors"]] == ["AccessDenied"], batch
    except ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDenied"
    assert denied(lambda: c.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}))
    assert denied(lambda: c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}))
    assert district.versions(key) == [version]
    assert a.sha256(obj.key) == obj.sha256


def test_a_broader_grant_on_the_same_user_does_not_bring_back_delete(district: District, tmp_path: Path) -> None:
    """The policy's Deny is explicit: an "allow everything" attached to the
    station's user by mistake still leaves its evidence undeletable by it."""
    st = district.station("precinct-08")
    district.iam.put_user_policy(UserName=f"precinct-08-{district.run}", PolicyName="by-mistake",
                                 PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                     {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    a = district.archive(st)
    obj = archive_clip(a, tmp_path)
    key = st.prefix + obj.key
    [version] = district.versions(key)
    assert denied(lambda: a.client.delete_object(Bucket=district.bucket, Key=key, VersionId=version,
                                                 BypassGovernanceRetention=True))
    assert denied(lambda: a.client.put_bucket_versioning(Bucket=district.bucket,
                                                         VersioningConfiguration={"Status": "Suspended"}))
    assert district.versions(key) == [version]


def test_the_policy_denies_every_way_to_remove_or_unlock_evidence_outright() -> None:
    """What moto cannot enforce, in the policy's own words: an explicit Deny
    (no other grant to the same user overrides it) of deleting, bypassing a
    governance lock and changing the bucket's rules; and listing only under
    the station's prefix."""
    policy = station_policy("evidence", "district-7/precinct-01/")
    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Resource"] == "*"
    assert {"s3:Delete*", "s3:BypassGovernanceRetention", "s3:PutBucket*", "s3:PutLifecycleConfiguration"} \
        <= set(deny["Action"]) == set(DENIED_ACTIONS)
    allowed = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    for s in allowed:
        assert not any(a.startswith(("s3:Delete", "s3:Bypass", "s3:PutBucket")) or a == "s3:*" for a in s["Action"])
        if s["Action"] == ["s3:ListBucket"]:
            assert s["Resource"] == "arn:aws:s3:::evidence"
            assert s["Condition"] == {"StringLike": {"s3:prefix": ["district-7/precinct-01/*"]}}
        else:
            assert s["Resource"] == "arn:aws:s3:::evidence/district-7/precinct-01/*"


def test_the_shipped_template_is_the_policy_dockgate_prints() -> None:
    text = (ROOT / "config" / "s3-station-policy.json").read_text()
    rendered = render_template(text, "evidence", "district-7/precinct-01/", "aws-cn")
    assert json.loads(rendered) == station_policy("evidence", "district-7/precinct-01/", "aws-cn")
    out = dockgate("archive-policy", "--bucket", "evidence", "--prefix", "district-7/precinct-01/").stdout
    assert json.loads(out) == station_policy("evidence", "district-7/precinct-01/")
    for bad in ("", "district-7/precinct-01", "district-7/*/"):
        r = dockgate("archive-policy", "--bucket", "evidence", "--prefix", bad, check=False)
        assert r.returncode == 2 and "archive.prefix" in r.stderr, r


# -- check-config -----------------------------------------------------------------------------------------

def s3_config(tmp: Path, district: District, prefix: str, keys: tuple[str, str], extra: str = "",
              rotate: float = 60.0, station_id: str = "sim-station-01") -> Path:
    """A station whose archive is *prefix* of the district's bucket, with
    *keys*; *extra*: more lines for its [archive] (and sections after it)."""
    station = write_station(tmp / "station", station_id=station_id, slots=1, reserve_bytes=0,
                            custody_rotate_s=rotate)
    creds = tmp / "station" / "secrets"
    for name, value in zip(("s3_access", "s3_secret"), keys, strict=True):
        (creds / name).write_text(value)
        os.chmod(creds / name, 0o600)
    text = re.sub(r"\[archive\].*?(?=\n\[|\Z)", f'''[archive]
backend = "s3"
endpoint = "{district.server.endpoint}"
bucket = "{district.bucket}"
prefix = "{prefix}"
access_key_file = "{creds / 's3_access'}"
secret_key_file = "{creds / 's3_secret'}"
retention_mode = "GOVERNANCE"
retention_days = 1
connect_timeout_s = 2
read_timeout_s = 5
{extra}''', station.read_text(), flags=re.S)
    station.write_text(text)
    return station


@pytest.fixture
def no_probe_leftovers(district: District) -> Iterator[None]:
    yield
    listed = district.admin.list_object_versions(Bucket=district.bucket)
    left = [v["Key"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]
    assert not [k for k in left if ".dockgate-probe-" in k], left


def test_check_config_passes_a_station_key_with_the_policy(district: District, tmp_path: Path,
                                                           no_probe_leftovers: None) -> None:
    st = district.station("precinct-04")
    r = dockgate("check-config", "--no-service", "-c", str(s3_config(tmp_path, district, st.prefix, st.keys)))
    assert "5 actions beyond a station's policy refused" in r.stdout, r.stdout


def test_check_config_fails_a_key_that_can_do_more_and_says_what(district: District, tmp_path: Path,
                                                                 no_probe_leftovers: None) -> None:
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    keys = district.user("too-broad", everything)
    prefix = "district-7/precinct-05/"
    r = dockgate("check-config", "--no-service", "-c", str(s3_config(tmp_path / "a", district, prefix, keys)),
                 check=False)
    assert r.returncode == 1, r
    said = r.stderr
    assert "the key can do more than a station needs" in said
    for what in ("write outside its prefix", "delete under its own prefix", "delete an object version",
                 "read outside its prefix", "list the whole bucket"):
        assert what in said, said
    assert "archive.broad_credentials_ok" in said and "dockgate archive-policy" in said
    # acknowledged: a note, not a failure
    r = dockgate("check-config", "--no-service", "-c", str(s3_config(tmp_path / "b", district, prefix, keys,
                                                                     "broad_credentials_ok = true\n")))
    assert "note: archive credentials: the key can do more" in r.stdout


def test_check_config_fails_a_key_that_may_only_write_everywhere(district: District, tmp_path: Path,
                                                                 no_probe_leftovers: None) -> None:
    """A common mistake: the station's policy with its prefix left out of the resource."""
    prefix = "district-7/precinct-06/"
    policy = moto_dialect(station_policy(district.bucket, prefix))
    for st in policy["Statement"]:
        st["Resource"] = [st["Resource"].replace(prefix, "")] if st["Effect"] == "Allow" else st["Resource"]
    r = dockgate("check-config", "--no-service", "-c",
                 str(s3_config(tmp_path, district, prefix, district.user("no-prefix", policy))), check=False)
    assert r.returncode == 1 and "write outside its prefix" in r.stderr and "read outside its prefix" in r.stderr
    assert "delete under its own prefix" not in r.stderr, r.stderr


def test_check_config_notes_an_archive_it_cannot_reach_and_passes(district: District, tmp_path: Path) -> None:
    """The service starts without its archive (clips wait in staging): so does check-config."""
    station = s3_config(tmp_path, district, "district-7/x/", ("AKIAWRONGWRONGWRONG0", "not-the-secret"))
    station.write_text(station.read_text().replace(district.server.endpoint, f"http://127.0.0.1:{free_port()}"))
    r = dockgate("check-config", "--no-service", "-c", str(station))
    assert "note: the archive's credentials were not probed" in r.stdout, r.stdout


def test_check_config_says_when_the_archive_does_not_know_the_key(district: District, tmp_path: Path) -> None:
    r = dockgate("check-config", "--no-service", "-c", str(s3_config(
        tmp_path, district, "district-7/x/", ("AKIAWRONGWRONGWRONG0", "not-the-secret"))), check=False)
    assert r.returncode == 1 and "does not accept these credentials" in r.stderr, r


# -- the whole station --------------------------------------------------------------------------------------

def test_a_station_with_its_policy_runs_its_whole_flow_and_its_archive_verifies(district: District,
                                                                               tmp_path: Path) -> None:
    """The daemon with the restricted key: clips (in parts: the backend test above), manifests,
    custody segments and checkpoints, Object Lock dates, release; nothing
    refused, and the district's verify finds the station's archive whole."""
    st = district.station("precinct-10")
    station = s3_config(tmp_path, district, st.prefix, st.keys, "\n[release]\npolicy = \"after-archive\"\n",
                        rotate=1.0, station_id=st.name)
    dockgate("check-config", "--no-service", "-c", str(station))
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "2", "--size", "200k", "--serial", "LEAST001")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["released"] == 2, timeout=90,
                   what="2 clips archived and released")
    finally:
        assert d.stop() == 0
    said = {e["type"] for e in events(station)}
    assert not said & {"archive_refused", "retention_pending", "quarantined"}, said
    listed = district.admin.list_object_versions(Bucket=district.bucket, Prefix="district-7/precinct-10/")
    keys = [v["Key"] for v in listed["Versions"]]
    assert len(keys) == len(set(keys)) and any("/custody/precinct-10/checkpoint-" in k for k in keys), keys
    for name, value in (("admin_ak", district.server.access_key), ("admin_sk", district.server.secret_key)):
        (tmp_path / name).write_text(value)
        os.chmod(tmp_path / name, 0o600)
    pub = next((tmp_path / "station" / "secrets").glob("*.pub.pem"))
    r = dockgate("verify", "--s3-endpoint", district.server.endpoint, "--bucket", district.bucket, "--prefix",
                 st.prefix, "--access-key-file", str(tmp_path / "admin_ak"), "--secret-key-file",
                 str(tmp_path / "admin_sk"), "--pubkey", str(pub), check=False)
    assert r.returncode == 0 and r.stdout.startswith("OK: 2 clips"), r
