"""The custody log chains across segments and restarts, and a line torn by a
power cut is cut off, not carried."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gateway.archive.directory import DirectoryArchive
from gateway.evidence.custody import GENESIS, CustodyLog, entry_hash
from gateway.evidence.signing import keygen
from gateway.evidence.verify import verify_archive


def test_chain_across_rotation_restart_and_torn_line(tmp_path: Path) -> None:
    signer = keygen(tmp_path / "k.key")
    log = CustodyLog(tmp_path / "c", signer, "st1", rotate_entries=3)
    for i in range(4):
        log.append("pulled", n=i)
        log.maybe_rotate()
    log.close()
    open_seg = next((tmp_path / "c").glob("*.open.jsonl"))
    with open(open_seg, "ab") as f:
        f.write(b'{"seq":6,"half a li')  # power cut mid-write
    log = CustodyLog(tmp_path / "c", signer, "st1", rotate_entries=3)
    assert log.seq == 5  # 3 in the first segment; the second opened with the index of the first, then 1
    log.append("stamped")
    log.seal()
    lines = [ln for seg in log.sealed() for ln in seg.read_bytes().splitlines()]
    entries = [json.loads(ln) for ln in lines]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert [e["event"] for e in entries] == ["pulled"] * 3 + ["segment_opened", "pulled", "stamped"]
    assert entries[0]["prev"] == GENESIS
    assert all(entries[i]["prev"] == entry_hash(lines[i - 1]) for i in range(1, 6))
    archive = tmp_path / "a"
    (archive / "custody" / "st1").mkdir(parents=True, exist_ok=True)
    for f in (tmp_path / "c").glob("c*"):  # segments sealed and their checkpoints
        if not f.name.endswith(".open.jsonl"):
            (archive / "custody" / "st1" / f.name).write_bytes(f.read_bytes())
    report = verify_archive(DirectoryArchive(archive), [signer.public])
    assert report.ok, report.failures
    assert report.custody_entries == 6 and report.segments == 2 and report.checkpoints == 2


def test_each_segment_opens_with_the_index_of_the_one_before(tmp_path: Path) -> None:
    signer = keygen(tmp_path / "k.key")
    log = CustodyLog(tmp_path / "c", signer, "st1", rotate_entries=2)
    log.append("pulled")
    log.append("pulled")
    log.maybe_rotate()  # sealed, checkpoint signed, next segment opened
    first = log.sealed()[0]
    opened = json.loads(next((tmp_path / "c").glob("*.open.jsonl")).read_bytes().splitlines()[0])
    assert opened["event"] == "segment_opened" and opened["seq"] == 3
    idx = opened["data"]
    assert idx["segment"]["name"] == first.name
    assert idx["segment"]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    cp = tmp_path / "c" / idx["checkpoint"]["name"]
    assert idx["checkpoint"]["sha256"] == hashlib.sha256(cp.read_bytes()).hexdigest()
    assert idx["checkpoint"]["signature_sha256"] == hashlib.sha256(
        cp.with_name(cp.name + ".sig").read_bytes()).hexdigest()


def test_an_idle_station_does_not_rotate_for_ever(tmp_path: Path) -> None:
    signer = keygen(tmp_path / "k.key")
    log = CustodyLog(tmp_path / "c", signer, "st1", rotate_s=0.0)
    log.append("pulled")
    assert log.seal() is not None
    assert log.maybe_rotate() is None and log.seal() is None  # only its opening entry: nothing to seal
    assert len(log.sealed()) == 1
