"""The directory (NAS) archive passes the shared archive suite, alone and
inside the daemon's wrapper stack, and stores evidence read-only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.archive import Archive, ArchiveUnavailable, BadKey, wrap
from gateway.archive.directory import DirectoryArchive
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
