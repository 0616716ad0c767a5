"""`status` says whose custody log the state folder holds (catalog_station)
as ``custody.last_station`` does, without listing a year's custody folder
when the catalog's newest checkpoint names the segment opened after it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.cli.status import newest_custody_station
from gateway.evidence.checkpoint import checkpoint_name
from gateway.evidence.custody import CustodyLog, last_station
from gateway.evidence.signing import keygen


def owner(d: Path) -> str | None:
    """What the daemon checks at start (the whole listing, the newest segment read whole)."""
    found = last_station(d)
    return found[0] if found else None


def test_the_owner_is_the_newest_entry_s_station_with_or_without_the_catalog_s_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signer = keygen(tmp_path / "k.key")
    d = tmp_path / "c"
    log = CustodyLog(d, signer, "old-st", rotate_entries=2)
    assert newest_custody_station(d) is None and owner(d) is None
    for i in range(5):
        log.append("pulled", n=i)
        log.maybe_rotate()
    log.close()
    newest = max(int(p.name.rsplit("-", 1)[1].split(".")[0]) for p in d.glob("checkpoint-*.json"))
    hint = checkpoint_name("old-st", newest)
    assert (d / f"custody-old-st-{newest + 1:010d}.open.jsonl").exists()
    assert newest_custody_station(d) == newest_custody_station(d, hint) == owner(d) == "old-st"

    listed: list[Path] = []
    real = os.scandir
    monkeypatch.setattr("gateway.cli.status.os.scandir", lambda p: listed.append(p) or real(p))
    assert newest_custody_station(d, hint) == "old-st" and listed == []  # the hint: no listing
    # a catalog behind its log (restored): the segment after its checkpoint is sealed, its name gone: listed
    log = CustodyLog(d, signer, "old-st", rotate_entries=2)
    for i in range(3):
        log.append("pulled", n=i)
        log.maybe_rotate()
    log.close()
    assert newest_custody_station(d, hint) == "old-st" == owner(d) and listed
    # another station's entries after them (a reinstall under a new id): theirs
    log = CustodyLog(d, signer, "new-st", rotate_entries=100)
    log.append("pulled")
    log.close()
    assert newest_custody_station(d) == owner(d)
