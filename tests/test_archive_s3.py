"""The S3 backend passes the shared archive suite against a real S3 API
server (moto), plus what only S3 has: Object Lock, object metadata, and
multipart uploads that resume without sending finished parts again."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.archive import Archive, ArchiveObject, ArchiveRefused, ArchiveUnavailable, SourceFault, wrap
from gateway.archive.s3 import S3Archive
from gateway.config import Config, S3ArchiveConfig
from tests.archive_contract import ArchiveContract, make_obj
from tests.servers import MotoServer

MiB = 1024 * 1024


def write_keys(tmp_path: Path, access: str, secret: str) -> None:
    for name, value in (("ak", access), ("sk", secret)):
        (tmp_path / name).write_text(value)
        os.chmod(tmp_path / name, 0o600)


def s3_archive(server: MotoServer, tmp_path: Path, endpoint: str | None = None, keys: tuple[str, str] | None = None,
               **kw: object) -> S3Archive:
    write_keys(tmp_path, *(keys or (server.access_key, server.secret_key)))
    cfg = S3ArchiveConfig.model_validate({
        "backend": "s3", "endpoint": endpoint or server.endpoint, "bucket": server.make_bucket(),
        "access_key_file": tmp_path / "ak", "secret_key_file": tmp_path / "sk", "retention_mode": "GOVERNANCE",
        "retention_days": 1, "multipart_threshold": 5 * MiB, "part_size": 5 * MiB, "read_timeout_s": 5,
        "connect_timeout_s": 2, **kw})
    return S3Archive(cfg, tmp_path / "state")


def on_upload(a: S3Archive, change: Callable[[bytes], bytes]) -> None:
    """Fault injection (test code only): *change* the body of every PUT and
    part on its way out, after dockgate hashed it."""

    def hook(request: Any, **_: Any) -> None:
        body = request.body
        data = body.getvalue() if isinstance(body, io.BytesIO) else bytes(body or b"")
        if data:
            request.body = change(data)
            request.headers["Content-Length"] = str(len(request.body))

    for op in ("PutObject", "UploadPart"):
        a.client.meta.events.register(f"before-send.s3.{op}", hook)


def flip_first_bit(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def corrupting_archive(server: MotoServer, tmp_path: Path) -> S3Archive:
    a = s3_archive(server, tmp_path)
    on_upload(a, flip_first_bit)
    return a


class TestS3Archive(ArchiveContract):
    @pytest.fixture
    def archive(self, tmp_path: Path, s3server: MotoServer) -> Archive:
        return s3_archive(s3server, tmp_path)

    @pytest.fixture
    def corrupting(self, tmp_path: Path, s3server: MotoServer) -> Archive:
        return corrupting_archive(s3server, tmp_path)

    @pytest.fixture
    def refusing(self, tmp_path: Path, s3auth: MotoServer) -> Archive:
        return s3_archive(s3auth, tmp_path, keys=("AKIAWRONGWRONGWRONG0", "not-the-secret"))


class TestWrappedS3Archive(ArchiveContract):
    """The stack the daemon runs: retries and limits around the backend."""

    @pytest.fixture
    def archive(self, tmp_path: Path, s3server: MotoServer, cfg: Config) -> Archive:
        return wrap(s3_archive(s3server, tmp_path), cfg)

    @pytest.fixture
    def corrupting(self, tmp_path: Path, s3server: MotoServer, cfg: Config) -> Archive:
        return wrap(corrupting_archive(s3server, tmp_path), cfg)

    @pytest.fixture
    def refusing(self, tmp_path: Path, s3auth: MotoServer, cfg: Config) -> Archive:
        return wrap(s3_archive(s3auth, tmp_path, keys=("AKIAWRONGWRONGWRONG0", "not-the-secret")), cfg)


def test_corrected_credentials_are_picked_up_without_a_restart(tmp_path: Path, s3auth: MotoServer) -> None:
    a = s3_archive(s3auth, tmp_path, keys=("AKIAWRONGWRONGWRONG0", "not-the-secret"))
    obj = make_obj(tmp_path, size=1000)
    with pytest.raises(ArchiveRefused):
        a.put(obj)
    write_keys(tmp_path, s3auth.access_key, s3auth.secret_key)
    assert not a.put(obj).existed
    assert a.sha256(obj.key) == obj.sha256


def test_object_lock_metadata_and_checksum(tmp_path: Path, s3server: MotoServer) -> None:
    a = s3_archive(s3server, tmp_path)
    obj = make_obj(tmp_path, size=100_000)
    obj = ArchiveObject(obj.key, obj.source, obj.sha256, obj.size, obj.extras,
                        metadata=(("officer", "0123456"), ("original-path", "DCIM/现场.MP4")))
    a.put(obj)
    head = a.object_info(obj.key)
    assert head is not None
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"]
    assert head["Metadata"]["sha256"] == obj.sha256 and head["Metadata"]["officer"] == "0123456"
    assert "%E7%8E%B0" in head["Metadata"]["original-path"]  # non-ASCII, percent-encoded
    with pytest.raises(Exception, match=r"AccessDenied|Access Denied"):  # locked: no plain delete
        a.client.delete_object(Bucket=a.bucket, Key=obj.key, VersionId=head["VersionId"])


def test_large_clip_multipart_locked_and_verified(tmp_path: Path, s3server: MotoServer) -> None:
    a = s3_archive(s3server, tmp_path)
    obj = make_obj(tmp_path, size=12 * MiB + 123)
    r = a.put(obj)
    assert r.verified_by == "readback" and a.sha256(obj.key) == obj.sha256
    head = a.object_info(obj.key)
    assert head is not None and head["ObjectLockMode"] == "GOVERNANCE"


def test_interrupted_multipart_resumes_without_resending_parts(tmp_path: Path, s3server: MotoServer) -> None:
    a = s3_archive(s3server, tmp_path)
    obj = make_obj(tmp_path, size=4 * 5 * MiB + 77)  # 5 parts
    sent: list[int] = []
    a.client.meta.events.register("after-call.s3.UploadPart", lambda **kw: sent.append(1))

    transmitted: list[int] = []

    def crash_after_two(data: bytes) -> bytes:
        transmitted.append(1)
        if len(transmitted) > 2:
            raise ConnectionResetError("link lost")
        return data

    on_upload(a, crash_after_two)
    with pytest.raises(ArchiveUnavailable):
        a.put(obj)
    assert len(sent) == 2
    # a new process (new client), same state directory: parts 1-2 are not sent again
    b = s3_archive(s3server, tmp_path, bucket=a.bucket)
    resent: list[int] = []
    b.client.meta.events.register("before-parameter-build.s3.UploadPart", lambda params, **kw: resent.append(params["PartNumber"]))
    b.put(obj)
    assert sorted(resent) == [3, 4, 5]
    assert b.sha256(obj.key) == obj.sha256


def test_wrong_hash_in_multipart_leaves_nothing(tmp_path: Path, s3server: MotoServer) -> None:
    a = s3_archive(s3server, tmp_path)
    obj = make_obj(tmp_path, size=11 * MiB)
    lie = ArchiveObject(obj.key, obj.source, "0" * 64, obj.size)
    with pytest.raises(SourceFault):
        a.put(lie)
    assert list(a.keys()) == []
    assert not a.client.list_multipart_uploads(Bucket=a.bucket).get("Uploads")


def test_unreachable_archive_is_transient(tmp_path: Path, s3server: MotoServer) -> None:
    from tests.servers import free_port

    a = s3_archive(s3server, tmp_path, endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ArchiveUnavailable) as e:
        a.put(make_obj(tmp_path, size=1000))
    assert not e.value.permanent


def test_hash_is_of_what_is_read(tmp_path: Path, s3server: MotoServer) -> None:
    a = s3_archive(s3server, tmp_path)
    obj = make_obj(tmp_path, size=2000)
    obj.source.write_bytes(b"x" + obj.source.read_bytes()[1:])  # staged copy altered after the pull
    with pytest.raises(SourceFault) as e:
        a.put(obj)
    assert e.value.path == str(obj.source)
    assert hashlib.sha256(obj.source.read_bytes()).hexdigest() in e.value.why
