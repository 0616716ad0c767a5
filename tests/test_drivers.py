"""One driver suite every protocol family passes, on simulated hardware
served through the real library paths (the volume; pyusb core on the
simulated bus; a TCP socket), in the order every vendor tool uses: probe,
unlock, identify, clock, enter storage, attach the storage, read clips.

The family list is the family table itself (``drivers.families.FAMILIES``)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.base import DeviceGone, DeviceTimeout, DriverError, NotProbed, Recorder, WrongPassword
from drivers.detect.sim import SimDetector
from drivers.families import FAMILIES, open_recorder
from drivers.profiles import Registry
from drivers.sim.firmware import SimFirmware
from drivers.sim.make import make_recorder

REGISTRY = Registry.load()
PROTOCOLS = list(FAMILIES)
COMMAND_FAMILIES = [p for p in PROTOCOLS if p != "ums"]
WITH_PASSWORD = [p for p in PROTOCOLS if REGISTRY.default_for(p).password.source == "station"]
#: what each family's probe may send: its read-only commands, as the firmware logs them
READ_ONLY = {"amba-ctrl": [], "amba-ascii": ["Ver"], "zfy-ctrl": ["20"], "bc-text": ["GBIDCODE?"],
             "e12-tcp": ["F808", "S009"], "zzx-json": ["2"], "dv16-scsi": ["inquiry"]}
#: families with a read-only clock command (the others cannot measure drift)
CLOCK_READ = {"bc-text", "e12-tcp", "zzx-json"}
#: families whose officer record comes from the device (A and B: from file names)
OFFICER_RECORD = {"zfy-ctrl", "bc-text", "e12-tcp", "zzx-json", "dv16-scsi"}
#: families whose clips are on the disk they take commands through (DV16): no re-enumeration
SAME_DISK = {"dv16-scsi"}
OFFSET = -120.0


@dataclass
class Dock:
    det: SimDetector
    rec: Recorder
    folder: Path
    protocol: str

    @property
    def firmware(self) -> SimFirmware:
        docked = self.det.docked(1)
        assert docked is not None and docked.firmware is not None
        return docked.firmware

    def to_storage(self) -> None:
        switch = self.rec.enter_storage()
        if switch is None:
            return
        storage = self.det.storage_device(1, timeout=10)
        assert storage is not None
        self.rec.attach_storage(storage)


def dock(tmp_path: Path, protocol: str, password: str = "000000") -> Dock:
    folder = tmp_path / f"rec-{protocol}"
    make_recorder(folder, clips=3, size=300_000, serial="SN12345", officer="065432", unit="交警一中队",
                  protocol=protocol, password=password, clock_offset_s=OFFSET)
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    profile = REGISTRY.match(device.ids)
    assert profile is not None and profile.protocol == protocol
    return Dock(det, open_recorder(device, profile), folder, protocol)


@pytest.fixture(params=PROTOCOLS)
def docked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dock]:
    d = dock(tmp_path, request.param)
    yield d
    d.rec.close()
    d.det._unplug_slot(1)


@pytest.fixture(params=COMMAND_FAMILIES)
def commanded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dock]:
    d = dock(tmp_path, request.param)
    yield d
    d.rec.close()
    d.det._unplug_slot(1)


def test_probe_sends_only_the_familys_read_only_commands(commanded: Dock) -> None:
    probe = commanded.rec.probe()
    assert probe.family == commanded.protocol
    assert commanded.firmware.log == READ_ONLY[commanded.protocol]


def test_a_write_before_the_probe_is_refused_and_reaches_nothing(commanded: Dock) -> None:
    for write in (lambda: commanded.rec.unlock("000000"), lambda: commanded.rec.set_clock(datetime.now(UTC)),
                  commanded.rec.enter_storage):
        with pytest.raises(NotProbed) as e:
            write()
        assert e.value.permanent
    assert commanded.firmware.log == []


def test_identify_reads_what_the_device_holds(docked: Dock) -> None:
    docked.rec.probe()
    docked.rec.unlock("000000")
    ident = docked.rec.identify()
    assert ident.serial == "SN12345"
    if docked.protocol in OFFICER_RECORD:
        assert (ident.officer, ident.unit) == ("065432", "交警一中队")
    elif docked.protocol != "ums":
        assert ident.officer is None  # the session takes it from the file names


def test_clock_drift_is_measured_where_the_family_can_read_the_clock(docked: Dock) -> None:
    docked.rec.probe()
    docked.rec.unlock("000000")
    clock = docked.rec.read_clock()
    if docked.protocol not in CLOCK_READ:
        assert clock is None
        return
    assert clock is not None
    drift = (clock - datetime.now(UTC)).total_seconds()
    assert OFFSET - 2 <= drift <= OFFSET + 1  # device.toml's offset, to the clock's 1 s resolution


def test_set_clock_moves_the_recorders_clock_to_true_time(docked: Dock) -> None:
    docked.rec.probe()
    docked.rec.unlock("000000")
    was_set = docked.rec.set_clock(datetime.now(UTC))
    # A has no clock command; B's profile leaves its unconfirmed clock set off (reference §5)
    assert was_set is (docked.protocol not in ("ums", "amba-ctrl", "amba-ascii"))
    if was_set:
        assert abs((docked.firmware.clock.now_utc() - datetime.now(UTC)).total_seconds()) < 2


def test_storage_is_unreachable_before_the_switch(commanded: Dock) -> None:
    commanded.rec.probe()
    commanded.rec.unlock("000000")
    with pytest.raises(DriverError) as e:
        list(commanded.rec.list_clips(lambda s: None))
    assert e.value.permanent


def test_after_the_switch_clips_are_listed_read_and_deleted(docked: Dock) -> None:
    rec = docked.rec
    rec.probe()
    rec.unlock("000000")
    rec.identify()
    docked.to_storage()
    refs = list(rec.list_clips(lambda s: None))
    files = sorted(p for p in (docked.folder / "storage").rglob("*") if p.is_file())
    assert len(refs) == len(files) == 3
    for ref in refs:
        with rec.open_clip(ref) as f:
            data = f.read()
        assert hashlib.sha256(data).digest() == hashlib.sha256(
            (docked.folder / "storage" / ref.relpath.decode()).read_bytes()).digest()
    rec.delete_clip(refs[0])
    assert len(list(rec.list_clips(lambda s: None))) == 2


@pytest.mark.parametrize("protocol", [p for p in COMMAND_FAMILIES if p not in SAME_DISK])
def test_a_command_after_the_switch_fails_as_a_gone_device(tmp_path: Path, protocol: str) -> None:
    # (DV16's command interface is the disk itself and stays: tests/test_dv16_scsi.py)
    d = dock(tmp_path, protocol)
    try:
        rec = d.rec
        rec.probe()
        rec.unlock("000000")
        rec.enter_storage()
        assert d.det.storage_device(1, timeout=10) is not None
        with pytest.raises((DeviceGone, DeviceTimeout)) as e:
            rec.probe()
        assert not e.value.permanent
    finally:
        d.rec.close()
        d.det._unplug_slot(1)


def test_close_is_safe_twice_and_after_the_switch(docked: Dock) -> None:
    docked.rec.probe()
    docked.rec.unlock("000000")
    docked.to_storage()
    docked.rec.close()
    docked.rec.close()


@pytest.mark.parametrize("protocol", WITH_PASSWORD)
def test_wrong_password_is_refused_and_the_recorder_stays_shut(tmp_path: Path, protocol: str) -> None:
    d = dock(tmp_path, protocol, password="135790")
    try:
        d.rec.probe()
        with pytest.raises(WrongPassword) as e:
            d.rec.unlock("000000")
        assert e.value.permanent
        assert not d.firmware.switched.is_set()
        with pytest.raises(DriverError):
            list(d.rec.list_clips(lambda s: None))
    finally:
        d.rec.close()
        d.det._unplug_slot(1)


def test_e12_password_is_compared_on_the_station_without_any_write(tmp_path: Path) -> None:
    d = dock(tmp_path, "e12-tcp", password="135790")
    try:
        d.rec.probe()
        with pytest.raises(WrongPassword):
            d.rec.unlock("000000")
        assert d.firmware.log == ["F808", "S009", "S010"]  # ping, IDCode, read the password: nothing else
    finally:
        d.rec.close()
        d.det._unplug_slot(1)


@pytest.mark.parametrize("protocol", COMMAND_FAMILIES)
def test_an_undocked_recorder_gives_a_transient_typed_error(tmp_path: Path, protocol: str) -> None:
    d = dock(tmp_path, protocol)
    try:
        d.rec.probe()
        d.rec.unlock("000000")
        d.det._unplug_slot(1)
        with pytest.raises((DeviceGone, DeviceTimeout)) as e:
            d.rec.identify() if protocol != "amba-ctrl" else d.rec.enter_storage()
        assert not e.value.permanent
    finally:
        d.rec.close()


# -- a device node udev has not yet given to the dockgate group -------------------------
def _deny(seconds: float) -> None:
    from drivers.sim.usb_backend import SIM_USB

    for dev in SIM_USB.enumerate_devices():
        dev.denied_until = time.monotonic() + seconds


def test_a_usb_recorder_refused_for_a_moment_after_docking_is_opened_once_udev_allows(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    make_recorder(folder, clips=1, size=1000, serial="SN12345", officer="065432", protocol="amba-ascii")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    _deny(0.6)  # udev still applying GROUP/MODE when the dock is announced
    rec = open_recorder(device, REGISTRY.match(device.ids))  # type: ignore[arg-type]
    try:
        rec.probe()
    finally:
        rec.close()
        det._unplug_slot(1)


def test_a_usb_recorder_never_ours_names_the_udev_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import drivers.transport

    monkeypatch.setattr(drivers.transport, "PERMISSION_WAIT_S", 0.3)
    folder = tmp_path / "rec"
    make_recorder(folder, clips=1, size=1000, serial="SN12345", officer="065432", protocol="amba-ascii")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    _deny(60)
    try:
        with pytest.raises(DeviceGone, match="udev rules"):
            rec = open_recorder(device, REGISTRY.match(device.ids))  # type: ignore[arg-type]
            rec.probe()
    finally:
        det._unplug_slot(1)
