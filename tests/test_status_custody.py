"""Whose custody log a state folder holds (`status`'s catalog_station, and the
daemon's refusal to continue another station's log): the station and number
of the log's newest entry, read from the segments' ends, without listing a
year's custody folder when the catalog's newest checkpoint names the segment
opened after it (gateway/evidence/newest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.evidence.checkpoint import checkpoint_name
from gateway.evidence.custody import CustodyLog
from gateway.evidence.newest import newest_entry
from gateway.evidence.signing import keygen


def test_the_owner_is_the_newest_entry_s_station_with_or_without_the_catalog_s_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signer = keygen(tmp_path / "k.key")
    d = tmp_path / "c"
    log = CustodyLog(d, signer, "old-st", rotate_entries=2)
    assert newest_entry(d) is None
    for i in range(5):
        log.append("pulled", n=i)
        log.maybe_rotate()
    seq = log.seq
    log.close()
    newest = max(int(p.name.rsplit("-", 1)[1].split(".")[0]) for p in d.glob("checkpoint-*.json"))
    hint = checkpoint_name("old-st", newest)
    assert (d / f"custody-old-st-{newest + 1:010d}.open.jsonl").exists()
    assert newest_entry(d) == newest_entry(d, hint) == ("old-st", seq)

    listed: list[Path] = []
    real = os.scandir
    monkeypatch.setattr("gateway.evidence.newest.os.scandir", lambda p: listed.append(p) or real(p))
    assert newest_entry(d, hint) == ("old-st", seq) and listed == []  # the hint: no listing
    # a catalog behind its log (restored): the segment after its checkpoint is sealed, its name gone: listed
    log = CustodyLog(d, signer, "old-st", rotate_entries=2)
    for i in range(3):
        log.append("pulled", n=i)
        log.maybe_rotate()
    seq = log.seq
    log.close()
    assert newest_entry(d, hint) == ("old-st", seq) and listed
    # another station's entries after them (a reinstall under a new id): theirs
    log = CustodyLog(d, signer, "new-st", rotate_entries=100)
    log.append("pulled")
    seq = log.seq
    log.close()
    assert newest_entry(d) == ("new-st", seq)


def test_an_entry_torn_by_a_power_cut_gives_the_one_before_it(tmp_path: Path) -> None:
    d = tmp_path / "c"
    log = CustodyLog(d, keygen(tmp_path / "k.key"), "st-1", rotate_entries=100)
    for i in range(3):
        log.append("pulled", n=i)
    seq = log.seq
    log.close()
    (newest,) = d.glob("custody-*.open.jsonl")
    with open(newest, "ab") as f:
        f.write(b'{"seq": ' + str(seq + 1).encode() + b', "station": "st-1", "ty')  # the cut came mid-write
    assert newest_entry(d) == ("st-1", seq)
