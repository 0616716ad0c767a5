"""The forwarder's promises, against a real directory archive whose faults
the test scripts: what happens to a clip is decided by whose fault a failure
is (the clip's or the station's) and whether trying again can help."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from gateway.archive import (
    ArchiveConflict,
    ArchiveError,
    ArchiveObject,
    ArchiveRefused,
    ArchiveUnavailable,
    Receipt,
    VerifyFailed,
)
from gateway.catalog import ClipState
from gateway.cli.status import render
from gateway.config import Config
from gateway.pipeline.forward import MAX_VERIFY_FAILURES, Forwarder
from gateway.pipeline.live import StationState
from tests.pipeline import Scripted, Station, make_station


@pytest.fixture
def fast(cfg: Config) -> Config:
    return cfg.model_copy(update={"forward": cfg.forward.model_copy(update={
        "retry_initial_s": 0.05, "retry_max_s": 0.1, "refused_retry_s": 0.2, "attempts_per_try": 1})})


@pytest.fixture
def station(tmp_path: Path, fast: Config) -> Station:
    return make_station(tmp_path, fast)


@pytest.fixture
def archive(station: Station) -> Scripted:
    return Scripted(station.archive_root)


Body = Callable[[Forwarder], Awaitable[None]]


def with_forwarder(station: Station, archive: Scripted, tmp_path: Path, body: Body) -> None:
    """Run the forwarder worker on an event loop while *body* runs."""
    (tmp_path / "custody").mkdir(exist_ok=True)

    async def main() -> None:
        fwd = Forwarder(station.cfg, station.catalog, station.staging, archive, StationState(1),
                        tmp_path / "custody")
        task = asyncio.create_task(fwd.run())
        try:
            await body(fwd)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_a_stamped_clip_is_archived_with_its_events(station: Station, archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        sha = station.stamped()
        forwarder.wake()
        await until(lambda: station.state(sha) == ClipState.ARCHIVED)
        assert station.event_types()[-3:] == ["forwarded", "verified", "clip_archived"]

    with_forwarder(station, archive, tmp_path, scenario)


def test_an_archive_refusing_the_station_quarantines_nothing_and_alarms_once(
        station: Station, archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        fixed = False
        archive.fault = lambda key: None if fixed else ArchiveRefused("archive", "403 InvalidAccessKeyId")
        clips = [station.stamped() for _ in range(4)]
        forwarder.wake()
        await until(lambda: len(archive.puts) >= 3)  # the first try, then probes every refused_retry_s
        assert forwarder.live.archive_refused is not None
        assert all(station.state(s) in (ClipState.STAMPED, ClipState.FORWARDING) for s in clips)
        assert station.event_types().count("archive_refused") == 1
        assert "quarantined" not in station.event_types()
        fixed = True  # the credentials file is corrected: forwarding resumes by itself
        await until(lambda: all(station.state(s) == ClipState.ARCHIVED for s in clips))
        assert forwarder.live.archive_refused is None and "archive_up" in station.event_types()
        assert all(c is not None and c.attempts == 0 for c in map(station.catalog.clip, clips))

    with_forwarder(station, archive, tmp_path, scenario)


def test_a_staged_copy_deleted_before_forwarding_is_quarantined(station: Station,
                                                                        archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        sha = station.stamped()
        clip = station.catalog.clip(sha)
        assert clip is not None and clip.staged_path is not None
        station.staging.resolve(clip.staged_path).unlink()
        forwarder.wake()
        await until(lambda: station.state(sha) == ClipState.QUARANTINED)
        assert "archive_refused" not in station.event_types() and "archive_down" not in station.event_types()
        assert list(archive.keys()) == []

    with_forwarder(station, archive, tmp_path, scenario)


def test_a_manifest_damaged_on_the_station_quarantines_its_clip_and_alarms_no_archive(
        station: Station, archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        sha = station.stamped()
        clip = station.catalog.clip(sha)
        assert clip is not None and clip.manifest_path is not None
        station.staging.resolve(clip.manifest_path).write_bytes(b"\x00 not json")
        forwarder.wake()
        await until(lambda: station.state(sha) == ClipState.QUARANTINED)
        assert "archive_refused" not in station.event_types() and "archive_down" not in station.event_types()
        assert list(archive.keys()) == []

    with_forwarder(station, archive, tmp_path, scenario)


def test_an_archive_that_is_down_keeps_the_queue_and_alarms_once(station: Station, archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        down = True
        archive.fault = lambda key: ArchiveUnavailable("archive", "connection refused") if down else None
        clips = [station.stamped() for _ in range(3)]
        forwarder.wake()
        await until(lambda: len(archive.puts) >= 6)
        assert station.event_types().count("archive_down") == 1
        assert "quarantined" not in station.event_types()
        down = False
        await until(lambda: all(station.state(s) == ClipState.ARCHIVED for s in clips))

    with_forwarder(station, archive, tmp_path, scenario)


def test_custody_held_back_by_a_down_archive_goes_up_when_it_is_back_though_no_clip_is_queued(
        station: Station, archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        down = True
        archive.fault = lambda key: ArchiveUnavailable("archive", "connection refused") if down else None
        (tmp_path / "custody" / "custody-000002.jsonl").write_bytes(b'{"seq": 1}\n')
        station.catalog.add_segment("custody-000002.jsonl")
        forwarder.wake()
        await until(lambda: "archive_down" in station.event_types())
        down = False
        await until(lambda: not station.catalog.due_segments())
        assert station.event_types().count("archive_up") == 1
        assert (station.archive_root / "custody" / station.cfg.station.id / "custody-000002.jsonl").exists()

    with_forwarder(station, archive, tmp_path, scenario)


def test_a_stored_copy_that_never_reads_back_right_is_quarantined_in_the_end(
        station: Station, archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        archive.fault = lambda key: VerifyFailed(key, "a" * 64, "b" * 64)
        sha = station.stamped()
        forwarder.wake()
        await until(lambda: station.state(sha) == ClipState.QUARANTINED)
        assert len(archive.puts) == MAX_VERIFY_FAILURES
        assert "archive_down" not in station.event_types()

    with_forwarder(station, archive, tmp_path, scenario)


def test_an_untyped_error_keeps_the_clip_queued_and_the_forwarder_alive(
        station: Station, archive: Scripted, tmp_path: Path) -> None:
    async def scenario(forwarder: Forwarder) -> None:
        broken = True
        archive.fault = lambda key: RuntimeError("a bug in a backend") if broken else None
        sha = station.stamped()
        forwarder.wake()
        await until(lambda: len(archive.puts) >= 2)
        assert station.state(sha) != ClipState.QUARANTINED
        broken = False
        await until(lambda: station.state(sha) == ClipState.ARCHIVED)

    with_forwarder(station, archive, tmp_path, scenario)


# -- the officer's wait first ------------------------------------------------------------
def forwarder_with(station: Station, tmp_path: Path, **forward: object) -> Forwarder:
    cfg = station.cfg.model_copy(update={"forward": station.cfg.forward.model_copy(update=forward)})
    return Forwarder(cfg, station.catalog, station.staging, Scripted(station.archive_root), StationState(2),
                     tmp_path / "custody")


def test_while_a_slot_pulls_forwarding_runs_only_while_pulling_uploads(station: Station, tmp_path: Path) -> None:
    fwd = forwarder_with(station, tmp_path, concurrency=4, while_pulling=1, pause_at_pulling=2)
    assert fwd.concurrency(time.time()) == 4
    fwd.live.pulling[2] = 7
    assert fwd.concurrency(time.time()) == 1
    fwd.live.pulling.clear()
    assert fwd.concurrency(time.time()) == 4


def test_while_as_many_slots_pull_as_the_pause_says_no_upload_starts(station: Station, tmp_path: Path) -> None:
    fwd = forwarder_with(station, tmp_path, concurrency=4, while_pulling=1, pause_at_pulling=3)
    fwd.live.pulling.update({1: 7, 2: 8})
    assert fwd.concurrency(time.time()) == 1
    fwd.live.pulling[3] = 9
    assert fwd.concurrency(time.time()) == 0
    del fwd.live.pulling[1]
    assert fwd.concurrency(time.time()) == 1


def test_status_says_when_uploads_wait_for_the_pulls(station: Station, tmp_path: Path) -> None:
    fwd = forwarder_with(station, tmp_path, concurrency=4, while_pulling=0)
    fwd.live.pulling[1] = 7
    fwd.concurrency(time.time())
    snap = {"daemon": {"running": True, "pid": 1, "version": "t"}, "station": "s", "clips": {"archived": 0},
            "sightings": 0, "queue": {"clips": 3, "bytes": 3000}, "archive_up": True, "slots": [],
            **fwd.live.snapshot()}
    assert snap["uploads_held"] is True
    assert "uploads wait while the docks pull" in render(snap)
    fwd.live.pulling.clear()
    fwd.concurrency(time.time())
    assert "uploads wait" not in render({**snap, **fwd.live.snapshot()})


def test_by_default_uploads_pause_once_a_slot_pulls_per_cpu(station: Station, tmp_path: Path) -> None:
    fwd = forwarder_with(station, tmp_path, concurrency=4, while_pulling=1)
    cpus = len(os.sched_getaffinity(0))
    fwd.live.pulling.update({slot: slot for slot in range(1, cpus + 1)})
    assert fwd.concurrency(time.time()) == 0
    del fwd.live.pulling[cpus]
    assert fwd.concurrency(time.time()) == (1 if cpus > 1 else 4)  # one CPU: nothing pulls any more


def test_forwarding_far_behind_runs_at_full_concurrency_even_while_slots_pull(station: Station,
                                                                            tmp_path: Path) -> None:
    station.stamped(b"x" * 5000)
    fwd = forwarder_with(station, tmp_path, concurrency=4, while_pulling=0, catch_up_bytes=4096)
    fwd.live.pulling[1] = 7
    assert fwd.concurrency(time.time()) == 4  # 5000 bytes queued > 4096
    old = forwarder_with(station, tmp_path, concurrency=4, while_pulling=0, catch_up_s=60.0)
    old.live.pulling[1] = 7
    assert old.concurrency(time.time()) == 0  # just queued: the pulls come first
    assert old.concurrency(time.time() + 120) == 4  # the oldest has waited too long


def test_while_a_dock_pulls_the_clips_of_docks_done_pulling_go_first(station: Station, tmp_path: Path) -> None:
    early = [station.stamped() for _ in range(3)]  # dock 1..3 (one dock per staged clip)
    late = station.stamped()
    fwd = forwarder_with(station, tmp_path)
    docks = {c.sha256: c.dock_id for c in map(station.catalog.clip, [*early, late]) if c}
    fwd.live.pulling[1] = docks[early[0]]  # still pulling: its clips wait for the others
    assert [c.sha256 for c in fwd._due(time.time(), 2)] == early[1:]
    fwd.live.pulling.clear()
    assert [c.sha256 for c in fwd._due(time.time(), 2)] == early[:2]


def test_small_clips_go_up_together_and_each_clips_fault_stays_its_own(station: Station, archive: Scripted,
                                                                       tmp_path: Path) -> None:
    batches: list[int] = []
    real_put_many = archive.put_many

    def counting(objs: Sequence[ArchiveObject]) -> list[Receipt | ArchiveError]:
        batches.append(len(objs))
        return real_put_many(objs)

    archive.put_many = counting  # type: ignore[method-assign]
    shas = [station.stamped() for _ in range(5)]
    bad = station.catalog.clip(shas[2])
    assert bad is not None and bad.archive_key is not None
    archive.fault = lambda key: ArchiveConflict(key, "a" * 64, "b" * 64) if key == bad.archive_key else None

    async def scenario(forwarder: Forwarder) -> None:
        forwarder.wake()
        await until(lambda: all(station.state(s) in (ClipState.ARCHIVED, ClipState.QUARANTINED) for s in shas))

    with_forwarder(station, archive, tmp_path, scenario)
    assert [station.state(s) for s in shas] == [ClipState.ARCHIVED] * 2 + [ClipState.QUARANTINED] + \
        [ClipState.ARCHIVED] * 2
    assert batches == [5]  # one upload for the five
