"""Every protocol family end to end through the real daemon: a recorder
folder written by hand (protocol only, no USB ids) docked on a simulated
station, from the read-only probe through the storage switch to the archive;
what a station does with a wrong password; and a 4255:0001 nobody profiled."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.families import FAMILIES
from drivers.profiles import Registry
from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import DaemonProc, archive_hashes, attach, events, hand_made_recorder, source_hashes

pytestmark = pytest.mark.e2e

REGISTRY = Registry.load()
PROTOCOLS = list(FAMILIES)
WITH_PASSWORD = [p for p in PROTOCOLS if REGISTRY.default_for(p).password.source == "station"]
#: families with a read-only clock command: the dock record holds the measured drift
CLOCK_READ = {"bc-text", "e12-tcp", "zzx-json"}
#: families that set the clock by default (B can, but its profile leaves it off: reference §5)
CLOCK_SET = {"zfy-ctrl", "bc-text", "e12-tcp", "zzx-json", "dv16-scsi"}
#: families whose officer comes from the device's own record (plain storage: what detection read)
OFFICER_RECORD = {"ums", "zfy-ctrl", "bc-text", "e12-tcp", "zzx-json", "dv16-scsi"}


@pytest.fixture
def big_station(tmp_path: Path) -> Path:
    return write_station(tmp_path / "station", slots=8, reserve_bytes=0)


@pytest.fixture
def big_daemon(big_station: Path, tmp_path: Path) -> Iterator[DaemonProc]:
    d = DaemonProc(big_station, tmp_path / "daemon.log")
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.stop()


def recorder(root: Path, protocol: str, serial: str, officer: str, *, clips: int = 2, offset: float = 0.0,
             extra: str = "") -> Path:
    """A hand-written recorder folder with *clips* small clips named the way recorders name them."""
    storage = hand_made_recorder(root, serial, officer=officer, protocol=protocol,
                                 extra=f"clock_offset_s = {offset}\nstorage_settle_s = 0.3\n{extra}")
    if protocol == "amba-ctrl":  # named as [A]'s script reads them: the officer name, the time at 21-26
        day = storage / "DCIM" / "240305"
        day.mkdir(parents=True)
        for i in range(clips):
            (day / f"JDOE_____000{i}_2403051400{i:02d}.MP4").write_bytes(os.urandom(50_000 + i))
        return root
    day = storage / "DCIM" / "20240305"
    day.mkdir(parents=True)
    for i in range(clips):
        (day / f"{officer}_2024030514{i:02d}09_{i + 1:04d}.MP4").write_bytes(os.urandom(50_000 + i))
    return root


def test_every_family_is_probed_switched_identified_clocked_and_archived_once(
        big_station: Path, big_daemon: DaemonProc, tmp_path: Path) -> None:
    cfg = load_config(big_station)
    recs = {}
    for slot, protocol in enumerate(PROTOCOLS, start=1):
        offset = -300.0 + 97 * slot
        recs[protocol] = (recorder(tmp_path / protocol, protocol, f"S{slot}0000{slot}", f"0{slot}1234",
                                   offset=offset), slot, offset)
    big_daemon.start()
    for folder, slot, _ in recs.values():
        attach(big_station, folder, slot)
    total = 2 * len(recs)
    s = big_daemon.wait_for(lambda s: s["clips"]["archived"] == total and s["queue"]["clips"] == 0,
                            timeout=120, what=f"{total} clips from {len(recs)} families archived")
    want = sum((source_hashes(f / "storage") for f, _, _ in recs.values()), start=source_hashes(tmp_path / "x"))
    assert archive_hashes(cfg.archive.path) == want
    docks = {d["slot"]: d for d in s["recent_docks"]}
    for protocol, (_folder, slot, offset) in recs.items():
        d = docks[slot]
        officer = f"0{slot}1234" if protocol in OFFICER_RECORD else "JDOE" if protocol == "amba-ctrl" else None
        assert d["serial"] == f"S{slot}0000{slot}" and d["officer"] == officer, (protocol, d)
        if protocol in CLOCK_READ:
            assert abs(d["clock_drift_s"] - offset) <= 1.5, (protocol, d)
        else:
            assert d["clock_drift_s"] is None, (protocol, d)  # no read-only clock command in the family
        assert bool(d["clock_set"]) == (protocol in CLOCK_SET), (protocol, d)
        # the GA/T 947 IDCode where the family reads one; B's volume label, by which it was paired
        assert (d["idcode"] is not None) == (protocol in OFFICER_RECORD - {"ums"}), (protocol, d)
        if protocol == "amba-ascii":
            assert d["volume_label"] == f"S{slot}0000{slot}", (protocol, d)


def test_the_storage_switch_is_one_dock_session_not_a_foreign_device(station: Path, daemon: DaemonProc,
                                                                     tmp_path: Path) -> None:
    folder = recorder(tmp_path / "rec", "zfy-ctrl", "SW00001", "054321", clips=3)
    daemon.start()
    attach(station, folder, 1)
    s = daemon.wait_for(lambda s: s["clips"]["archived"] == 3, timeout=60, what="3 clips archived")
    assert not events(station, "foreign_device")
    (switched,) = events(station, "storage_switched")
    (docked,) = events(station, "docked")
    assert switched["slot"] == docked["slot"] == 1
    assert switched["data"]["dock_id"] == docked["data"]["dock_id"]
    assert [d["serial"] for d in s["recent_docks"] if d["slot"] == 1] == ["SW00001"]


@pytest.mark.parametrize("protocol", WITH_PASSWORD)
def test_wrong_password_is_named_per_slot_and_nothing_is_pulled(station: Path, daemon: DaemonProc,
                                                                tmp_path: Path, protocol: str) -> None:
    cfg = load_config(station)
    bad = recorder(tmp_path / "bad", protocol, "BADPW01", "054321", extra='password = "314159"\n')
    good = recorder(tmp_path / "good", "bc-text" if protocol != "bc-text" else "zzx-json", "GOOD001", "054322")
    daemon.start()
    attach(station, bad, 1)
    attach(station, good, 2)
    s = daemon.wait_for(lambda s: s["clips"]["archived"] == 2 and any(
        x["slot"] == 1 and x["state"] == "error" for x in s["slots"]), timeout=60, what="good archived, bad refused")
    slot1 = next(x for x in s["slots"] if x["slot"] == 1)
    assert "password" in slot1["message"]
    (wrong,) = events(station, "wrong_password")
    ids = REGISTRY.default_for(protocol).match
    assert wrong["slot"] == 1
    if ids.vid is not None:  # (DV16 is claimed by its INQUIRY text, its VID:PID unknown)
        assert wrong["data"]["device"].startswith(f"{ids.vid:04x}:{ids.pid:04x}")
    assert archive_hashes(cfg.archive.path) == source_hashes(good / "storage")


def test_an_unprofiled_4255_0001_gets_no_write_of_any_kind(station: Path, daemon: DaemonProc,
                                                         tmp_path: Path) -> None:
    unknown = recorder(tmp_path / "unknown", "zfy-ctrl", "BOOT001", "054321",
                       extra='vid = 0x4255\npid = 0x0001\nproduct = "Unknown Camera"\n')
    daemon.start()
    attach(station, unknown, 3)
    s = daemon.wait_for(lambda s: any(x["slot"] == 3 and x["state"] == "foreign" for x in s["slots"]),
                        what="foreign device flagged")
    assert sum(s["clips"].values()) == 0
    (foreign,) = events(station, "foreign_device")
    assert (foreign["data"]["vid"], foreign["data"]["pid"]) == ("4255", "0001")
    log = load_config(station).detect.sim_dir / "usb-transfers.jsonl"  # type: ignore[operator]
    lines = log.read_text().splitlines() if log.exists() else []
    assert [x for x in map(json.loads, lines) if x["serial"] == "BOOT001"] == []
