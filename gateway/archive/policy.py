"""Least privilege at the archive: the S3 policy a station's key should
have, and a probe that tells when the configured key can do more.

A station of a district archive writes everything under its own
``archive.prefix`` (``district-7/precinct-01/``): its clips, manifests,
signatures, amendments (``{officer}/...`` by ``key_template``), and its
custody segments, checkpoints and RFC 3161 tokens (``custody/<station>/``).
Its key needs, on ``<prefix>*`` only: PutObject (single and multipart),
PutObjectRetention (it only ever extends), PutObjectLegalHold,
AbortMultipartUpload and ListMultipartUploadParts (resuming an upload),
GetObject and GetObjectVersion (read-back verification), GetObjectRetention
and GetObjectLegalHold (a HEAD shows the lock only with these); and
ListBucket for keys under its prefix. Everything that removes, unlocks or
reconfigures is denied outright, so a broader grant attached to the same
user elsewhere does not bring it back.

What each layer stops: the policy stops the station's key from writing,
reading or listing another station's objects and from deleting anything;
Object Lock (on the bucket, COMPLIANCE) keeps every version of every object
until its retain-until, whatever key asks, and makes a PUT over an existing
key a new version beside the old one, which `verify` then reports as
``index-replaced`` against the signed custody index.

The probe never touches evidence: each request is one the server refuses
before it stores anything whether or not the key may do it (a conditional
PUT or DELETE on a key that does not exist, a DELETE of a version that does
not exist, a listing of at most one name), and a 403 AccessDenied is the
answer a station's key must give. Anything a server that ignores the
condition did store is removed again where the key can, and named where it
cannot.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.archive.base import ArchiveError
from gateway.config import S3ArchiveConfig
from gateway.errors import DockgateError

#: what the station does to its own objects (gateway/archive/s3.py)
WRITE_ACTIONS = ("s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:AbortMultipartUpload",
                 "s3:ListMultipartUploadParts")
READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:GetObjectLegalHold")
#: never, on anything: removing, unlocking, and changing the bucket's rules
DENIED_ACTIONS = ("s3:Delete*", "s3:BypassGovernanceRetention", "s3:PutBucket*", "s3:PutLifecycleConfiguration",
                  "s3:PutReplicationConfiguration", "s3:PutEncryptionConfiguration", "s3:PutObjectAcl",
                  "s3:PutObjectVersionAcl")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PROBE_NAME = ".dockgate-probe-"


class PolicyError(DockgateError):
    """A bucket or prefix no per-station policy can be written for."""


def check_prefix(prefix: str) -> str:
    if not prefix:
        raise PolicyError("archive.prefix is empty: a station's key would span the whole bucket; give each "
                          "station its own prefix, e.g. 'district-7/precinct-01/'")
    if not prefix.endswith("/"):
        raise PolicyError(f"archive.prefix {prefix!r} does not end with '/': station 'precinct-1' would then "
                          f"also own 'precinct-10'")
    if any(c in prefix for c in "*?$") or prefix.startswith("/"):
        raise PolicyError(f"archive.prefix {prefix!r}: no '*', '?', '$' or leading '/' (IAM reads them as "
                          f"wildcards and variables)")
    return prefix


def station_policy(bucket: str, prefix: str, partition: str = "aws") -> dict[str, Any]:
    """The IAM policy (identity-based: attach it to the station's user) that
    lets a station do what it does under *prefix* of *bucket* and nothing else."""
    if not _BUCKET.match(bucket):
        raise PolicyError(f"{bucket!r} is not an S3 bucket name")
    check_prefix(prefix)
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WriteOwnEvidence", "Effect": "Allow", "Action": list(WRITE_ACTIONS),
             "Resource": f"{arn}/{prefix}*"},
            {"Sid": "ReadBackOwnEvidence", "Effect": "Allow", "Action": list(READ_ACTIONS),
             "Resource": f"{arn}/{prefix}*"},
            {"Sid": "ListOwnPrefixOnly", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": arn,
             "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
            {"Sid": "NeverDeleteUnlockOrReconfigure", "Effect": "Deny", "Action": list(DENIED_ACTIONS),
             "Resource": "*"},
        ],
    }


def render_template(text: str, bucket: str, prefix: str, partition: str = "aws") -> str:
    """The shipped template (``/usr/share/dockgate/s3-station-policy.json``)
    with ``${bucket}``, ``${prefix}`` and ``${partition}`` filled in."""
    station_policy(bucket, prefix, partition)  # the same checks
    out = text.replace("${bucket}", bucket).replace("${prefix}", prefix).replace("${partition}", partition)
    if "${" in out:
        raise PolicyError(f"template placeholder left: {out[out.index('${'):][:30]!r}")
    return out


# -- the probe ------------------------------------------------------------------------------------------

@dataclass
class ProbeResult:
    """*broader*: what the key could do beyond a station's policy (empty:
    least privilege as far as the probe can tell); *refused*: the archive
    refused the credentials themselves; *unreachable*: why nothing could be
    asked; *unclear*: answers that tell neither way (a 400: the server may
    have judged the request before the key); *left*: probe objects a broad
    key wrote that could not be removed."""

    broader: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    refused: str | None = None
    unreachable: str | None = None
    left: list[str] = field(default_factory=list)
    asked: int = 0


#: the answer of a server that checked the request's permission and then looked for the object
_ALLOWED_CODES = {"NoSuchKey", "PreconditionFailed", "NoSuchVersion", "404", "412"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                     "AuthorizationHeaderMalformed", "InvalidClientTokenId"}


def _outside(prefix: str) -> str:
    """A key under no station's prefix: beside this station's folder (no
    station id starts with '.')."""
    parent = prefix.rstrip("/").rpartition("/")[0]
    return f"{parent + '/' if parent else ''}{PROBE_NAME}{uuid.uuid4().hex}"


def probe(cfg: S3ArchiveConfig) -> ProbeResult:
    """Ask the archive, with the configured credentials, for things a
    station's key must be refused (module docstring)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from gateway.archive.s3 import S3Archive

    result = ProbeResult()
    own = f"{cfg.prefix}{PROBE_NAME}{uuid.uuid4().hex}"
    other = _outside(cfg.prefix) if cfg.prefix else f"{PROBE_NAME}{uuid.uuid4().hex}"
    fake_etag = '"' + uuid.uuid4().hex + '"'
    with tempfile.TemporaryDirectory(prefix="dockgate-probe-") as tmp:
        try:
            client = S3Archive(cfg, Path(tmp)).client
        except (DockgateError, ArchiveError) as e:
            result.unreachable = str(e)
            return result
        bucket = cfg.bucket
        probes: list[tuple[str, str, Any]] = [
            (f"write outside its prefix ({other})", other, lambda: client.put_object(
                Bucket=bucket, Key=other, Body=b"", IfMatch=fake_etag, ChecksumAlgorithm="SHA256")),
            (f"delete under its own prefix ({own})", own, lambda: client.delete_object(
                Bucket=bucket, Key=own, IfMatch=fake_etag)),
            (f"delete an object version under its own prefix ({own})", "", lambda: client.delete_object(
                Bucket=bucket, Key=own, VersionId=str(uuid.uuid4()))),
            (f"read outside its prefix ({other})", "", lambda: client.head_object(Bucket=bucket, Key=other)),
            ("list the whole bucket (every station's key names)", "", lambda: client.list_objects_v2(
                Bucket=bucket, MaxKeys=1)),
        ]
        if not cfg.prefix:
            result.broader.append("archive.prefix is empty: whatever the key may do, it does to the whole bucket")
        for what, key, ask in probes:
            result.asked += 1
            try:
                resp = ask()
            except ClientError as e:
                code = str(e.response.get("Error", {}).get("Code", ""))
                status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code in _CREDENTIAL_CODES:
                    result.refused = f"{code}: the archive does not accept these credentials"
                    return result
                if code in ("AccessDenied", "Forbidden") or (status == 403 and code == "403"):
                    continue  # refused: as it must be
                if code in _ALLOWED_CODES or status in (404, 412):
                    result.broader.append(f"{what}: allowed ({code or status})")
                elif status == 400:
                    result.unclear.append(f"{what}: {status} {code}")
                else:
                    result.unreachable = f"{what}: the archive answered {status} {code}; nothing could be told"
                    return result
            except BotoCoreError as e:
                result.unreachable = f"{e}"
                return result
            else:
                result.broader.append(f"{what}: allowed")
                if key:  # a server that ignored the condition stored something: take it back
                    _take_back(client, bucket, key, resp, result)
    return result


def _take_back(client: Any, bucket: str, key: str, resp: dict[str, Any], result: ProbeResult) -> None:
    version = resp.get("VersionId")
    if version is None:
        return  # nothing stored (a version delete, a listing)
    try:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    except Exception:  # whatever stops it, the admin must hear which object stayed
        result.left.append(f"s3://{bucket}/{key} (version {version})")


def policy_json(bucket: str, prefix: str, partition: str = "aws") -> str:
    return json.dumps(station_policy(bucket, prefix, partition), indent=2) + "\n"
