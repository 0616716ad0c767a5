"""The S3 archive: any S3-compatible store (MinIO, Ceph RGW, cloud S3),
SigV4, custom endpoint and CA bundle, Object Lock.

Uploads hash what they send: a single PUT for small objects, multipart with a
SHA-256 per part above ``multipart_threshold``. Each part's ETag and hash are
kept in a small state file, so an upload interrupted by a crash or an outage
resumes where it stopped: parts the server already holds are read (the whole
clip's hash needs every byte) but not sent again. A clip whose bytes do not
hash to the catalog's SHA-256 is aborted before any object exists.

Verification: ``readback`` downloads the stored version and hashes it;
``checksum`` trusts the server's own SHA-256 (only for servers that validate
it; the moto server the tests use stores checksums without checking them).
A version that fails verification is removed where Object Lock allows
(governance bypass); under compliance mode it stays, unreported as stored,
and the next attempt writes a new version.

Why ~410 lines in one module: one backend of the archive contract
(``base.py``), with the upload, its resume state and its verification
sharing one client and one failure classification; retries and limits are
wrappers (``wrappers.py``), not here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from gateway.archive.base import (
    Archive,
    ArchiveConflict,
    ArchiveError,
    ArchiveObject,
    ArchiveRefused,
    ArchiveUnavailable,
    BadKey,
    Receipt,
    SourceFault,
    VerifyFailed,
)
from gateway.config import S3ArchiveConfig
from gateway.durable import write_atomic
from gateway.errors import DockgateError
from gateway.secrets import read_secret

log = logging.getLogger(__name__)
#: the server is busy or broken: later may work
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "RequestTimeTooSkewed",
                    "Throttling", "ThrottlingException", "RequestLimitExceeded", "OperationAborted"}
#: the server checked what we sent against our checksum and it differs: bytes changed on the way
_GARBLED_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
#: this object's key cannot be stored; other clips can
_BAD_KEY_CODES = {"KeyTooLongError", "InvalidObjectName"}


def _version(version: str | None) -> dict[str, Any]:
    return {"VersionId": version} if version else {}


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class S3Archive(Archive):
    name = "s3"

    def __init__(self, cfg: S3ArchiveConfig, state_dir: Path) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.cfg = cfg
        self.bucket = cfg.bucket
        self.prefix = cfg.prefix
        self.state_dir = state_dir / "s3-uploads"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._boto3 = boto3
        self._boto_config = BotoConfig(
            signature_version="s3v4", s3={"addressing_style": cfg.addressing_style},
            connect_timeout=cfg.connect_timeout_s, read_timeout=cfg.read_timeout_s,
            retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=8,
            # we send our own SHA-256; no second checksum pass by the SDK
            request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self._cred_stamp: tuple[tuple[int, int], ...] | None = None
        self._connect()

    def _credential_stamp(self) -> tuple[tuple[int, int], ...]:
        out = []
        for f in (self.cfg.access_key_file, self.cfg.secret_key_file):
            try:
                st = os.stat(f) if f else None
            except OSError:
                st = None
            out.append((st.st_mtime_ns, st.st_size) if st else (0, 0))
        return tuple(out)

    def _connect(self) -> None:
        """(Re)build the client from the credential files as they are now: a
        corrected credentials file is picked up without a restart."""
        cfg = self.cfg
        self._cred_stamp = self._credential_stamp()
        access = read_secret(cfg.access_key_file) if cfg.access_key_file else None
        secret = read_secret(cfg.secret_key_file) if cfg.secret_key_file else None
        self.client = self._boto3.client(
            "s3", endpoint_url=cfg.endpoint, region_name=cfg.region, aws_access_key_id=access,
            aws_secret_access_key=secret, verify=str(cfg.ca_bundle) if cfg.ca_bundle else True,
            config=self._boto_config)

    def _fresh_credentials(self) -> None:
        if self._credential_stamp() != self._cred_stamp:
            log.info("archive credential files changed: reconnecting with the new ones")
            try:
                self._connect()
            except DockgateError as e:  # unreadable or too open: the station is refused until fixed
                raise ArchiveRefused(self.describe(), str(e)) from None

    def describe(self) -> str:
        return f"s3 {self.cfg.endpoint or 'aws'}/{self.bucket}"

    # -- plumbing -------------------------------------------------------------
    def _call(self, op: str, missing_ok: bool = False, *, denied_ok: bool = False, **kw: Any) -> Any:
        """One client call, every failure mapped into the archive taxonomy.
        ``missing_ok``: a 404 answers ``None`` instead; ``denied_ok``: so does a 403."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, **kw)
        except ClientError as e:
            err = e.response.get("Error", {})
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = str(err.get("Code", ""))
            what = f"{op}: {status} {code} {err.get('Message', '')}".rstrip()
            if status == 404 and missing_ok and code not in ("NoSuchBucket",):
                return None
            if status == 403 and denied_ok:
                return None
            if status >= 500 or code in _TRANSIENT_CODES:
                raise ArchiveUnavailable(self.describe(), what) from None
            if code in _GARBLED_CODES:
                raise VerifyFailed(str(kw.get("Key", "?")), "the checksum sent", f"server: {what}") from None
            if code in _BAD_KEY_CODES:
                raise BadKey(str(kw.get("Key", "?")), what) from None
            # credentials, permissions, bucket policy, no such bucket, Object Lock
            # not enabled: the server refuses the station, not this clip
            if status in (401, 403):
                what += " (check the access key files and the bucket policy)"
            raise ArchiveRefused(self.describe(), what) from None
        except BotoCoreError as e:  # connection refused, timeouts, DNS, TLS
            raise ArchiveUnavailable(self.describe(), f"{op}: {e}") from None
        except ArchiveError:
            raise
        except Exception as e:  # anything else from the client stack: assume the way there, not the clip
            log.warning("%s: unexpected %s from the S3 client", op, type(e).__name__, exc_info=True)
            raise ArchiveUnavailable(self.describe(), f"{op}: {type(e).__name__}: {e}") from None

    def _head(self, key: str) -> dict[str, Any] | None:
        return self._call("head_object", missing_ok=True, Key=key, ChecksumMode="ENABLED")  # type: ignore[no-any-return]

    def _lock_args(self, until: datetime | None = None) -> dict[str, Any]:
        """*until*: the object's own retain-until (its retention class), else the configured days."""
        if self.cfg.retention_mode == "none":
            return {}
        until = until or datetime.now(UTC) + timedelta(days=self.cfg.retention_days)
        return {"ObjectLockMode": self.cfg.retention_mode, "ObjectLockRetainUntilDate": until}

    def _ensure_lock(self, key: str, version: str | None, until: datetime | None = None) -> None:
        """Some servers drop lock headers on multipart completion: set it after."""
        if self.cfg.retention_mode == "none":
            return
        head = self._head(key)
        if head is not None and not head.get("ObjectLockMode"):
            args = self._lock_args(until)
            self._call("put_object_retention", False, Key=key, **_version(version),
                       Retention={"Mode": args["ObjectLockMode"], "RetainUntilDate": args["ObjectLockRetainUntilDate"]})

    @staticmethod
    def _meta(pairs: tuple[tuple[str, str], ...], sha256: str) -> dict[str, str]:
        meta = {"sha256": sha256}
        for k, v in pairs:
            meta[k] = urllib.parse.quote(v, safe=" /:-_.@+=")  # S3 metadata is ASCII
        return meta

    # -- verification ---------------------------------------------------------
    def _hash_remote(self, key: str, version: str | None = None) -> str:
        resp = self._call("get_object", False, Key=key, **_version(version))
        h = hashlib.sha256()
        body = resp["Body"]
        try:
            while chunk := body.read(4 << 20):
                h.update(chunk)
        except Exception as e:
            raise ArchiveUnavailable(self.describe(), f"read-back of {key}: {e}") from None
        finally:
            body.close()
        return h.hexdigest()

    def _verify(self, key: str, version: str | None, sha256: str, server_checksum: str | None) -> str:
        if self.cfg.verify == "checksum":
            head = self._head(key)
            got = str((head or {}).get("ChecksumSHA256") or "").split("-")[0]
            if not server_checksum or got != server_checksum.split("-")[0]:
                self._discard(key, version)
                raise VerifyFailed(key, server_checksum or "?", got or "no checksum")
            return "checksum"
        back = self._hash_remote(key, version)
        if back != sha256:
            self._discard(key, version)
            raise VerifyFailed(key, sha256, back)
        return "readback"

    def _discard(self, key: str, version: str | None) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_object(Bucket=self.bucket, Key=key, BypassGovernanceRetention=True,
                                      **({"VersionId": version} if version else {}))

    def _existing(self, key: str, sha256: str, size: int) -> bool | None:
        """True: identical object there. None: nothing (or only a failed copy
        of ours). Raises ArchiveConflict for different evidence.

        A 403 counts as nothing there: S3 answers a HEAD of a missing key
        with 403, not 404, unless the key may list the bucket, and a
        station's least-privilege key lists only under its prefix (a
        condition a HEAD does not carry). The PUT that follows, and its
        read-back, tell a key that is refused."""
        head = self._call("head_object", missing_ok=True, denied_ok=True, Key=key, ChecksumMode="ENABLED")
        if head is None:
            return None
        ours = head.get("Metadata", {}).get("sha256")
        if ours != sha256:
            raise ArchiveConflict(key, sha256, ours or "unknown (not written by dockgate)")
        if int(head.get("ContentLength", -1)) == size and self._hash_remote(key) == sha256:
            return True
        return None  # a corrupted copy of ours: write a new version

    # -- the contract -----------------------------------------------------------
    def put(self, obj: ArchiveObject) -> Receipt:
        self._fresh_credentials()
        key = self.prefix + obj.key
        if self._existing(key, obj.sha256, obj.size):
            receipt = Receipt(obj.key, obj.sha256, existed=True, verified_by="readback")
        elif obj.size < self.cfg.multipart_threshold:
            receipt = self._put_single(key, obj)
        else:
            receipt = self._put_multipart(key, obj)
        for suffix, data in obj.extras:
            self._put_bytes(obj.key + suffix, data, obj.retain_until)
        return receipt

    def _put_single(self, key: str, obj: ArchiveObject) -> Receipt:
        try:
            with open(obj.source, "rb") as f:
                data = f.read(obj.size + 1)
        except OSError as e:
            raise SourceFault(str(obj.source), e.strerror or str(e)) from None
        if obj.throttle:
            obj.throttle(len(data))
        if (sent := hashlib.sha256(data).hexdigest()) != obj.sha256:
            raise SourceFault(str(obj.source), f"no longer matches its hash {obj.sha256} (now {sent})")
        checksum = b64sha(data)
        resp = self._call("put_object", Key=key, Body=data, ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=checksum, Metadata=self._meta(obj.metadata, obj.sha256),
                          **self._lock_args(obj.retain_until))
        version = resp.get("VersionId")
        how = self._verify(key, version, obj.sha256, checksum)
        return Receipt(obj.key, obj.sha256, existed=False, verified_by=how)

    def _state_path(self, sha256: str) -> Path:
        return self.state_dir / f"{sha256}.json"

    def _put_multipart(self, key: str, obj: ArchiveObject) -> Receipt:
        part_size = self.cfg.part_size
        state_path = self._state_path(obj.sha256)
        state: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            state = json.loads(state_path.read_text())
        server_parts: dict[int, str] = {}
        upload_id = state.get("upload_id") if state.get("key") == key and state.get("part_size") == part_size else None
        if upload_id:
            try:
                listed = self._call("list_parts", Key=key, UploadId=upload_id)
                server_parts = {int(p["PartNumber"]): p["ETag"] for p in listed.get("Parts", [])}
            except ArchiveError:
                upload_id = None  # expired or aborted on the server: start over
        if not upload_id:
            created = self._call("create_multipart_upload", Key=key, ChecksumAlgorithm="SHA256",
                                 Metadata=self._meta(obj.metadata, obj.sha256), **self._lock_args(obj.retain_until))
            upload_id = created["UploadId"]
            state = {"key": key, "upload_id": upload_id, "part_size": part_size, "parts": {}}
            write_atomic(state_path, json.dumps(state).encode())
        whole = hashlib.sha256()
        digests: list[bytes] = []
        parts = []
        sent = skipped = 0
        try:
            f = open(obj.source, "rb")  # noqa: SIM115 - closed below; open errors are the clip's
        except OSError as e:
            raise SourceFault(str(obj.source), e.strerror or str(e)) from None
        with f:
            n = 0
            while data := self._read_part(f, obj.source, part_size):
                n += 1
                whole.update(data)
                digest = hashlib.sha256(data).digest()
                digests.append(digest)
                checksum = base64.b64encode(digest).decode()
                done = state["parts"].get(str(n))
                if done and done["sha256"] == checksum and server_parts.get(n) == done["etag"]:
                    etag = done["etag"]
                    skipped += 1
                else:
                    if obj.throttle:
                        obj.throttle(len(data))
                    resp = self._call("upload_part", Key=key, UploadId=upload_id, PartNumber=n,
                                      Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
                    etag = resp["ETag"]
                    state["parts"][str(n)] = {"etag": etag, "sha256": checksum}
                    write_atomic(state_path, json.dumps(state).encode())
                    sent += 1
                parts.append({"ETag": etag, "PartNumber": n, "ChecksumSHA256": checksum})
        if whole.hexdigest() != obj.sha256:
            with contextlib.suppress(ArchiveError):
                self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            state_path.unlink(missing_ok=True)
            raise SourceFault(str(obj.source), f"no longer matches its hash {obj.sha256} (now {whole.hexdigest()})")
        resp = self._call("complete_multipart_upload", Key=key, UploadId=upload_id,
                          MultipartUpload={"Parts": parts})
        state_path.unlink(missing_ok=True)
        log.info("%s: %d parts sent, %d already on the server", key, sent, skipped)
        version = resp.get("VersionId")
        self._ensure_lock(key, version, obj.retain_until)
        composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
        how = self._verify(key, version, obj.sha256, f"{composite}-{len(parts)}")
        return Receipt(obj.key, obj.sha256, existed=False, verified_by=how)

    @staticmethod
    def _read_part(f: BinaryIO, source: Path, size: int) -> bytes:
        try:
            return f.read(size)
        except OSError as e:
            raise SourceFault(str(source), f"unreadable: {e.strerror or e}") from None

    def put_bytes(self, key: str, data: bytes) -> Receipt:
        return self._put_bytes(key, data, None)

    def _put_bytes(self, key: str, data: bytes, until: datetime | None) -> Receipt:
        self._fresh_credentials()
        full = self.prefix + key
        sha = hashlib.sha256(data).hexdigest()
        if self._existing(full, sha, len(data)):
            return Receipt(key, sha, existed=True, verified_by="readback")
        checksum = b64sha(data)
        resp = self._call("put_object", Key=full, Body=data, ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=checksum, Metadata={"sha256": sha}, **self._lock_args(until))
        how = self._verify(full, resp.get("VersionId"), sha, checksum)
        return Receipt(key, sha, existed=False, verified_by=how)

    def sha256(self, key: str) -> str | None:
        if self._head(self.prefix + key) is None:
            return None
        return self._hash_remote(self.prefix + key)

    def read(self, key: str) -> BinaryIO:
        found = self._call("get_object", missing_ok=True, Key=self.prefix + key)
        if found is None:
            raise FileNotFoundError(key)
        return found["Body"]  # type: ignore[no-any-return]

    def keys(self, prefix: str = "") -> Iterator[str]:
        token: dict[str, Any] = {}
        while True:
            resp = self._call("list_objects_v2", Prefix=self.prefix + prefix, **token)
            for o in resp.get("Contents", []):
                yield o["Key"][len(self.prefix):]
            if not resp.get("IsTruncated"):
                return
            token = {"ContinuationToken": resp["NextContinuationToken"]}

    def identity(self, key: str) -> str | None:
        """ETag, version id, size and last modified of the current version."""
        head = self._head(self.prefix + key)
        if head is None:
            return None
        return (f"s3:{head.get('ETag')}:{head.get('VersionId')}:{head.get('ContentLength')}:"
                f"{head.get('LastModified')}")

    def object_info(self, key: str) -> dict[str, Any] | None:
        """Head of the current version (tests and `verify` show lock state)."""
        return self._head(self.prefix + key)

    # -- retention by class and legal hold (gateway/evidence/retention.py) ------------
    def retain_until(self, key: str) -> datetime | None:
        """The current version's Object Lock retain-until, None when unlocked or absent."""
        head = self._head(self.prefix + key)
        until = (head or {}).get("ObjectLockRetainUntilDate")
        return until if isinstance(until, datetime) else None

    def extend_retention(self, key: str, until: datetime) -> datetime | None:
        """Lock *key* until *until* if that is later than now set; never
        shortens (COMPLIANCE forbids it, and so do we under GOVERNANCE).
        Returns the date the object is now kept until."""
        current = self.retain_until(key)
        if current is not None and current >= until:
            return current
        if self.cfg.retention_mode == "none":
            return current
        self._call("put_object_retention", Key=self.prefix + key,
                   Retention={"Mode": self.cfg.retention_mode, "RetainUntilDate": until})
        return until

    def set_legal_hold(self, key: str, on: bool) -> None:
        self._call("put_object_legal_hold", Key=self.prefix + key, LegalHold={"Status": "ON" if on else "OFF"})

    def legal_hold(self, key: str) -> bool:
        head = self._head(self.prefix + key)
        return (head or {}).get("ObjectLockLegalHoldStatus") == "ON"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def open_s3(cfg: S3ArchiveConfig, state_dir: Path) -> S3Archive:
    if cfg.ca_bundle is not None and not os.path.exists(cfg.ca_bundle):
        raise ArchiveRefused(cfg.endpoint or "s3", f"archive.ca_bundle {cfg.ca_bundle} not found")
    return S3Archive(cfg, state_dir)
