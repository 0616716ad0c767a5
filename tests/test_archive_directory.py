"""The directory (NAS) archive passes the shared archive suite, alone and
inside the daemon's wrapper stack, and stores evidence read-only."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.archive import Archive, ArchiveUnavailable, BadKey, SourceFault, VerifyFailed, wrap
from gateway.archive.directio import CHUNK, read_back
from gateway.archive.directory import TMP_DIR, DirectoryArchive
from gateway.config import Config
from tests.archive_contract import ArchiveContract, make_obj
from tests.helpers import read_only


class FlipOnWrite(DirectoryArchive):
    """Fault injection (test code only): one bit flips between our hash and the disk."""

    def _write_chunk(self, fd: int, chunk: memoryview, key: str) -> None:
        super()._write_chunk(fd, memoryview(bytes([chunk[0] ^ 1]) + bytes(chunk[1:])) if len(chunk) else chunk, key)


@pytest.fixture
def refusing_dir(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "read-only-archive"
    root.mkdir()
    with read_only(root):
        yield root


class TestDirectoryArchive(ArchiveContract):
    @pytest.fixture
    def archive(self, tmp_path: Path) -> Archive:
        (tmp_path / "archive").mkdir()
        return DirectoryArchive(tmp_path / "archive")

    @pytest.fixture
    def corrupting(self, tmp_path: Path) -> Archive:
        (tmp_path / "archive").mkdir()
        return FlipOnWrite(tmp_path / "archive")

    @pytest.fixture
    def refusing(self, refusing_dir: Path) -> Archive:
        return DirectoryArchive(refusing_dir)


class TestWrappedDirectoryArchive(ArchiveContract):
    """The stack the daemon runs: retries and limits around the backend."""

    @pytest.fixture
    def archive(self, tmp_path: Path, cfg: Config) -> Archive:
        (tmp_path / "archive").mkdir()
        limited = cfg.model_copy(update={"forward": cfg.forward.model_copy(update={"bandwidth_bytes_per_s": 1 << 30})})
        return wrap(DirectoryArchive(tmp_path / "archive"), limited)

    @pytest.fixture
    def corrupting(self, tmp_path: Path, cfg: Config) -> Archive:
        (tmp_path / "archive").mkdir()
        return wrap(FlipOnWrite(tmp_path / "archive"), cfg)

    @pytest.fixture
    def refusing(self, refusing_dir: Path, cfg: Config) -> Archive:
        return wrap(DirectoryArchive(refusing_dir), cfg)


def test_wrappers_never_change_the_backend_they_wrap(tmp_path: Path, cfg: Config) -> None:
    (tmp_path / "a").mkdir()
    backend = DirectoryArchive(tmp_path / "a")
    before = dict(vars(backend))
    limited = cfg.model_copy(update={"forward": cfg.forward.model_copy(update={"bandwidth_bytes_per_s": 1 << 20})})
    wrap(backend, limited).put(make_obj(tmp_path, size=1000))
    assert vars(backend) == before


def test_objects_are_read_only(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    arch = DirectoryArchive(tmp_path / "a")
    obj = make_obj(tmp_path)
    arch.put(obj)
    mode = stat.S_IMODE((tmp_path / "a" / obj.key).stat().st_mode)
    assert mode & 0o222 == 0


def test_missing_mount_is_transient(tmp_path: Path) -> None:
    arch = DirectoryArchive(tmp_path / "not-mounted")
    with pytest.raises(ArchiveUnavailable) as e:
        arch.put(make_obj(tmp_path))
    assert not e.value.permanent and e.value.scope == "station"


def test_hostile_keys_are_refused_as_the_clips_fault(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    arch = DirectoryArchive(tmp_path / "a")
    for key in ("../escape", "/abs", "a//b"):
        with pytest.raises(BadKey) as e:
            arch.put(make_obj(tmp_path, key=key))
        assert e.value.scope == "clip"
    assert os.listdir(tmp_path / "a") == []


def test_a_copy_that_fails_its_read_back_never_gets_its_key(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-back happens before the link: no reader of the archive, and
    no crash at the wrong moment, ever sees other bytes under an evidence key."""
    (tmp_path / "a").mkdir()
    arch = FlipOnWrite(tmp_path / "a")
    obj = make_obj(tmp_path)
    linked: list[str] = []
    real_link = os.link
    monkeypatch.setattr(os, "link", lambda src, dst, **kw: (linked.append(str(dst)), real_link(src, dst, **kw)))
    with pytest.raises(VerifyFailed):
        arch.put(obj)
    assert linked == []
    assert list(arch.keys()) == [] and os.listdir(tmp_path / "a" / TMP_DIR) == []


def test_a_staged_copy_changed_after_its_pull_is_the_clips_fault_not_a_bad_write(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    arch = DirectoryArchive(tmp_path / "a")
    obj = make_obj(tmp_path)
    data = bytearray(obj.source.read_bytes())
    data[len(data) // 2] ^= 1  # same size, one bit off: only a hash tells
    obj.source.write_bytes(bytes(data))
    with pytest.raises(SourceFault) as e:
        arch.put(obj)
    assert "no longer matches its hash" in str(e.value)
    assert list(arch.keys()) == []


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_read_back_hashes_every_byte_of_any_size(tmp_path: Path, size: int) -> None:
    path = tmp_path / "f"
    data = os.urandom(size)
    path.write_bytes(data)
    assert read_back(path) == hashlib.sha256(data).hexdigest()


def test_read_back_works_where_the_filesystem_refuses_direct_io(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    data = os.urandom(CHUNK + 5)
    path.write_bytes(data)
    real_open = os.open

    def no_direct(p: str, flags: int, *a: int, **kw: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(p, flags, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    assert read_back(path) == hashlib.sha256(data).hexdigest()
