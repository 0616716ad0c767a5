"""The directory (NAS) archive passes the shared archive suite, and stores
evidence read-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.archive import Archive
from gateway.archive.directory import DirectoryArchive
from gateway.errors import ArchiveUnavailable, UnsafePath
from tests.archive_contract import ArchiveContract, make_obj


class FlipOnWrite(DirectoryArchive):
    """Fault injection: one byte flips between our hash and the disk."""

    def _copy(self, source: Path, tmp: Path, key: str = "") -> str:
        digest = super()._copy(source, tmp, key)
        os.chmod(tmp, 0o644)
        with open(tmp, "r+b") as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 1]))
        return digest


class TestDirectoryArchive(ArchiveContract):
    @pytest.fixture
    def archive(self, tmp_path: Path) -> Archive:
        (tmp_path / "archive").mkdir()
        return DirectoryArchive(tmp_path / "archive")

    @pytest.fixture
    def corrupting(self, tmp_path: Path) -> Archive:
        (tmp_path / "archive").mkdir()
        return FlipOnWrite(tmp_path / "archive")


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
    assert not e.value.permanent


def test_hostile_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    arch = DirectoryArchive(tmp_path / "a")
    for key in ("../escape", "/abs", "a//b"):
        obj = make_obj(tmp_path, key=key)
        with pytest.raises(UnsafePath):
            arch.put(obj)
