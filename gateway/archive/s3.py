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
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from gateway.archive.base import Archive, ArchiveObject, Receipt
from gateway.config import S3ArchiveConfig
from gateway.durable import write_atomic
from gateway.errors import ArchiveConflict, ArchiveError, ArchiveUnavailable, ChecksumMismatch
from gateway.secrets import read_secret

log = logging.getLogger(__name__)
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "RequestTimeTooSkewed",
                    "Throttling", "ThrottlingException", "RequestLimitExceeded", "OperationAborted"}


class S3Refused(ArchiveError):
    """The server answered and said no (permanent: retrying will not help)."""

    reason = "archive_refused"

    def __init__(self, target: str, op: str, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"{target}: {op} refused: {status} {code} {message}".rstrip())


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
        access = read_secret(cfg.access_key_file) if cfg.access_key_file else None
        secret = read_secret(cfg.secret_key_file) if cfg.secret_key_file else None
        self.client = boto3.client(
            "s3", endpoint_url=cfg.endpoint, region_name=cfg.region, aws_access_key_id=access,
            aws_secret_access_key=secret, verify=str(cfg.ca_bundle) if cfg.ca_bundle else True,
            config=BotoConfig(
                signature_version="s3v4", s3={"addressing_style": cfg.addressing_style},
                connect_timeout=cfg.connect_timeout_s, read_timeout=cfg.read_timeout_s,
                retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=8,
                # we send our own SHA-256; no second checksum pass by the SDK
                request_checksum_calculation="when_required", response_checksum_validation="when_required"))
        self.transmit_filter: Callable[[str, bytes], bytes] | None = None

    def describe(self) -> str:
        return f"s3 {self.cfg.endpoint or 'aws'}/{self.bucket}"

    # -- plumbing -------------------------------------------------------------
    def _call(self, op: str, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, **kw)
        except ClientError as e:
            err = e.response.get("Error", {})
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = str(err.get("Code", ""))
            if status >= 500 or code in _TRANSIENT_CODES:
                raise ArchiveUnavailable(self.describe(), f"{op}: {code} {err.get('Message', '')}") from None
            raise S3Refused(self.describe(), op, status, code, str(err.get("Message", ""))) from None
        except BotoCoreError as e:  # connection refused, timeouts, DNS
            raise ArchiveUnavailable(self.describe(), f"{op}: {e}") from None

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self._call("head_object", Key=key, ChecksumMode="ENABLED")  # type: ignore[no-any-return]
        except S3Refused as e:
            if e.status == 404:
                return None
            raise

    def _lock_args(self) -> dict[str, Any]:
        if self.cfg.retention_mode == "none":
            return {}
        until = datetime.now(UTC) + timedelta(days=self.cfg.retention_days)
        return {"ObjectLockMode": self.cfg.retention_mode, "ObjectLockRetainUntilDate": until}

    def _ensure_lock(self, key: str, version: str | None) -> None:
        """Some servers drop lock headers on multipart completion: set it after."""
        if self.cfg.retention_mode == "none":
            return
        head = self._head(key)
        if head is not None and not head.get("ObjectLockMode"):
            args = self._lock_args()
            self._call("put_object_retention", Key=key, **({"VersionId": version} if version else {}),
                       Retention={"Mode": args["ObjectLockMode"], "RetainUntilDate": args["ObjectLockRetainUntilDate"]})

    def _send(self, key: str, data: bytes) -> bytes:
        return self.transmit_filter(key, data) if self.transmit_filter else data

    @staticmethod
    def _meta(pairs: tuple[tuple[str, str], ...], sha256: str) -> dict[str, str]:
        meta = {"sha256": sha256}
        for k, v in pairs:
            meta[k] = urllib.parse.quote(v, safe=" /:-_.@+=")  # S3 metadata is ASCII
        return meta

    # -- verification ---------------------------------------------------------
    def _hash_remote(self, key: str, version: str | None = None) -> str:
        resp = self._call("get_object", Key=key, **({"VersionId": version} if version else {}))
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
                raise ChecksumMismatch(key, server_checksum or "?", got or "no checksum")
            return "checksum"
        back = self._hash_remote(key, version)
        if back != sha256:
            self._discard(key, version)
            raise ChecksumMismatch(key, sha256, back)
        return "readback"

    def _discard(self, key: str, version: str | None) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_object(Bucket=self.bucket, Key=key, BypassGovernanceRetention=True,
                                      **({"VersionId": version} if version else {}))

    def _existing(self, key: str, sha256: str, size: int) -> bool | None:
        """True: identical object there. None: nothing (or only a failed copy
        of ours). Raises ArchiveConflict for different evidence."""
        head = self._head(key)
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
        key = self.prefix + obj.key
        if self._existing(key, obj.sha256, obj.size):
            receipt = Receipt(obj.key, obj.sha256, existed=True, verified_by="readback")
        elif obj.size < self.cfg.multipart_threshold:
            receipt = self._put_single(key, obj)
        else:
            receipt = self._put_multipart(key, obj)
        for suffix, data in obj.extras:
            self.put_bytes(obj.key + suffix, data)
        return receipt

    def _put_single(self, key: str, obj: ArchiveObject) -> Receipt:
        with open(obj.source, "rb") as f:
            data = f.read(obj.size + 1)
        if self.throttle:
            self.throttle(len(data))
        if hashlib.sha256(data).hexdigest() != obj.sha256:
            raise ChecksumMismatch(str(obj.source), obj.sha256, hashlib.sha256(data).hexdigest())
        checksum = b64sha(data)
        resp = self._call("put_object", Key=key, Body=self._send(key, data), ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=checksum, Metadata=self._meta(obj.metadata, obj.sha256),
                          **self._lock_args())
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
                                 Metadata=self._meta(obj.metadata, obj.sha256), **self._lock_args())
            upload_id = created["UploadId"]
            state = {"key": key, "upload_id": upload_id, "part_size": part_size, "parts": {}}
            write_atomic(state_path, json.dumps(state).encode())
        whole = hashlib.sha256()
        digests: list[bytes] = []
        parts = []
        sent = skipped = 0
        with open(obj.source, "rb") as f:
            n = 0
            while data := f.read(part_size):
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
                    if self.throttle:
                        self.throttle(len(data))
                    resp = self._call("upload_part", Key=key, UploadId=upload_id, PartNumber=n,
                                      Body=self._send(key, data), ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
                    etag = resp["ETag"]
                    state["parts"][str(n)] = {"etag": etag, "sha256": checksum}
                    write_atomic(state_path, json.dumps(state).encode())
                    sent += 1
                parts.append({"ETag": etag, "PartNumber": n, "ChecksumSHA256": checksum})
        if whole.hexdigest() != obj.sha256:
            with contextlib.suppress(ArchiveError):
                self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            state_path.unlink(missing_ok=True)
            raise ChecksumMismatch(str(obj.source), obj.sha256, whole.hexdigest())
        resp = self._call("complete_multipart_upload", Key=key, UploadId=upload_id,
                          MultipartUpload={"Parts": parts})
        state_path.unlink(missing_ok=True)
        log.info("%s: %d parts sent, %d already on the server", key, sent, skipped)
        version = resp.get("VersionId")
        self._ensure_lock(key, version)
        composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
        how = self._verify(key, version, obj.sha256, f"{composite}-{len(parts)}")
        return Receipt(obj.key, obj.sha256, existed=False, verified_by=how)

    def put_bytes(self, key: str, data: bytes) -> Receipt:
        full = self.prefix + key
        sha = hashlib.sha256(data).hexdigest()
        if self._existing(full, sha, len(data)):
            return Receipt(key, sha, existed=True, verified_by="readback")
        checksum = b64sha(data)
        resp = self._call("put_object", Key=full, Body=self._send(full, data), ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=checksum, Metadata={"sha256": sha}, **self._lock_args())
        how = self._verify(full, resp.get("VersionId"), sha, checksum)
        return Receipt(key, sha, existed=False, verified_by=how)

    def sha256(self, key: str) -> str | None:
        if self._head(self.prefix + key) is None:
            return None
        return self._hash_remote(self.prefix + key)

    def read(self, key: str) -> BinaryIO:
        return self._call("get_object", Key=self.prefix + key)["Body"]  # type: ignore[no-any-return]

    def keys(self, prefix: str = "") -> Iterator[str]:
        token: dict[str, str] = {}
        while True:
            resp = self._call("list_objects_v2", Prefix=self.prefix + prefix, **token)
            for o in resp.get("Contents", []):
                yield o["Key"][len(self.prefix):]
            if not resp.get("IsTruncated"):
                return
            token = {"ContinuationToken": resp["NextContinuationToken"]}

    def object_info(self, key: str) -> dict[str, Any] | None:
        """Head of the current version (tests and `verify` show lock state)."""
        return self._head(self.prefix + key)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def open_s3(cfg: S3ArchiveConfig, state_dir: Path) -> S3Archive:
    if cfg.ca_bundle is not None and not os.path.exists(cfg.ca_bundle):
        raise ArchiveError(f"archive.ca_bundle {cfg.ca_bundle} not found")
    return S3Archive(cfg, state_dir)
