"""The shared suite every archive backend, and every wrapper stack, passes
(restic-style).

A backend's test module subclasses ``ArchiveContract`` and provides the
fixtures ``archive`` (a fresh, empty archive), ``corrupting`` (the same
archive with bytes flipped on their way to storage) and ``refusing`` (an
archive that refuses the station: wrong credentials, not writable)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from gateway.archive import (
    Archive,
    ArchiveConflict,
    ArchiveObject,
    ArchiveRefused,
    Receipt,
    SourceFault,
    VerifyFailed,
)


def make_obj(tmp_path: Path, key: str = "0001/2024-01-01/S1/a_12345678.MP4", size: int = 3 << 20,
             data: bytes | None = None) -> ArchiveObject:
    data = os.urandom(size) if data is None else data
    src = tmp_path / f"src-{hashlib.sha256(data).hexdigest()[:8]}"
    src.write_bytes(data)
    return ArchiveObject(key=key, source=src, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                         extras=((".manifest.json", b'{"k": 1}'),))


class ArchiveContract:
    @pytest.fixture
    def archive(self, tmp_path: Path) -> Archive:
        pytest.fail("backend test modules provide this fixture")

    @pytest.fixture
    def corrupting(self, tmp_path: Path) -> Archive:
        pytest.fail("backend test modules provide this fixture")

    @pytest.fixture
    def refusing(self, tmp_path: Path) -> Archive:
        pytest.fail("backend test modules provide this fixture")

    def test_put_stores_exact_bytes_and_extras(self, archive: Archive, tmp_path: Path) -> None:
        obj = make_obj(tmp_path)
        r = archive.put(obj)
        assert not r.existed and r.sha256 == obj.sha256
        assert archive.sha256(obj.key) == obj.sha256
        with archive.read(obj.key + ".manifest.json") as f:
            assert f.read() == b'{"k": 1}'
        assert sorted(archive.keys()) == sorted([obj.key, obj.key + ".manifest.json"])

    def test_identity_is_stable_per_object_and_none_for_an_absent_key(self, archive: Archive) -> None:
        """What the verified-hash cache keys on (gateway/evidence/hashcache.py): the same object
        answers the same, another object otherwise, an absent key None; a backend may have none."""
        archive.put_bytes("custody/s1/seg-1.jsonl", b"a\n")
        archive.put_bytes("custody/s1/seg-2.jsonl", b"b\n")
        first = archive.identity("custody/s1/seg-1.jsonl")
        assert archive.identity("custody/s1/absent.jsonl") is None
        if first is not None:
            assert archive.identity("custody/s1/seg-1.jsonl") == first
            assert archive.identity("custody/s1/seg-2.jsonl") not in (None, first)

    def test_small_objects_are_write_once(self, archive: Archive) -> None:
        assert not archive.put_bytes("custody/s1/seg-1.jsonl", b"a\n").existed
        assert archive.put_bytes("custody/s1/seg-1.jsonl", b"a\n").existed
        with pytest.raises(ArchiveConflict):
            archive.put_bytes("custody/s1/seg-1.jsonl", b"b\n")
        with archive.read("custody/s1/seg-1.jsonl") as f:
            assert f.read() == b"a\n"

    def test_identical_object_is_not_stored_twice(self, archive: Archive, tmp_path: Path) -> None:
        obj = make_obj(tmp_path)
        archive.put(obj)
        again = archive.put(obj)
        assert again.existed
        assert sorted(archive.keys()) == sorted([obj.key, obj.key + ".manifest.json"])

    def test_different_bytes_under_our_key_are_never_overwritten(self, archive: Archive,
                                                                 tmp_path: Path) -> None:
        first = make_obj(tmp_path)
        archive.put(first)
        other = make_obj(tmp_path, key=first.key)
        with pytest.raises(ArchiveConflict):
            archive.put(other)
        assert archive.sha256(first.key) == first.sha256

    def test_wrong_hash_fails_and_leaves_no_object(self, archive: Archive, tmp_path: Path) -> None:
        obj = make_obj(tmp_path)
        lie = ArchiveObject(obj.key, obj.source, "0" * 64, obj.size, obj.extras)
        with pytest.raises(SourceFault) as e:
            archive.put(lie)
        assert e.value.scope == "clip" and e.value.permanent
        assert archive.sha256(obj.key) is None
        assert list(archive.keys()) == []

    def test_a_missing_staged_copy_is_the_clips_own_fault(self, archive: Archive, tmp_path: Path) -> None:
        obj = make_obj(tmp_path)
        obj.source.unlink()
        with pytest.raises(SourceFault) as e:
            archive.put(obj)
        assert e.value.scope == "clip" and e.value.permanent
        assert list(archive.keys()) == []

    def test_bytes_corrupted_on_the_way_are_detected(self, corrupting: Archive, tmp_path: Path) -> None:
        obj = make_obj(tmp_path)
        with pytest.raises(VerifyFailed) as e:
            corrupting.put(obj)
        assert e.value.scope == "clip" and not e.value.permanent
        assert corrupting.sha256(obj.key) is None

    def test_an_archive_refusing_the_station_is_never_the_clips_fault(self, refusing: Archive,
                                                                       tmp_path: Path) -> None:
        for put in (lambda: refusing.put(make_obj(tmp_path, size=1000)),
                    lambda: refusing.put_bytes("custody/s1/seg-1.jsonl", b"a\n")):
            with pytest.raises(ArchiveRefused) as e:
                put()
            assert e.value.scope == "station" and e.value.permanent

    def test_empty_object(self, archive: Archive, tmp_path: Path) -> None:
        obj = make_obj(tmp_path, data=b"")
        archive.put(obj)
        assert archive.sha256(obj.key) == hashlib.sha256(b"").hexdigest()

    def test_put_many_stores_each_object_as_put_would(self, archive: Archive, tmp_path: Path) -> None:
        objs = [make_obj(tmp_path, key=f"0001/2024-01-0{d}/S1/c{i}_12345678.MP4", size=1000 + i)
                for i, d in enumerate((1, 1, 2))]
        before = archive.put(objs[0])
        out = archive.put_many(objs)
        assert [type(r) for r in out] == [Receipt] * 3
        assert [(r.key, r.sha256, r.existed) for r in out if isinstance(r, Receipt)] == \
            [(o.key, o.sha256, o is objs[0]) for o in objs]
        assert not before.existed
        for o in objs:
            assert archive.sha256(o.key) == o.sha256
            with archive.read(o.key + ".manifest.json") as f:
                assert f.read() == b'{"k": 1}'

    def test_put_many_keeps_each_objects_fault_its_own(self, archive: Archive, tmp_path: Path) -> None:
        taken = make_obj(tmp_path, key="0001/2024-01-01/S1/taken_12345678.MP4", size=500)
        archive.put(taken)
        good = make_obj(tmp_path, key="0001/2024-01-01/S1/good_12345678.MP4", size=700)
        lie = make_obj(tmp_path, key="0001/2024-01-01/S1/lie_12345678.MP4", size=600)
        lie = ArchiveObject(lie.key, lie.source, "0" * 64, lie.size, lie.extras)
        other = make_obj(tmp_path, key=taken.key, size=800)
        also = make_obj(tmp_path, key="0001/2024-01-02/S1/also_12345678.MP4", size=900)
        out = archive.put_many([good, lie, other, also])
        assert [type(r) for r in out] == [Receipt, SourceFault, ArchiveConflict, Receipt]
        assert archive.sha256(good.key) == good.sha256 and archive.sha256(also.key) == also.sha256
        assert archive.sha256(taken.key) == taken.sha256
        assert archive.sha256(lie.key) is None and archive.sha256(lie.key + ".manifest.json") is None

    def test_put_many_on_a_refusing_archive_is_the_stations_fault_for_each(self, refusing: Archive,
                                                                          tmp_path: Path) -> None:
        out = refusing.put_many([make_obj(tmp_path, key=f"0001/2024-01-01/S1/r{i}_12345678.MP4", size=100 + i)
                                 for i in range(3)])
        assert len(out) == 3
        assert all(isinstance(r, ArchiveRefused) and r.scope == "station" for r in out)

    def test_put_many_detects_each_corrupted_object(self, corrupting: Archive, tmp_path: Path) -> None:
        objs = [make_obj(tmp_path, key=f"0001/2024-01-01/S1/v{i}_12345678.MP4", size=2000 + i) for i in range(2)]
        out = corrupting.put_many(objs)
        assert all(isinstance(r, VerifyFailed) for r in out)
        assert all(corrupting.sha256(o.key) is None for o in objs)
