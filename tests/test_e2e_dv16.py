"""The DV16 family end to end through the real daemon: a recorder folder
written by hand (``protocol = "dv16-scsi"``, no USB ids) is claimed by its
INQUIRY text, docked, identified (IDCode, officer record) and archived; a
wrong password is refused on the station with nothing pulled and no secret
on the wire; a disk whose INQUIRY is not DV16's is left alone. The simulator
logs every SCSI command that reached a disk (``scsi-commands.jsonl``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from drivers.codec import dv16_scsi as d
from gateway.config import load_config
from tests.helpers import DaemonProc, archive_hashes, attach, dockgate, events, hand_made_recorder, source_hashes

pytestmark = pytest.mark.e2e


def recorder(root: Path, serial: str, *, extra: str = "", clips: int = 2) -> Path:
    storage = hand_made_recorder(root, serial, officer="065432", protocol="dv16-scsi",
                                 extra=f'idcode = "JL016"\nunit = "WEST STATION"\nclock_offset_s = -45.0\n{extra}')
    day = storage / "DCIM" / "20240305"
    day.mkdir(parents=True)
    for i in range(clips):
        (day / f"REC{i:04d}.MP4").write_bytes(os.urandom(40_000 + i))
    return root


def commands_to(station: Path, serial: str) -> list[dict[str, Any]]:
    log = load_config(station).detect.sim_dir / "scsi-commands.jsonl"  # type: ignore[operator]
    lines = log.read_text().splitlines() if log.exists() else []
    return [c for c in map(json.loads, lines) if c["serial"] == serial]


def station_password(station: Path) -> bytes:
    return load_config(station).recorders.admin_password_file.read_bytes().strip()  # type: ignore[union-attr]


def test_a_dv16_disk_is_identified_by_inquiry_and_archived_with_its_idcode(station: Path, daemon: DaemonProc,
                                                                          tmp_path: Path) -> None:
    folder = recorder(tmp_path / "dv16", "DV16001")
    daemon.start()
    attach(station, folder, 1)
    s = daemon.wait_for(lambda s: s["clips"]["archived"] == 2 and s["queue"]["clips"] == 0, timeout=60,
                        what="2 DV16 clips archived")
    assert archive_hashes(load_config(station).archive.path) == source_hashes(folder / "storage")
    (dock,) = [x for x in s["recent_docks"] if x["slot"] == 1]
    assert (dock["serial"], dock["officer"]) == ("DV16001", "065432")
    assert dock["clock_drift_s"] is None  # the SDK has no clock read (profile scsi.clock_read)
    assert dock["clock_set"]
    (docked,) = events(station, "docked")
    assert docked["data"]["profile"] == "dv16-scsi"
    (ident,) = events(station, "identified")
    assert ident["data"]["idcode"] == "JL016"
    sent = commands_to(station, "DV16001")
    assert bytes.fromhex(sent[0]["cdb"])[0] == d.INQUIRY  # the read-only probe first
    secret = station_password(station)
    assert all(secret not in bytes.fromhex(c["cdb"]) + bytes.fromhex(c["data_out"]) for c in sent)


def test_a_wrong_password_is_refused_with_nothing_pulled_and_no_secret_on_the_wire(
        station: Path, daemon: DaemonProc, tmp_path: Path) -> None:
    folder = recorder(tmp_path / "bad", "DV16BAD", extra='password = "314159"\n')
    daemon.start()
    attach(station, folder, 1)
    s = daemon.wait_for(lambda s: any(x["slot"] == 1 and x["state"] == "error" for x in s["slots"]),
                        what="wrong password refused")
    assert "password" in next(x for x in s["slots"] if x["slot"] == 1)["message"]
    assert len(events(station, "wrong_password")) == 1
    assert sum(s["clips"].values()) == 0
    sent = commands_to(station, "DV16BAD")
    # INQUIRY, then the password read (13): nothing else, and neither password went out
    assert [c["cdb"][:12] for c in sent] == [d.inquiry_cdb().hex(), d.read_cdb("admin_password").hex()[:12]]
    for secret in (station_password(station), b"314159"):
        assert all(secret not in bytes.fromhex(c["cdb"]) + bytes.fromhex(c["data_out"]) for c in sent)


def test_a_disk_whose_inquiry_is_not_dv16s_is_left_alone(station: Path, daemon: DaemonProc,
                                                         tmp_path: Path) -> None:
    folder = recorder(tmp_path / "other", "USBDSK1", extra='scsi_vendor = "Generic"\nscsi_model = "Flash Disk"\n')
    daemon.start()
    attach(station, folder, 2)
    s = daemon.wait_for(lambda s: any(x["slot"] == 2 and x["state"] == "foreign" for x in s["slots"]),
                        what="foreign disk flagged")
    assert sum(s["clips"].values()) == 0
    (foreign,) = events(station, "foreign_device")
    assert foreign["slot"] == 2
    assert foreign["data"]["inquiry"] == "genericflashdisk"  # what a profile's [match] inquiry would see
    assert commands_to(station, "USBDSK1") == []  # no vendor CDB, indeed no command at all


def test_a_dv16_clone_with_its_own_inquiry_gets_a_profile_from_profile_new_and_is_archived(
        station: Path, daemon: DaemonProc, tmp_path: Path) -> None:
    """A DV16 firmware that names itself differently is foreign at first (no
    profile claims its INQUIRY); `profile new --slot` writes a profile that
    matches that INQUIRY and probes for it, and after a restart it is served."""
    folder = recorder(tmp_path / "clone", "JL20001", extra='scsi_vendor = "JL"\nscsi_model = "DV20 CAM V2.1"\n')
    daemon.start()
    attach(station, folder, 2)
    daemon.wait_for(lambda s: any(x["slot"] == 2 and x["state"] == "foreign" for x in s["slots"]),
                    what="the clone flagged foreign")
    assert commands_to(station, "JL20001") == []
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    station.write_text(station.read_text().replace("[recorders]\n", f'[recorders]\nprofiles_dir = "{profiles}"\n', 1))
    out = profiles / "jl-dv20.toml"
    dockgate("profile", "new", "--slot", "2", "--protocol", "dv16-scsi", "-c", str(station), "-o", str(out))
    text = out.read_text()
    assert "inquiry = '^jldv20camv2\\.1$'" in text and "inquiry_key = 'jldv20camv2.1'" in text, text
    dockgate("check-config", "-c", str(station))
    assert daemon.stop() == 0
    daemon.start()
    daemon.wait_for(lambda s: s["clips"]["archived"] == 2, timeout=60, what="the clone served once profiled")
    docked = events(station, "docked")
    assert docked[-1]["data"]["profile"] == "site-" + out.read_text().split("name = 'site-", 1)[1].split("'")[0]
    (ident,) = events(station, "identified")
    assert ident["data"]["idcode"] == "JL016"
    assert archive_hashes(load_config(station).archive.path) == source_hashes(folder / "storage")
