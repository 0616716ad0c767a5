"""The DV16 driver against the simulated recorder, through the real SG_IO
code path (``drivers/sgio.py`` builds every ``sg_io_hdr``; the simulator
answers at the ioctl, ``drivers/sim/sgio_backend.py``): what goes to the
device, in which order, and what never does (a password; any vendor CDB to a
disk whose INQUIRY is not the family's)."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import (
    CommandFailed,
    DeviceGone,
    DeviceTimeout,
    DockedDevice,
    DriverError,
    NotRecognised,
    WrongPassword,
)
from drivers.codec import dv16_scsi as d
from drivers.detect.sim import SimDetector
from drivers.dv16_scsi import Dv16ScsiRecorder
from drivers.ids import UsbIds
from drivers.profiles import Profile, Registry
from drivers.sgio import DID_TIME_OUT, SG_IO, SgIoHdr, SgLink
from drivers.sim.device import SimDevice
from drivers.sim.firmware_scsi import Dv16Firmware
from drivers.sim.sgio_backend import SIM_SG
from tests.helpers import dockgate, hand_made_recorder

REGISTRY = Registry.load()
PROFILE = REGISTRY.default_for("dv16-scsi")


class Dock:
    def __init__(self, det: SimDetector, device: DockedDevice, profile: Profile) -> None:
        self.det = det
        self.device = device
        self.rec = Dv16ScsiRecorder(device, profile)

    @property
    def firmware(self) -> Dv16Firmware:
        docked = self.det.docked(1)
        assert docked is not None and isinstance(docked.firmware, Dv16Firmware)
        return docked.firmware

    def sent(self) -> list[tuple[bytes, bytes]]:
        """(CDB, data-out) of every command that reached the disk."""
        return [(c.cdb, c.data_out) for c in SIM_SG.sent_to(self.device.hints["scsi_node"])]


MakeDock = Callable[..., Dock]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[MakeDock]:
    docks: list[Dock] = []

    def _make(extra: str = "", profile: Profile = PROFILE, password: str = "135790") -> Dock:
        folder = tmp_path / f"rec{len(docks)}"
        storage = hand_made_recorder(folder, "DV00001", officer="065432", protocol="dv16-scsi",
                                     extra=f'password = "{password}"\nunit = "交警一中队"\nidcode = "JL016"\n'
                                           f"clock_offset_s = -120.0\n{extra}")
        (storage / "DCIM").mkdir()
        (storage / "DCIM" / "065432_20240305140709_0001.MP4").write_bytes(b"x" * 1000)
        det = SimDetector(tmp_path / f"dock{len(docks)}", 4, REGISTRY)
        dock = Dock(det, det.describe(1, folder), profile)
        docks.append(dock)
        return dock

    yield _make
    for dock in docks:
        dock.rec.close()
        dock.det._unplug_slot(1)


def test_the_dock_reads_idcode_record_and_battery_and_never_sends_the_password(make: MakeDock) -> None:
    dock = make()
    assert REGISTRY.match(dock.device.ids) is PROFILE  # claimed by its INQUIRY text, not by VID:PID
    rec = dock.rec
    assert rec.probe().detail == "INQUIRY DV16|DEVICE V1.00|1.00"
    rec.unlock("135790")
    ident = rec.identify()
    assert (ident.serial, ident.officer, ident.unit, ident.idcode, ident.battery_pct) == (
        "DV00001", "065432", "交警一中队", "JL016", 85)
    assert rec.read_clock() is None  # the SDK has no clock read
    assert rec.set_clock(datetime.now(UTC))
    assert abs((dock.firmware.clock.now_utc() - datetime.now(UTC)).total_seconds()) < 2
    assert rec.enter_storage() is None  # the clips are on this same disk
    assert [r.name for r in rec.list_clips(lambda s: None)] == ["065432_20240305140709_0001.MP4"]
    assert dock.firmware.log == ["inquiry", "r13", "w01", "r02", "r14", "r03", "r14", "r08", "r14",
                                 "w05", "r14", "r12", "w06", "tur"]
    sent = dock.sent()
    assert [c for c, _ in sent] == [c for c, _ in dock.firmware.cdbs]  # every one through SG_IO
    assert all(b"135790" not in cdb + out for cdb, out in sent)


def test_a_wrong_password_is_refused_on_the_station_and_nothing_else_is_sent(make: MakeDock) -> None:
    dock = make()
    dock.rec.probe()
    with pytest.raises(WrongPassword) as e:
        dock.rec.unlock("000000")
    assert e.value.permanent
    for later in (dock.rec.identify, dock.rec.enter_storage, lambda: dock.rec.set_clock(datetime.now(UTC))):
        with pytest.raises(CommandFailed):
            later()
    with pytest.raises(Exception):  # noqa: B017 - any driver error: the storage is not reachable
        list(dock.rec.list_clips(lambda s: None))
    assert dock.firmware.log == ["inquiry", "r13"]
    assert all(b"000000" not in cdb + out and b"135790" not in cdb + out for cdb, out in dock.sent())
    assert not dock.firmware.switched.is_set()


def test_a_disk_whose_inquiry_is_not_dv16_gets_no_vendor_cdb(make: MakeDock) -> None:
    dock = make('scsi_vendor = "Generic"\nscsi_model = "Flash Disk"\n')
    assert REGISTRY.match(dock.device.ids) is None  # no profile claims it: the station leaves it alone
    with pytest.raises(NotRecognised) as e:
        dock.rec.probe()  # even with the DV16 profile forced on it
    assert e.value.permanent
    with pytest.raises(Exception):  # noqa: B017 - NotProbed
        dock.rec.unlock("135790")
    assert dock.firmware.log == ["inquiry"]
    assert [cdb[0] for cdb, _ in dock.sent()] == [d.INQUIRY]


def test_drift_is_measured_only_where_the_profile_opts_into_the_inferred_clock_read(make: MakeDock) -> None:
    profile = PROFILE.model_copy(update={"scsi": PROFILE.scsi.model_copy(update={"clock_read": True})})
    dock = make("clock_read = true\n", profile)
    dock.rec.probe()
    dock.rec.unlock("135790")
    clock = dock.rec.read_clock()
    assert clock is not None
    assert -122 <= (clock - datetime.now(UTC)).total_seconds() <= -119
    assert dock.firmware.log[-1] == "r05"


def test_without_an_sd_card_the_switch_is_refused_and_sub_command_6_never_sent(make: MakeDock) -> None:
    dock = make("sd_card = false\n")
    dock.rec.probe()
    dock.rec.unlock("135790")
    with pytest.raises(CommandFailed, match="no SD card"):
        dock.rec.enter_storage()
    assert "w06" not in dock.firmware.log


def test_a_profile_that_says_the_disk_already_shows_the_card_sends_no_switch(make: MakeDock) -> None:
    profile = PROFILE.model_copy(update={"scsi": PROFILE.scsi.model_copy(update={"storage_switch": "none"})})
    dock = make("", profile)
    dock.rec.probe()
    dock.rec.unlock("135790")
    assert dock.rec.enter_storage() is None
    assert dock.firmware.log == ["inquiry", "r13"]
    assert len(list(dock.rec.list_clips(lambda s: None))) == 1


def test_an_undocked_disk_is_a_transient_gone_device(make: MakeDock) -> None:
    dock = make()
    dock.rec.probe()
    dock.det._unplug_slot(1)
    with pytest.raises(DeviceGone) as e:
        dock.rec.unlock("135790")
    assert not e.value.permanent


# -- the SG_IO seam and its failure classes ------------------------------------------------

def test_sg_io_hdr_is_the_kernels_88_byte_struct() -> None:
    assert ctypes.sizeof(SgIoHdr) == 88 and SG_IO == 0x2285
    assert SgIoHdr.cmdp.offset == 24 and SgIoHdr.status.offset == 64 and SgIoHdr.info.offset == 80


class Scripted:
    """A kernel that answers every SG_IO one way."""

    def __init__(self, *, status: int = 0, sense: bytes = b"", host: int = 0, error: int | None = None) -> None:
        self.status, self.sense, self.host, self.error = status, sense, host, error

    def open(self, node: str) -> int:
        return 3

    def close(self, fd: int) -> None:
        pass

    def ioctl(self, fd: int, request: int, hdr: SgIoHdr) -> None:
        if self.error is not None:
            raise OSError(self.error, "scripted")
        hdr.status, hdr.host_status = self.status, self.host
        if self.sense:
            ctypes.memmove(hdr.sbp, self.sense, len(self.sense))
            hdr.sb_len_wr = len(self.sense)
        hdr.resid = hdr.dxfer_len


@pytest.mark.parametrize(("kernel", "error", "permanent"), [
    (Scripted(status=2, sense=d.sense_data(d.ILLEGAL_REQUEST, 0x20)), CommandFailed, True),
    (Scripted(status=2, sense=d.sense_data(d.NOT_READY, 0x3A)), CommandFailed, False),
    (Scripted(status=2, sense=d.sense_data(d.UNIT_ATTENTION, 0x28)), CommandFailed, False),
    (Scripted(status=0x08), CommandFailed, False),
    (Scripted(host=DID_TIME_OUT), DeviceTimeout, False),
    (Scripted(host=0x01), DeviceGone, False),
    (Scripted(error=errno.ENODEV), DeviceGone, False),
    (Scripted(error=errno.EACCES), DeviceGone, False),
    (Scripted(error=errno.EPERM), CommandFailed, True),  # a block node filtering vendor opcodes: no retry helps
    (Scripted(error=errno.ENOTTY), CommandFailed, True),
])
def test_sg_io_failures_are_classified_as_the_driver_contract_says(kernel: Scripted, error: type[DriverError],
                                                                   permanent: bool) -> None:
    link = SgLink("/dev/sg9", "slot 1", kernel)
    with pytest.raises(error) as e:
        link.read(d.read_cdb("idcode"), 6, "idcode")
    assert e.value.permanent is permanent


def test_the_real_ioctl_path_reaches_the_kernel(tmp_path: Path) -> None:
    """fcntl.ioctl with the header, as on a real sg node; a plain file says ENOTTY."""
    f = tmp_path / "not-a-disk"
    f.write_bytes(b"")
    with pytest.raises(CommandFailed) as e:
        SgLink(str(f), "slot 1").execute(d.inquiry_cdb(), "inquiry", data_in=36)
    assert e.value.permanent and "Inappropriate ioctl" in str(e.value)


def test_an_inquiry_profile_is_told_apart_from_a_vid_pid_profile() -> None:
    dv16 = UsbIds(0x1209, 0x0001, "X", scsi_vendor="DV16", scsi_model="DEVICE V1.00")
    assert REGISTRY.match(dv16) is PROFILE  # more specific than generic-ums's 1209:0001
    assert REGISTRY.match(UsbIds(0x1209, 0x0001, "X")).name == "generic-ums"  # type: ignore[union-attr]


def test_sim_make_makes_a_dv16_recorder_the_simulated_dock_presents_as_a_dv16_disk(tmp_path: Path) -> None:
    dockgate("sim", "make", str(tmp_path / "rec"), "--protocol", "dv16-scsi", "--clips", "2", "--size", "1000")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    try:
        device = det.describe(1, tmp_path / "rec")
        assert device.volume == (tmp_path / "rec" / "storage").resolve()
        assert (device.ids.scsi_vendor, device.ids.scsi_model) == ("DV16", "DEVICE V1.00")
        assert REGISTRY.match(device.ids) is PROFILE
        rec = Dv16ScsiRecorder(device, PROFILE)
        rec.probe()
        rec.unlock("000000")
        assert rec.identify().serial == "SIM0001"
        rec.close()
    finally:
        det._unplug_slot(1)


@settings(max_examples=300, deadline=200)
@given(cdb=st.binary(min_size=0, max_size=16), data_out=st.binary(max_size=64), n=st.integers(0, 512))
def test_the_simulated_firmware_answers_any_cdb_with_a_status_and_never_raises(cdb: bytes, data_out: bytes,
                                                                             n: int) -> None:
    """What a gadget may feed it from any CBW."""
    fw = FIRMWARE
    status, data, sense = fw.handle_cdb(cdb, data_out, n)
    assert status in (d.GOOD, d.CHECK_CONDITION) and len(data) <= n
    assert (status == d.CHECK_CONDITION) == bool(sense)


FIRMWARE = Dv16Firmware(SimDevice(serial="DV00001", protocol="dv16-scsi"))
