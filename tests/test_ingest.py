"""Pulling a clip: hash in the copy pass, durable, and never half-staged."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from drivers.base import ClipRef
from drivers.volume import Volume
from gateway import copyhash
from gateway.copyhash import make_buffers
from gateway.errors import ClipInterrupted, StagingFull
from gateway.pipeline.ingest import pull
from gateway.pipeline.staging import Staging


def ref_for(vol: Path, name: str) -> ClipRef:
    st = (vol / name).stat()
    return ClipRef(name.encode(), st.st_size, st.st_mtime_ns)


def opener(vol: Path) -> Callable[[ClipRef], BinaryIO]:
    return lambda ref: Volume(vol).open(ref.relpath)


@pytest.fixture
def vol(tmp_path: Path) -> Path:
    v = tmp_path / "vol"
    v.mkdir()
    (v / "clip.mp4").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return v


def test_pull_hashes_in_the_copy_pass_and_stages_by_content(tmp_path: Path, vol: Path) -> None:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    ref = ref_for(vol, "clip.mp4")
    seen: list[int] = []
    got = pull(opener(vol), ref, staging.temp_path(1), make_buffers(1 << 20), threading.Event(),
               seen.append)
    data = (vol / "clip.mp4").read_bytes()
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.size == len(data) == sum(seen)
    final = staging.commit(got.temp, got.sha256)
    assert final.read_bytes() == data
    assert list(staging.tmp.iterdir()) == []


def test_short_read_is_interrupted_and_leaves_nothing(tmp_path: Path, vol: Path) -> None:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    ref = ref_for(vol, "clip.mp4")
    liar = ClipRef(ref.relpath, ref.size + 100, ref.mtime_ns)  # recorder listed more than it has
    with pytest.raises(ClipInterrupted, match="listed"):
        pull(opener(vol), liar, staging.temp_path(1), make_buffers(1 << 20), threading.Event())
    assert list(staging.tmp.iterdir()) == []


def test_cancel_interrupts_and_leaves_nothing(tmp_path: Path, vol: Path) -> None:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ClipInterrupted, match="undocked"):
        pull(opener(vol), ref_for(vol, "clip.mp4"), staging.temp_path(1), make_buffers(1 << 20),
             cancel)
    assert list(staging.tmp.iterdir()) == []


def test_clip_changed_while_copying_is_interrupted(tmp_path: Path, vol: Path) -> None:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    ref = ref_for(vol, "clip.mp4")

    def grow(_n: int) -> None:
        with open(vol / "clip.mp4", "ab") as f:
            f.write(b"more")

    with pytest.raises(ClipInterrupted):
        pull(opener(vol), ref, staging.temp_path(1), make_buffers(1 << 20), threading.Event(), grow)
    assert list(staging.tmp.iterdir()) == []


def test_vanished_clip_is_interrupted(tmp_path: Path, vol: Path) -> None:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    ref = ref_for(vol, "clip.mp4")
    (vol / "clip.mp4").unlink()
    with pytest.raises(ClipInterrupted, match="vanished"):
        pull(opener(vol), ref, staging.temp_path(1), make_buffers(1 << 20), threading.Event())


def test_staging_reserve(tmp_path: Path) -> None:
    staging = Staging(tmp_path, reserve_bytes=1 << 60)
    with pytest.raises(StagingFull) as e:
        staging.check_space(10)
    assert not e.value.permanent


def test_prepare_drops_partial_files(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "s", 0)
    staging.prepare()
    staging.temp_path(7).write_bytes(b"half a clip")
    assert staging.prepare() == 1
    assert list(staging.tmp.iterdir()) == []


@pytest.mark.parametrize("size", [(1 << 20) + 1, (1 << 20) + (128 << 10), (1 << 20) + (256 << 10) - 1,
                                  5 << 20, (5 << 20) + 3, 9 * (1 << 20) - 1])
@pytest.mark.parametrize("inline", [False, True, None], ids=["hashing-thread", "inline", "rate-unknown"])
@pytest.mark.parametrize("keep", [False, True], ids=["dropped", "kept-cached"])
def test_any_size_is_copied_and_hashed_whole_through_the_chunk_ramp(tmp_path: Path, size: int,
                                                                    inline: bool | None, keep: bool) -> None:
    v = tmp_path / "vol"
    v.mkdir()
    data = os.urandom(size)
    (v / "c.mp4").write_bytes(data)
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    got = pull(opener(v), ref_for(v, "c.mp4"), staging.temp_path(1), make_buffers(1 << 20), threading.Event(),
               keep=keep, inline=inline)
    assert got.sha256 == hashlib.sha256(data).hexdigest() and got.size == size
    assert got.temp.read_bytes() == data


def _another_slot_makes_it_first(monkeypatch: pytest.MonkeyPatch, media: Path) -> None:
    """Every mkdir of a content folder finds it just made by another slot's
    commit, between whatever look came before and the mkdir itself."""
    real_mkdir = Path.mkdir

    def racing_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.parent == media and not self.exists():
            real_mkdir(self)
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)


def test_a_content_folder_another_slot_makes_at_the_same_moment_does_not_fail_the_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    temp = staging.temp_path(1)
    temp.write_bytes(b"clip")
    sha = hashlib.sha256(b"clip").hexdigest()
    _another_slot_makes_it_first(monkeypatch, staging.media)
    final = staging.commit(temp, sha)
    assert final.read_bytes() == b"clip" and final.parent.name == sha[:2]


def test_a_content_folder_made_by_another_slot_is_made_durable_before_the_clip_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    synced: list[Path] = []
    monkeypatch.setattr("gateway.pipeline.staging.fsync_dir", synced.append)
    sha = hashlib.sha256(b"clip").hexdigest()
    staging.path_for(sha).parent.mkdir()  # another slot's, its media/ fsync maybe not done yet
    temp = staging.temp_path(1)
    temp.write_bytes(b"clip")
    staging.commit(temp, sha)
    assert synced == [staging.media]


class _Dribble(io.RawIOBase):
    """A protocol stream that hands over odd-sized pieces (never whole blocks)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), 100_003, len(self._data))
        b[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def test_a_slow_slot_whose_stream_hands_over_odd_pieces_stages_them_exactly(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    ref = ClipRef(b"c.mp4", len(data), 0)
    got = pull(lambda _r: _Dribble(data), ref, tmp_path / "t.part", make_buffers(1 << 20),  # type: ignore[arg-type,return-value]
               threading.Event(), inline=True)
    assert got.temp.read_bytes() == data and got.sha256 == hashlib.sha256(data).hexdigest()


def test_a_staging_filesystem_that_refuses_o_direct_still_stages_a_slow_slots_clip(
        tmp_path: Path, vol: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fcntl = fcntl.fcntl

    def refusing(fd: int, cmd: int, arg: int = 0) -> int:  # tmpfs-like: F_SETFL with O_DIRECT is EINVAL
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", refusing)
    got = pull(opener(vol), ref_for(vol, "clip.mp4"), tmp_path / "t.part", make_buffers(1 << 20),
               threading.Event(), inline=True)
    assert got.temp.read_bytes() == (vol / "clip.mp4").read_bytes()


class _SlowClock:
    """gateway.pipeline.ingest's clock, one second further at every look: any source
    reads as slower than HASH_INLINE_BELOW."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        self.t += 1.0
        return self.t


def _watch_turn_on(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """(offset, O_DIRECT set) for each time a pull turns O_DIRECT on."""
    seen: list[tuple[int, bool]] = []
    real = copyhash.DirectWrite.turn_on

    def watching(fd: int, offset: int) -> copyhash.DirectWrite | None:
        got = real(fd, offset)
        seen.append((offset, got is not None and bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)))
        return got

    monkeypatch.setattr(copyhash.DirectWrite, "turn_on", staticmethod(watching))
    return seen


def test_a_first_clip_that_comes_slowly_goes_on_inline_and_past_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(copyhash.ADAPT_AFTER * 3 + 4097)
    (tmp_path / "c.mp4").write_bytes(data)
    monkeypatch.setattr(copyhash, "time", _SlowClock())
    turned = _watch_turn_on(monkeypatch)
    inlined: list[bool] = []
    real_go_inline = copyhash.Hasher.go_inline
    monkeypatch.setattr(copyhash.Hasher, "go_inline", lambda self: (inlined.append(True), real_go_inline(self))[1])
    got = pull(opener(tmp_path), ref_for(tmp_path, "c.mp4"), tmp_path / "t.part", make_buffers(1 << 20),
               threading.Event(), inline=None)
    assert got.temp.read_bytes() == data and got.sha256 == hashlib.sha256(data).hexdigest()
    assert inlined == [True]
    assert len(turned) == 1 and turned[0][0] >= copyhash.ADAPT_AFTER and turned[0][1]


def test_a_first_clip_that_comes_fast_keeps_its_hashing_thread_and_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(copyhash.ADAPT_AFTER * 3)
    (tmp_path / "c.mp4").write_bytes(data)
    turned = _watch_turn_on(monkeypatch)
    monkeypatch.setattr(copyhash, "HASH_INLINE_BELOW", 1)  # any real source is faster than 1 byte/s
    got = pull(opener(tmp_path), ref_for(tmp_path, "c.mp4"), tmp_path / "t.part", make_buffers(1 << 20),
               threading.Event(), inline=None)
    assert got.temp.read_bytes() == data and turned == []


def test_a_slow_first_clip_whose_stream_hands_over_odd_pieces_stays_buffered_and_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(copyhash.ADAPT_AFTER * 2 + 5)
    monkeypatch.setattr(copyhash, "time", _SlowClock())
    turned = _watch_turn_on(monkeypatch)
    got = pull(lambda _r: _Dribble(data), ClipRef(b"c.mp4", len(data), 0), tmp_path / "t.part",  # type: ignore[arg-type,return-value]
               make_buffers(1 << 20), threading.Event(), inline=None)
    assert got.temp.read_bytes() == data and got.sha256 == hashlib.sha256(data).hexdigest()
    assert [on for _, on in turned] == [False]  # not on a block boundary: O_DIRECT stays off
