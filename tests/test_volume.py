"""Walking a recorder volume never leaves it and never opens what is not a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drivers.base import DriverError, Skipped, UnsafeEntry, VolumeError
from drivers.volume import Volume
from gateway.errors import UnsafePath


def test_walk_skips_symlinks_fifos_and_keeps_odd_names(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "DCIM" / "day").mkdir(parents=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("not evidence")
    (vol / "DCIM" / "day" / "a.MP4").write_bytes(b"a" * 10)
    (vol / "DCIM" / "empty.wav").write_bytes(b"")
    gbk = "执法_现场.mp4".encode("gbk")
    with open(os.path.join(os.fsencode(vol), gbk), "wb") as f:
        f.write(b"gbk")
    (vol / "link.mp4").symlink_to(outside)
    (vol / "dirlink").symlink_to(tmp_path)
    os.mkfifo(vol / "pipe.mp4")
    skipped: list[Skipped] = []
    refs = list(Volume(vol).walk(skipped.append))
    names = sorted(r.relpath for r in refs)
    assert names == sorted([b"DCIM/day/a.MP4", b"DCIM/empty.wav", gbk])
    why = {s.relpath: s.why for s in skipped}
    assert "symlink" in why[b"link.mp4"]
    assert "symlink" in why[b"dirlink"]
    assert "fifo" in why[b"pipe.mp4"]
    ref = next(r for r in refs if r.relpath == gbk)
    with Volume(vol).open(ref.relpath) as f:
        assert f.read() == b"gbk"


def test_open_refuses_symlinks_anywhere_on_the_path(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.mp4").write_bytes(b"x")
    (vol / "d").symlink_to(tmp_path / "out")
    (vol / "f.mp4").symlink_to(tmp_path / "out" / "x.mp4")
    os.mkfifo(vol / "p.mp4")
    v = Volume(vol)
    for bad in (b"d/x.mp4", b"f.mp4", b"../out/x.mp4", b"/etc/passwd", b"p.mp4"):
        with pytest.raises(UnsafePath):
            v.open(bad)


def test_include_and_exclude_are_case_insensitive(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "System Volume Information").mkdir(parents=True)
    (vol / "System Volume Information" / "IndexerVolumeGuid").write_bytes(b"x")
    (vol / "A.MP4").write_bytes(b"x")
    (vol / "b.txt").write_bytes(b"x")
    v = Volume(vol, include=["*.mp4"], exclude=["system volume information/*"])
    assert [r.relpath for r in v.walk(lambda s: None)] == [b"A.MP4"]


def test_an_unsafe_entry_is_a_permanent_driver_error_and_an_unsafe_path(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    with pytest.raises(UnsafeEntry) as e:
        Volume(vol).open(b"../escape.mp4")
    assert isinstance(e.value, DriverError) and isinstance(e.value, UnsafePath) and e.value.permanent


def test_a_missing_volume_is_a_typed_error_not_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(VolumeError) as e:
        list(Volume(tmp_path / "gone").walk(lambda s: None))
    assert e.value.permanent  # ENOENT: the same dock cannot bring it back


def test_a_vanished_clip_is_a_typed_error_not_an_oserror(tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    with pytest.raises(VolumeError):
        Volume(tmp_path / "vol").open(b"never.mp4")


def test_a_volume_that_went_away_is_transient() -> None:
    import errno

    assert not VolumeError("x", OSError(errno.EIO, "Input/output error")).permanent
    assert not VolumeError("x", OSError(errno.ENODEV, "No such device")).permanent


def test_delete_on_a_read_only_volume_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "a.mp4").write_bytes(b"a")
    ref = next(Volume(vol).walk(lambda s: None))

    def read_only(*args: object, **kw: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "unlink", read_only)
    with pytest.raises(VolumeError) as e:
        Volume(vol).delete(ref.relpath)
    assert e.value.permanent and (vol / "a.mp4").exists()


def deep(root: Path, levels: int) -> Path:
    d = root
    for i in range(levels):
        d = d / f"d{i % 10}"
    d.mkdir(parents=True)
    return d


def test_a_clip_200_directories_deep_is_listed(tmp_path: Path) -> None:
    leaf = deep(tmp_path / "vol", 200)
    (leaf / "clip.MP4").write_bytes(b"deep evidence")
    skipped: list[Skipped] = []
    (ref,) = Volume(tmp_path / "vol").walk(skipped.append)
    assert ref.relpath.count(b"/") == 200 and skipped == []


def test_a_directory_beyond_the_depth_limit_is_reported_not_silently_dropped(tmp_path: Path) -> None:
    from drivers.volume import MAX_DEPTH

    leaf = deep(tmp_path / "vol", MAX_DEPTH + 2)
    (leaf / "clip.MP4").write_bytes(b"too deep")
    skipped: list[Skipped] = []
    assert list(Volume(tmp_path / "vol").walk(skipped.append)) == []
    (s,) = skipped
    assert f"deeper than {MAX_DEPTH}" in s.why and "not pulled" in s.why


def test_a_hard_linked_clip_is_listed_with_its_link_count(tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    outside = tmp_path / "outside.MP4"
    outside.write_bytes(b"also elsewhere")
    os.link(outside, tmp_path / "vol" / "clip.MP4")
    (ref,) = Volume(tmp_path / "vol").walk(lambda s: None)
    assert ref.links == 2
