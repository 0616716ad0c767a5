"""The stamper's promises: a staged clip becomes a signed manifest whose
custody position is the entry its ``stamped`` event got, in one transition;
a later assignment becomes a signed amendment, never a rewrite."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from drivers.profiles import Registry
from gateway.catalog import ClipState
from gateway.config import Config
from gateway.evidence.custody import CustodyLog
from gateway.evidence.manifest import read_signed
from gateway.evidence.signing import keygen, verify
from gateway.pipeline.events import Journal
from gateway.pipeline.stamp import Stamper
from tests.pipeline import Station, make_station


@pytest.fixture
def station(tmp_path: Path, cfg: Config) -> Station:
    return make_station(tmp_path, cfg)


@pytest.fixture
def stamper(station: Station, tmp_path: Path) -> Stamper:
    signer = keygen(tmp_path / "station.key")
    custody = CustodyLog(tmp_path / "custody", signer, station.cfg.station.id)
    station.catalog.journal = Journal(custody)
    st = Stamper(station.cfg, station.catalog, station.staging, Registry.load(), signer, custody, lambda: None)
    asyncio.run(st.start())
    return st


def stamp_all(stamper: Stamper) -> None:
    while asyncio.run(stamper.step()) == 0:
        pass


def test_a_staged_clip_gets_a_signed_manifest(station: Station, stamper: Stamper) -> None:
    sha = station.staged(b"not really an mp4" * 100)
    stamp_all(stamper)
    clip = station.catalog.clip(sha)
    assert clip is not None and clip.state == ClipState.STAMPED and clip.manifest_path
    signed = read_signed(station.staging.resolve(clip.manifest_path))
    assert verify(stamper.signer.public, signed.body, signed.signature)
    doc = json.loads(signed.body)
    assert doc["clip"]["sha256"] == sha and doc["collector"]["officer"] == "012345"


def test_the_manifest_names_the_custody_entry_of_its_stamping(station: Station, stamper: Stamper) -> None:
    shas = [station.staged() for _ in range(3)]
    stamp_all(stamper)
    entries = [json.loads(line) for seg in sorted((stamper.custody.dir).glob("custody-*.jsonl"))
               for line in seg.read_bytes().splitlines()]
    stamped_at = {e["data"]["sha256"]: e["seq"] for e in entries if e["event"] == "stamped"}
    for sha in shas:
        clip = station.catalog.clip(sha)
        assert clip is not None and clip.manifest_path
        doc = json.loads(read_signed(station.staging.resolve(clip.manifest_path)).body)
        assert doc["custody_seq"] == stamped_at[sha]


def test_a_late_assignment_is_an_amendment_and_the_manifest_stays(station: Station, stamper: Stamper) -> None:
    sha = station.staged(mtime_ns=1_709_280_000 * 10**9)  # 2024-03-01: an assignment may name it (gateway/values.py)
    stamp_all(stamper)
    clip = station.catalog.clip(sha)
    assert clip is not None and clip.manifest_path and clip.capture_utc is not None
    before = station.staging.resolve(clip.manifest_path).read_bytes()
    station.catalog.add_assignment("012345", clip.capture_utc - 60, clip.capture_utc + 60, "A2026-1", "assault",
                                   None, True)
    stamp_all(stamper)
    assert station.staging.resolve(clip.manifest_path).read_bytes() == before
    assert station.event_types().count("amended") == 1


def test_a_full_staging_disk_defers_the_stamping_and_records_nothing(station: Station, stamper: Stamper,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifests of a batch find staging full: the stamper waits for room (uploads and purging
    make it) instead of crashing until its supervisor gives the station up; nothing of the batch is
    recorded, and it is stamped in full once there is room."""
    import errno

    from gateway.pipeline import stamp

    sha = station.staged(b"evidence" * 100)
    seq = stamper.custody.seq
    real = stamp.write_many

    def full(files: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stamp, "write_many", full)
    assert asyncio.run(stamper.step()) == stamp.FULL_WAIT_S
    clip = station.catalog.clip(sha)
    assert clip is not None and clip.state == ClipState.STAGED and stamper.custody.seq == seq
    monkeypatch.setattr(stamp, "write_many", real)
    stamp_all(stamper)
    clip = station.catalog.clip(sha)
    assert clip is not None and clip.state == ClipState.STAMPED and clip.manifest_path
