"""Every protocol family end to end through the real daemon, plus what a
station does with a wrong password and with a USB device nobody knows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config import load_config
from tests.helpers import DaemonProc, archive_hashes, dockgate, source_hashes

pytestmark = pytest.mark.e2e


def events(station: Path) -> list[dict]:
    out = dockgate("events", "-c", str(station), "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


def test_every_family_is_identified_clocked_and_archived(station: Path, daemon: DaemonProc,
                                                         tmp_path: Path) -> None:
    cfg = load_config(station)
    recs = {}
    for slot, (protocol, offset) in enumerate([("ums", 0), ("zfy", -300), ("zfy-serial", 42), ("amba", 3600)],
                                              start=1):
        folder = tmp_path / protocol
        dockgate("sim", "make", str(folder), "--protocol", protocol, "--clips", "3", "--size", "200k",
                 "--serial", f"S{slot}00000{slot}", "--officer", f"00{slot}1234",
                 "--clock-offset", str(offset))
        recs[protocol] = (folder, slot, offset)
    daemon.start()
    for folder, slot, _ in recs.values():
        dockgate("sim", "attach", str(folder), "-c", str(station), "--slot", str(slot))
    s = daemon.wait_for(lambda s: s["clips"]["archived"] == 12 and s["queue"]["clips"] == 0,
                        timeout=60, what="12 clips from 4 families archived")
    want = sum((source_hashes(f / "storage") for f, _, _ in recs.values()), start=source_hashes(tmp_path / "x"))
    assert archive_hashes(cfg.archive.path) == want
    docks = {d["slot"]: d for d in s["recent_docks"]}
    for protocol, (_folder, slot, offset) in recs.items():
        d = docks[slot]
        assert d["serial"] == f"S{slot}00000{slot}" and d["officer"] == f"00{slot}1234", d
        if protocol == "ums":
            assert d["clock_drift_s"] is None  # plain storage has no clock to read
        else:
            assert abs(d["clock_drift_s"] - offset) <= 1.5, d
            assert d["clock_set"] == 1


def test_wrong_password_refused_while_other_slots_work(station: Path, daemon: DaemonProc,
                                                       tmp_path: Path) -> None:
    cfg = load_config(station)
    bad = tmp_path / "bad"
    good = tmp_path / "good"
    dockgate("sim", "make", str(bad), "--protocol", "zfy", "--password", "314159", "--serial", "BADPW01",
             "--clips", "2", "--size", "100k")
    dockgate("sim", "make", str(good), "--protocol", "amba", "--serial", "GOOD001", "--clips", "2",
             "--size", "100k")
    daemon.start()
    dockgate("sim", "attach", str(bad), "-c", str(station), "--slot", "1")
    dockgate("sim", "attach", str(good), "-c", str(station), "--slot", "2")
    s = daemon.wait_for(lambda s: s["clips"]["archived"] == 2 and any(
        x["slot"] == 1 and x["state"] == "error" for x in s["slots"]), what="good archived, bad refused")
    slot1 = next(x for x in s["slots"] if x["slot"] == 1)
    assert "password" in slot1["message"]
    wrong = [e for e in events(station) if e["type"] == "wrong_password"]
    assert len(wrong) == 1 and wrong[0]["slot"] == 1 and "1209:0002" in wrong[0]["data"]["device"]
    assert archive_hashes(cfg.archive.path) == source_hashes(good / "storage")
    assert "slot 1" in daemon.log.read_text() and "password" in daemon.log.read_text()


def test_unknown_usb_storage_is_not_read(station: Path, daemon: DaemonProc, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    (stick / "storage").mkdir(parents=True)
    (stick / "storage" / "holiday.mp4").write_bytes(b"not evidence")
    (stick / "device.toml").write_text('serial = "KINGSTON1"\nprotocol = "ums"\nvid = 0x0951\npid = 0x1666\n')
    daemon.start()
    dockgate("sim", "attach", str(stick), "-c", str(station), "--slot", "4")
    s = daemon.wait_for(lambda s: any(x["slot"] == 4 and x["state"] == "foreign" for x in s["slots"]),
                        what="foreign device flagged")
    assert sum(s["clips"].values()) == 0
    foreign = [e for e in events(station) if e["type"] == "foreign_device"]
    assert foreign and foreign[0]["data"]["vid"] == "0951"
    assert not any(load_config(station).archive.path.rglob("*.mp4"))
