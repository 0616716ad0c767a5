"""The custody log chains across segments and restarts, and a line torn by a
power cut is cut off, not carried."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.archive.directory import DirectoryArchive
from gateway.evidence.custody import GENESIS, CustodyLog, entry_hash
from gateway.evidence.signing import keygen
from gateway.evidence.verify import verify_archive


def test_chain_across_rotation_restart_and_torn_line(tmp_path: Path) -> None:
    signer = keygen(tmp_path / "k.key")
    log = CustodyLog(tmp_path / "c", signer, "st1", rotate_entries=3)
    for i in range(5):
        log.append("pulled", n=i)
    log.close()
    open_seg = next((tmp_path / "c").glob("*.open.jsonl"))
    with open(open_seg, "ab") as f:
        f.write(b'{"seq":6,"half a li')  # power cut mid-write
    log = CustodyLog(tmp_path / "c", signer, "st1", rotate_entries=3)
    assert log.seq == 5
    log.append("stamped")
    log.seal()
    lines = [ln for seg in log.sealed() for ln in seg.read_bytes().splitlines()]
    entries = [json.loads(ln) for ln in lines]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev"] == GENESIS
    assert all(entries[i]["prev"] == entry_hash(lines[i - 1]) for i in range(1, 6))
    archive = tmp_path / "a"
    for seg in log.sealed():
        (archive / "custody" / "st1").mkdir(parents=True, exist_ok=True)
        (archive / "custody" / "st1" / seg.name).write_bytes(seg.read_bytes())
    report = verify_archive(DirectoryArchive(archive), [signer.public])
    assert report.ok and report.custody_entries == 6 and report.segments == 2
