"""Group commit: a slot's pulls, the stamper's manifests and the forwarder's
archived clips share their barriers, and nothing counts as done before its
bytes are durable."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest

from drivers.base import ClipRef, DockedDevice, UsbIds
from gateway import durable
from gateway.catalog import Catalog, ClipState, Event, ItemState, PendingItem
from gateway.config import Config
from gateway.durable import write_many
from gateway.pipeline.ingest import Pulled
from gateway.pipeline.live import SlotState
from gateway.pipeline.pullcommit import Done, SlotCommitter
from tests.pipeline import Station, make_station


class Counting:
    """A journal that counts its syncs (one per transaction)."""

    def __init__(self) -> None:
        self.syncs = 0
        self.recorded: list[str] = []

    def on_record(self, ev: Event) -> None:
        self.recorded.append(ev.type)

    def sync(self) -> None:
        self.syncs += 1

    def announce(self, ev: Event) -> None:
        pass


@pytest.fixture
def station(tmp_path: Path, cfg: Config) -> Station:
    return make_station(tmp_path, cfg)


def pulled_batch(station: Station, contents: list[bytes]) -> list[Done]:
    """Items copied into staging's tmp/ and not yet durable, as a slot leaves them."""
    cat = station.catalog
    dock = cat.open_dock(DockedDevice(1, UsbIds(0x1209, 1, "SN1"), None, "sim"), "generic-ums")
    refs = [ClipRef(f"DCIM/{i:04d}.MP4".encode(), len(c), i + 1) for i, c in enumerate(contents)]
    pending, _ = cat.discover(dock, "SN1", "012345", refs)
    done = []
    for item, data in zip(pending, contents, strict=True):
        cat.begin_pull(item.id)
        temp = station.staging.temp_path(item.id)
        temp.write_bytes(data)
        done.append(Done(PendingItem(item.id, item.ref), Pulled(hashlib.sha256(data).hexdigest(), len(data), temp), 0.1))
    return done


def commit(station: Station, batch: list[Done], st: SlotState | None = None) -> None:
    c = SlotCommitter(station.catalog, station.staging, 1, st or SlotState(1), "SN1", lambda: None)

    async def go() -> None:
        for d in batch:
            c.add(d)
        await c.drain()

    asyncio.run(go())


def test_a_batch_of_pulls_is_staged_in_one_transaction(station: Station) -> None:
    journal = Counting()
    station.catalog.journal = journal
    batch = pulled_batch(station, [os.urandom(4096) for _ in range(20)])
    journal.syncs = 0
    commit(station, batch)
    assert journal.syncs == 1 and journal.recorded.count("pulled") == 20
    for d in batch:
        clip = station.catalog.clip(d.pulled.sha256)
        assert clip is not None and clip.state == ClipState.STAGED
        staged = station.staging.resolve(clip.staged_path or "")
        assert hashlib.sha256(staged.read_bytes()).hexdigest() == clip.sha256
    assert list(station.staging.tmp.iterdir()) == []


def test_a_pull_is_not_staged_before_its_batch_commits(station: Station) -> None:
    (d,) = pulled_batch(station, [b"evidence" * 100])
    assert station.catalog.clip(d.pulled.sha256) is None  # copied, hashed, not yet durable: not staged
    row = station.catalog.db.execute("SELECT state FROM items WHERE id=?", (d.item.id,)).fetchone()
    assert row[0] == ItemState.PULLING  # a crash now leaves it to recovery: interrupted, pulled again


def test_the_same_content_twice_in_a_batch_is_one_clip_and_one_sighting(station: Station) -> None:
    batch = pulled_batch(station, [b"same bytes" * 50, b"same bytes" * 50])
    st = SlotState(1)
    commit(station, batch, st)
    states = [station.catalog.db.execute("SELECT state FROM items WHERE id=?", (d.item.id,)).fetchone()[0]
              for d in batch]
    assert states == [ItemState.PULLED, ItemState.SIGHTING] and st.clips_done == 2
    assert station.catalog.counts()["staged"] == 1
    assert len([p for p in station.staging.media.rglob("*") if p.is_file()]) == 1


def test_write_many_leaves_complete_read_only_files_and_no_temps(tmp_path: Path) -> None:
    files = [(tmp_path / "m" / f"{i}.json", f"manifest {i}".encode(), 0o444) for i in range(10)]
    write_many(files)
    for path, data, mode in files:
        assert path.read_bytes() == data and stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(p.name for p, _, _ in files)


def test_write_many_that_fails_leaves_nothing_half_written(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "taken").mkdir()  # a directory where a file should go: the rename fails
    with pytest.raises(OSError):
        write_many([(tmp_path / "m" / "a.json", b"a", 0o444), (tmp_path / "m" / "taken", b"b", 0o444)])
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.endswith(".tmp")]


def test_the_catalog_survives_a_restart_after_a_group_commit(tmp_path: Path, station: Station) -> None:
    batch = pulled_batch(station, [os.urandom(1000) for _ in range(5)])
    commit(station, batch)
    station.catalog.close()
    again = Catalog(tmp_path / "catalog.sqlite")
    assert again.counts()["staged"] == 5


def _count_barriers(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    syncfs: list[int] = []
    fsync: list[int] = []
    real_syncfs, real_fsync = durable._SYNCFS, os.fsync
    assert real_syncfs is not None

    def counted_syncfs(fd: int) -> int:
        syncfs.append(fd)
        return int(real_syncfs(fd))

    def counted_fsync(fd: int) -> None:
        fsync.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(durable, "_SYNCFS", counted_syncfs)
    monkeypatch.setattr(os, "fsync", counted_fsync)
    return syncfs, fsync


def _small_files(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    for i in range(n):
        (folder / f"f{i}").write_bytes(b"x" * 100)
    return [folder / f"f{i}" for i in range(n)]


def test_a_barrier_over_many_files_on_a_local_disk_is_one_syncfs(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert durable._fs_type(os.stat(tmp_path).st_dev) in durable.SYNCFS_TYPES, "the test needs a local disk"
    files = _small_files(tmp_path / "d", durable.SYNCFS_MIN)
    syncfs, fsync = _count_barriers(monkeypatch)
    durable.sync_files(files)
    assert len(syncfs) == 1 and fsync == []


def test_few_files_or_a_filesystem_not_trusted_with_syncfs_are_fsynced_one_by_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    few = _small_files(tmp_path / "few", durable.SYNCFS_MIN - 1)
    many = _small_files(tmp_path / "many", durable.SYNCFS_MIN)
    syncfs, fsync = _count_barriers(monkeypatch)
    durable.sync_files(few)
    assert syncfs == [] and len(fsync) == len(few)
    monkeypatch.setattr(durable, "_fs_type", lambda dev: "nfs4")  # a NAS: its syncfs may not wait for the server
    fsync.clear()
    durable.sync_files(many)
    durable.sync_dirs([tmp_path / "few", tmp_path / "many"])
    assert syncfs == [] and len(fsync) == len(many) + 2
