"""Release frees a recorder of exactly the clips the archive verified;
purge frees staging of exactly the clips the archive holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.base import ClipRef, VolumeError
from gateway.catalog import ClipState, event
from gateway.config import Config
from gateway.pipeline.live import SlotState
from gateway.pipeline.purge import Purger
from gateway.pipeline.release import release
from tests.pipeline import Station, make_station


@pytest.fixture
def station(tmp_path: Path, cfg: Config) -> Station:
    return make_station(tmp_path, cfg)


def archive_it(st: Station, sha: str) -> None:
    st.catalog.start_forward(sha, "k")
    st.catalog.archived(sha, event("clip_archived", sha256=sha))


def refs_of(st: Station) -> list[ClipRef]:
    rows = st.catalog.db.execute("SELECT path, size, mtime_ns FROM items ORDER BY id").fetchall()
    return [ClipRef(r[0], r[1], r[2]) for r in rows]


def run_release(st: Station, deleted: list[bytes], partial: bool = False,
                fail: bytes | None = None) -> tuple[int, int]:
    async def delete(ref: ClipRef) -> None:
        if ref.relpath == fail:
            raise VolumeError(ref.display, OSError(30, "Read-only file system"))
        deleted.append(ref.relpath)

    cfg = st.cfg.release.model_copy(update={"policy": "after-archive", "partial": partial})
    return asyncio.run(release(st.catalog, cfg, SlotState(1), "SN1", refs_of(st), delete))


def test_only_archived_clips_leave_the_recorder(station: Station) -> None:
    kept = station.stamped()
    gone = station.stamped()
    archive_it(station, gone)
    station.catalog.start_forward(kept, "k")
    station.catalog.quarantine(kept, "test")
    deleted: list[bytes] = []
    assert run_release(station, deleted) == (1, 1)
    assert deleted == [f"DCIM/{gone[:8]}.MP4".encode()]
    assert "released" in station.event_types()


def test_partial_clips_stay_unless_configured(station: Station) -> None:
    sha = station.staged()
    station.catalog.stamped(sha, "k", "m", "ff" * 32, True, 1.0, None)
    archive_it(station, sha)
    deleted: list[bytes] = []
    assert run_release(station, deleted) == (0, 1)
    assert run_release(station, deleted, partial=True) == (1, 0)


def test_release_waits_until_the_archive_confirms(station: Station) -> None:
    sha = station.stamped()
    deleted: list[bytes] = []

    async def scenario() -> tuple[int, int]:
        async def delete(ref: ClipRef) -> None:
            deleted.append(ref.relpath)

        live = SlotState(1)
        cfg = station.cfg.release.model_copy(update={"policy": "after-archive"})
        task = asyncio.create_task(release(station.catalog, cfg, live, "SN1", refs_of(station), delete))
        while live.state != "waiting":
            await asyncio.sleep(0.01)
        assert deleted == []
        archive_it(station, sha)
        return await task

    assert asyncio.run(scenario()) == (1, 0)


def test_a_clip_that_cannot_be_deleted_is_an_alarm_not_a_failure(station: Station) -> None:
    sha = station.stamped()
    archive_it(station, sha)
    deleted: list[bytes] = []
    assert run_release(station, deleted, fail=f"DCIM/{sha[:8]}.MP4".encode()) == (0, 1)
    assert "release_failed" in station.event_types()


def test_purge_removes_only_archived_copies(station: Station) -> None:
    queued = station.stamped()
    done = station.stamped()
    archive_it(station, done)
    cfg = station.cfg.model_copy(update={"purge": station.cfg.purge.model_copy(update={"after_s": 0})})
    assert asyncio.run(Purger(cfg, station.catalog, station.staging).purge()) == 1
    assert not station.staging.path_for(done).exists()
    assert station.staging.path_for(queued).exists()
    assert station.state(queued) == ClipState.STAMPED and "purged" in station.event_types()
