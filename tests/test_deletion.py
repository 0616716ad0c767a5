"""防删改: deleting evidence shows. A station docks two recorders, one after
the other, publishing checkpoints to a real broker that `dockgate witness`
keeps; each stop is clean. Then every kind of deletion (and a rollback to an
older copy of the archive) makes `dockgate verify` exit 1 naming the check
and the object, and the untouched archive verifies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, detach, dockgate, wait_until
from tests.servers import Mosquitto

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("deletion")
    broker = Mosquitto(tmp / "broker")
    station = write_station(tmp / "st", reserve_bytes=0, mqtt=f"127.0.0.1:{broker.port}")
    # small segments: several per run, so that first, middle and last can each be deleted
    station.write_text(station.read_text().replace("[evidence]\n", "[evidence]\ncustody_rotate_entries = 12\n", 1))
    pub = tmp / "st" / "secrets" / "station.pub.pem"
    store = tmp / "witness"
    witness = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "witness", "--broker",
                                f"127.0.0.1:{broker.port}", "--store", str(store), "--pubkey", str(pub)],
                               stdout=subprocess.DEVNULL, stderr=open(tmp / "witness.log", "wb"))  # noqa: SIM115
    archive = tmp / "st" / "archive"
    try:
        for n, serial in enumerate(("DEL00001", "DEL00002"), start=1):
            rec = tmp / serial
            dockgate("sim", "make", str(rec), "--clips", "3", "--size", "40k", "--serial", serial,
                     "--officer", f"00000{n}")
            d = DaemonProc(station, tmp / f"daemon{n}.log").start()
            try:
                attach(station, rec, 1)
                d.wait_for(lambda s, n=n: s["clips"]["archived"] == 3 * n and s["queue"]["clips"] == 0,
                           timeout=90, what="archived")
            finally:
                assert d.stop() == 0
            detach(station, 1)
            if n == 1:
                shutil.copytree(archive, tmp / "archive-after-first-day")
        newest = sorted((tmp / "st" / "state" / "custody").glob("checkpoint-*.json"))[-1].name
        wait_until((store / "sim-station-01" / newest).exists, timeout=30,
                   what="the witness to keep the newest checkpoint")
        yield {"station": station, "archive": archive, "pub": pub, "store": store, "tmp": tmp,
               "older": tmp / "archive-after-first-day"}
    finally:
        witness.terminate()
        witness.wait(10)
        broker.stop()


def verify(archive: Path, pub: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return dockgate("verify", "--archive", str(archive), "--pubkey", str(pub), *extra, check=False)


@pytest.fixture
def copy(scene: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the archive to do damage to."""
    dst = tmp_path / "archive"
    shutil.copytree(scene["archive"], dst)
    for p in dst.rglob("*"):  # archive objects are read-only: let the test delete them
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def media_keys(archive: Path) -> list[Path]:
    return sorted(p for p in archive.rglob("*.MP4") if p.is_file())


def test_the_untouched_archive_verifies_against_the_witness(scene: dict[str, Any]) -> None:
    r = verify(scene["archive"], scene["pub"], "--witness", str(scene["store"]))
    assert r.returncode == 0, r.stderr
    assert "witnessed checkpoints" in r.stdout


def test_a_clean_stop_leaves_custody_and_a_checkpoint_covering_every_clip(scene: dict[str, Any]) -> None:
    custody = scene["archive"] / "custody" / "sim-station-01"
    entries = [json.loads(line) for seg in sorted(custody.glob("custody-*.jsonl"))
               for line in seg.read_bytes().splitlines()]
    archived = {e["data"]["key"] for e in entries if e["event"] == "clip_archived"}
    assert {str(p.relative_to(scene["archive"])) for p in media_keys(scene["archive"])} == archived
    newest = json.loads(sorted(custody.glob("checkpoint-*.json"))[-1].read_bytes())
    last_archived = max(e["seq"] for e in entries if e["event"] == "clip_archived")
    assert newest["seq"] >= last_archived


def test_deleting_one_clip_whole_is_caught(scene: dict[str, Any], copy: Path) -> None:
    victim = media_keys(copy)[0]
    for p in victim.parent.glob(victim.name + "*"):
        p.unlink()
    r = verify(copy, scene["pub"])
    assert r.returncode == 1 and "clip-missing" in r.stderr and victim.name in r.stderr


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_deleting_any_custody_segment_is_caught(scene: dict[str, Any], copy: Path, which: str) -> None:
    segs = sorted((copy / "custody" / "sim-station-01").glob("custody-*.jsonl"))
    assert len(segs) >= 3
    victim = {"first": segs[0], "middle": segs[len(segs) // 2], "last": segs[-1]}[which]
    victim.unlink()
    r = verify(copy, scene["pub"])
    assert r.returncode == 1, r.stdout
    assert re.search(r"custody-(sequence|missing)|checkpoint-(tail|head)", r.stderr)


def test_deleting_all_of_custody_is_caught(scene: dict[str, Any], copy: Path) -> None:
    shutil.rmtree(copy / "custody")
    r = verify(copy, scene["pub"])
    assert r.returncode == 1 and "custody-missing" in r.stderr


def test_deleting_the_newest_checkpoint_and_segments_is_caught_by_the_witness(scene: dict[str, Any],
                                                                                copy: Path) -> None:
    custody = copy / "custody" / "sim-station-01"
    cps = sorted(custody.glob("checkpoint-*.json"))
    newest = json.loads(cps[-1].read_bytes())
    for p in list(custody.iterdir()):
        if p.name.startswith("checkpoint-") and p.name >= cps[-1].name:
            p.unlink()
    sorted(custody.glob("custody-*.jsonl"))[-1].unlink()
    r = verify(copy, scene["pub"], "--witness", str(scene["store"]))
    assert r.returncode == 1 and "witness-tail" in r.stderr and str(newest["seq"]) in r.stderr


def test_restoring_an_older_copy_of_the_archive_is_caught_by_the_witness(scene: dict[str, Any]) -> None:
    assert verify(scene["older"], scene["pub"]).returncode == 0  # on its own, the old copy is consistent
    r = verify(scene["older"], scene["pub"], "--witness", str(scene["store"]))
    assert r.returncode == 1 and "witness-tail" in r.stderr


def test_a_single_checkpoint_file_serves_as_witness(scene: dict[str, Any]) -> None:
    newest = sorted((scene["store"] / "sim-station-01").glob("checkpoint-*.json"))[-1]
    assert verify(scene["archive"], scene["pub"], "--checkpoint", str(newest)).returncode == 0
    assert verify(scene["older"], scene["pub"], "--checkpoint", str(newest)).returncode == 1

