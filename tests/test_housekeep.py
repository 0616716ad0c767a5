"""Housekeeping for a year: custody segments and checkpoints leave the
station only once the archive holds every one of them (and the TSA's token,
where there is one), never the newest; the setting is checked and named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config import config_from_dict
from gateway.errors import ConfigError
from gateway.evidence.checkpoint import checkpoint_name
from gateway.pipeline.housekeep import DAY, prunable

BASE = {"station": {"id": "s1"}, "archive": {"backend": "directory", "path": "/srv/archive"},
        "evidence": {"signing_key_file": "k.pem"}}


def _custody(tmp: Path, segments: int, lines: int = 3, age_days: float = 40) -> list[str]:
    names = []
    old = os.path.getmtime(tmp) - age_days * DAY
    for i in range(segments):
        first = 1 + i * lines
        seg = tmp / f"custody-s1-{first:010d}.jsonl"
        seg.write_bytes(b"{}\n" * lines)
        cp = checkpoint_name("s1", first + lines - 1)
        for name in (cp, cp + ".sig", cp + ".tsr"):
            (tmp / name).write_text("x")
        for p in (seg, tmp / cp):
            os.utime(p, (old, old))
        names += [seg.name, cp, cp + ".sig", cp + ".tsr"]
    (tmp / f"custody-s1-{1 + segments * lines:010d}.open.jsonl").write_bytes(b"{}\n")
    return names


def test_archived_old_segments_go_but_never_the_newest(tmp_path):
    names = _custody(tmp_path, 3)
    gone = {p.name for p in prunable(tmp_path, set(names), 30 * DAY, os.path.getmtime(tmp_path), witness=False)}
    assert gone == {n for n in names[:8] if not n.endswith(".tsr")}  # the first two segments; tokens not asked


def test_a_segment_not_archived_or_too_young_stays(tmp_path):
    names = _custody(tmp_path, 3)
    now = os.path.getmtime(tmp_path)
    assert prunable(tmp_path, set(names[1:]), 30 * DAY, now, witness=False)[0].name == names[4]
    assert prunable(tmp_path, set(names), 60 * DAY, now, witness=False) == []


def test_with_a_tsa_the_token_must_be_archived_too(tmp_path):
    names = _custody(tmp_path, 2)
    now = os.path.getmtime(tmp_path)
    assert prunable(tmp_path, set(names) - {names[3]}, 30 * DAY, now, witness=True) == []
    assert len(prunable(tmp_path, set(names), 30 * DAY, now, witness=True)) == 4


@pytest.mark.parametrize("value", [0, -1, "soon", 100_000])
def test_a_bad_custody_keep_days_is_named(value):
    with pytest.raises(ConfigError) as e:
        config_from_dict({**BASE, "evidence": {**BASE["evidence"], "custody_keep_days": value}},
                         Path("/etc/dockgate/dockgate.toml"))
    assert any("evidence.custody_keep_days" in p for p in e.value.problems), e.value.problems


def test_custody_stays_on_the_station_by_default():
    assert config_from_dict(dict(BASE), Path("/etc/dockgate/dockgate.toml")).evidence.custody_keep_days is None


def test_a_slot_waiting_for_staging_room_keeps_the_catalog_rewrite_away() -> None:
    """A slot that waits for room is no longer counted as pulling (the uploads make its room),
    but the housekeeper still treats the docks as busy: a compaction would take the disk's last
    room for its copy of the catalog and hold the writer the uploads commit through."""
    from types import SimpleNamespace

    from gateway.pipeline.live import StationState
    from gateway.process.daemon import Daemon

    state = StationState(2)
    station = SimpleNamespace(state=state)
    assert not Daemon._docks_busy(station)  # type: ignore[arg-type]
    state.slots[2].state = "waiting"
    assert Daemon._docks_busy(station) and not state.pulling  # type: ignore[arg-type]
    state.slots[2].state, state.pulling[1] = "done", 7
    assert Daemon._docks_busy(station)  # type: ignore[arg-type]
