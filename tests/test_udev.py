"""The udev path, fed with device properties recorded from real docks (no
udev daemon in CI)."""

from __future__ import annotations

from pathlib import Path

from drivers.detect import Attached, Detached, DetectProblem
from drivers.detect.udev import (
    UdevTranslator,
    could_be_recorder,
    ids_from_properties,
    mounted_volume,
    scsi_disk,
    volume_label,
)
from drivers.profiles import Registry

DEVPATH = "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2"
RECORDER = {  # udevadm info -q property, a mass-storage recorder in disk mode
    "ACTION": "add", "DEVPATH": DEVPATH, "SUBSYSTEM": "usb", "DEVTYPE": "usb_device",
    "DEVNAME": "/dev/bus/usb/001/007", "BUSNUM": "001", "DEVNUM": "007", "MAJOR": "189", "MINOR": "6",
    "PRODUCT": "1209/1/100", "TYPE": "0/0/0", "ID_VENDOR": "dockgate", "ID_VENDOR_ENC": "dockgate",
    "ID_VENDOR_ID": "1209", "ID_MODEL": "Body_Camera", "ID_MODEL_ENC": "Body\\x20Camera",
    "ID_MODEL_ID": "0001", "ID_REVISION": "0100", "ID_SERIAL": "dockgate_Body_Camera_SN0042",
    "ID_SERIAL_SHORT": "SN0042", "ID_BUS": "usb", "ID_USB_INTERFACES": ":080650:",
}
VENDOR = {**RECORDER, "ID_VENDOR_ID": "4255", "ID_MODEL_ID": "0001", "ID_USB_INTERFACES": ":ff0000:"}
HUB = {**RECORDER, "ID_VENDOR_ID": "05e3", "ID_MODEL_ID": "0610", "ID_USB_INTERFACES": ":090000:"}
KEYBOARD = {**RECORDER, "ID_VENDOR_ID": "046d", "ID_MODEL_ID": "c31c", "ID_USB_INTERFACES": ":030101:030000:"}


def test_properties_to_ids() -> None:
    ids = ids_from_properties(RECORDER)
    assert ids is not None
    assert (ids.vid, ids.pid, ids.serial, ids.product) == (0x1209, 1, "SN0042", "Body Camera")
    assert ids_from_properties({"ID_VENDOR_ID": "zz"}) is None


def test_only_possible_recorders_are_reported() -> None:
    assert could_be_recorder(RECORDER)
    assert not could_be_recorder(HUB)
    assert not could_be_recorder(KEYBOARD)
    assert not could_be_recorder({**RECORDER, "DEVTYPE": "usb_interface"})


def mounted(tmp_path: Path, devpath: str = DEVPATH) -> tuple[Path, Path]:
    """A sysfs tree with sdb1 under *devpath*, and a mountinfo mounting it."""
    sysroot = tmp_path / "sys"
    block = sysroot / devpath.lstrip("/") / "1-1.2:1.0" / "host6" / "target6:0:0" / "6:0:0:0" / "block" / "sdb"
    (block / "sdb1").mkdir(parents=True, exist_ok=True)
    (block / "dev").write_text("8:16\n")
    (block / "sdb1" / "dev").write_text("8:17\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n"
                         "99 22 8:17 / /media/dock\\040bay ro,nosuid - vfat /dev/sdb1 ro\n")
    return sysroot, mountinfo


def test_add_and_remove_map_ports_to_slots(tmp_path: Path) -> None:
    t = UdevTranslator(slots=4, ports={"1-1.2": 3}, sys_root=tmp_path)
    (ev,) = t.handle("add", DEVPATH, VENDOR)
    assert isinstance(ev, Attached) and ev.device.slot == 3
    assert ev.device.hints["usb_bus"] == "1" and ev.device.hints["usb_address"] == "7"
    assert t.handle("bind", DEVPATH, RECORDER) == []          # not reported twice
    other = DEVPATH.replace("1-1.2", "1-1.4")
    (ev2,) = t.handle("add", other, VENDOR)
    assert isinstance(ev2, Attached) and ev2.device.slot == 1  # lowest free, 3 is reserved
    assert t.handle("add", "/x/1-9", HUB) == []
    assert t.handle("remove", DEVPATH, {}) == [Detached(3)]
    assert t.handle("remove", "/never/seen", {}) == []


def test_no_free_slot_is_reported(tmp_path: Path) -> None:
    t = UdevTranslator(slots=1, ports={}, sys_root=tmp_path)
    t.handle("add", DEVPATH, VENDOR)
    (ev,) = t.handle("add", DEVPATH + "x", VENDOR)
    assert isinstance(ev, DetectProblem)


def test_mounted_volume_from_sysfs_and_mountinfo(tmp_path: Path) -> None:
    sysroot, mountinfo = mounted(tmp_path)
    assert mounted_volume(DEVPATH, sysroot, mountinfo) == Path("/media/dock bay")
    mountinfo.write_text("22 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n")
    assert mounted_volume(DEVPATH, sysroot, mountinfo) is None


def test_a_storage_only_device_is_reported_once_its_volume_is_mounted(tmp_path: Path) -> None:
    sysroot, mountinfo = mounted(tmp_path)
    real = mountinfo.read_text()
    mountinfo.write_text("22 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw\n")
    t = UdevTranslator(slots=4, ports={}, sys_root=sysroot, mountinfo=mountinfo)
    assert t.handle("add", DEVPATH, RECORDER, now=0.0) == []
    mountinfo.write_text(real)
    (ev,) = t.poll_mounts(now=1.0)
    assert isinstance(ev, Attached) and ev.device.volume == Path("/media/dock bay")


def test_a_storage_device_that_never_mounts_is_reported_once(tmp_path: Path) -> None:
    t = UdevTranslator(slots=4, ports={}, sys_root=tmp_path, mountinfo=tmp_path / "none")
    (tmp_path / "none").write_text("")
    assert t.handle("add", DEVPATH, RECORDER, now=0.0) == []
    (ev,) = t.poll_mounts(now=61.0)
    assert isinstance(ev, DetectProblem) and "no mounted volume" in ev.message
    assert t.poll_mounts(now=120.0) == []


def test_a_recorder_switched_to_storage_comes_back_on_the_same_slot(tmp_path: Path) -> None:
    sysroot, mountinfo = mounted(tmp_path)
    t = UdevTranslator(slots=4, ports={}, sys_root=sysroot, mountinfo=mountinfo)
    t.handle("add", "/devices/usb1/1-3", VENDOR)               # another bay takes slot 1
    (vendor,) = t.handle("add", DEVPATH, VENDOR)
    assert isinstance(vendor, Attached) and vendor.device.slot == 2
    t.handle("remove", "/devices/usb1/1-3", {})                # slot 1 is free now
    assert t.handle("remove", DEVPATH, {}) == [Detached(2)]     # the switch: it leaves the bus ...
    (storage,) = t.handle("add", DEVPATH, RECORDER)            # ... and comes back as storage
    assert isinstance(storage, Attached) and storage.device.slot == 2
    assert storage.device.volume == Path("/media/dock bay") and storage.device.hints["port"] == "1-1.2"


def test_a_recorder_off_the_bus_mid_switch_keeps_its_slot_while_another_recorder_docks(tmp_path: Path) -> None:
    sysroot, mountinfo = mounted(tmp_path)
    t = UdevTranslator(slots=4, ports={}, sys_root=sysroot, mountinfo=mountinfo)
    (vendor,) = t.handle("add", DEVPATH, VENDOR)
    assert isinstance(vendor, Attached) and vendor.device.slot == 1
    assert t.handle("remove", DEVPATH, {}) == [Detached(1)]     # switching to storage: off the bus ...
    (other,) = t.handle("add", "/devices/usb1/1-3", VENDOR)     # ... as the next officer docks
    assert isinstance(other, Attached) and other.device.slot == 2
    (storage,) = t.handle("add", DEVPATH, RECORDER)            # ... and back as storage, on its own slot
    assert isinstance(storage, Attached) and storage.device.slot == 1


#: udevadm info -q property of a real Ambarella vendor-mode recorder: the hardware database
#: names VID 4255 "GoPro"; the device itself says "Ambarella" / "AMBA"
AMBARELLA = {**VENDOR, "ID_VENDOR": "Ambarella", "ID_VENDOR_ENC": "Ambarella", "ID_MODEL": "AMBA",
             "ID_MODEL_ENC": "AMBA", "ID_SERIAL": "Ambarella_AMBA_A1B2", "ID_SERIAL_SHORT": "A1B2",
             "ID_VENDOR_FROM_DATABASE": "GoPro", "ID_MODEL_FROM_DATABASE": "HERO Camera",
             "ID_USB_INTERFACES": ":ffffff:"}
SITE_PROFILE = """
name = "site-ambarella"
protocol = "amba-ascii"
[match]
vid = 0x4255
pid = 0x0001
manufacturer = '^Ambarella$'
product = '^AMBA$'
"""


def test_profiles_match_the_devices_own_strings_not_the_hardware_database_names(tmp_path: Path) -> None:
    ids = ids_from_properties(AMBARELLA)
    assert ids is not None
    assert (ids.manufacturer, ids.product, ids.serial) == ("Ambarella", "AMBA", "A1B2")
    (tmp_path / "site.toml").write_text(SITE_PROFILE)
    profile = Registry.load(tmp_path).match(ids)
    assert profile is not None and profile.name == "site-ambarella"
    # 1209:0001 is "pid.codes Test PID" in the database; the device's own product is what counts
    pidcodes = ids_from_properties({**RECORDER, "ID_VENDOR_FROM_DATABASE": "InterBiometrics",
                                    "ID_MODEL_FROM_DATABASE": "pid.codes Test PID"})
    assert pidcodes is not None and (pidcodes.manufacturer, pidcodes.product) == ("dockgate", "Body Camera")


def test_escaped_strings_decode_as_utf8_and_a_missing_string_is_none() -> None:
    ids = ids_from_properties({**AMBARELLA, "ID_VENDOR_ENC": "\\xe6\\xb7\\xb1\\xe5\\x9c\\xb3\\x20Cam",
                               "ID_MODEL_ENC": "0001", "ID_SERIAL_SHORT": ""})
    assert ids is not None
    # udev puts the id itself where the device has no string: not a string the device sent
    assert (ids.manufacturer, ids.product, ids.serial) == ("深圳 Cam", None, None)


def test_sysfs_strings_are_exact_and_win_over_udevs_mangled_ones(tmp_path: Path) -> None:
    dev = tmp_path / DEVPATH.lstrip("/")
    dev.mkdir(parents=True)
    for attr, value in (("idVendor", "4255"), ("idProduct", "0001"), ("manufacturer", "Ambarella"),
                        ("product", "AMBA  Cam"), ("serial", "A1 B2")):
        (dev / attr).write_text(value + "\n")
    t = UdevTranslator(slots=4, ports={}, sys_root=tmp_path)
    (ev,) = t.handle("add", DEVPATH, {**AMBARELLA, "ID_SERIAL_SHORT": "A1_B2", "ID_MODEL_ENC": "AMBA\\x20\\x20Cam"})
    assert isinstance(ev, Attached)
    ids = ev.device.ids
    assert (ids.manufacturer, ids.product, ids.serial) == ("Ambarella", "AMBA  Cam", "A1 B2")
    (dev / "manufacturer").unlink()  # a device without a manufacturer string
    t2 = UdevTranslator(slots=4, ports={}, sys_root=tmp_path)
    (ev2,) = t2.handle("add", DEVPATH, AMBARELLA)
    assert isinstance(ev2, Attached) and ev2.device.ids.manufacturer is None


def test_a_reported_device_carries_its_interface_classes_and_the_database_names_as_hints(tmp_path: Path) -> None:
    t = UdevTranslator(slots=4, ports={}, sys_root=tmp_path)
    (ev,) = t.handle("add", DEVPATH, {**AMBARELLA, "ID_USB_INTERFACES": ":ffffff:080650:"})
    assert isinstance(ev, Attached)
    hints = ev.device.hints
    assert hints["interfaces"] == "ff/ff/ff 08/06/50" and hints["port"] == "1-1.2"
    assert (hints["hwdb_vendor"], hints["hwdb_model"]) == ("GoPro", "HERO Camera")


def test_a_disk_is_reported_with_its_inquiry_text_and_sg_node_for_profiles_that_claim_it(tmp_path: Path) -> None:
    sysroot, mountinfo = mounted(tmp_path)
    scsi = sysroot / DEVPATH.lstrip("/") / "1-1.2:1.0" / "host6" / "target6:0:0" / "6:0:0:0"
    (scsi / "vendor").write_text("DV16    \n")
    (scsi / "model").write_text("DEVICE V1.00    \n")
    (scsi / "scsi_generic" / "sg2").mkdir(parents=True)
    assert scsi_disk(DEVPATH, sysroot) == ("DV16", "DEVICE V1.00", "/dev/sg2")
    t = UdevTranslator(slots=4, ports={}, sys_root=sysroot, mountinfo=mountinfo)
    (ev,) = t.handle("add", DEVPATH, {**RECORDER, "ID_VENDOR_ID": "abcd", "ID_MODEL_ID": "1234"}, now=0.0)
    assert isinstance(ev, Attached) and ev.device.hints["scsi_node"] == "/dev/sg2"
    profile = Registry.load().match(ev.device.ids)
    assert profile is not None and profile.protocol == "dv16-scsi"  # by INQUIRY, whatever its VID:PID


def test_a_mounted_volume_carries_the_label_udev_recorded_for_its_partition(tmp_path: Path) -> None:
    sysroot, mountinfo = mounted(tmp_path)
    data = tmp_path / "udev-data"
    data.mkdir()
    (data / "b8:17").write_text("S:disk/by-label/BC123456\nE:ID_FS_TYPE=vfat\nE:ID_FS_LABEL=BC123456\n"
                                "E:ID_FS_LABEL_ENC=BC123456\n")
    t = UdevTranslator(slots=4, ports={}, sys_root=sysroot, mountinfo=mountinfo, udev_data=data)
    (ev,) = t.handle("add", DEVPATH, RECORDER)
    assert isinstance(ev, Attached) and ev.device.hints["volume_label"] == "BC123456"


def test_an_escaped_label_is_read_as_text(tmp_path: Path) -> None:
    data = tmp_path / "udev-data"
    data.mkdir()
    (data / "b8:17").write_text("E:ID_FS_LABEL=DOCK_BAY\nE:ID_FS_LABEL_ENC=DOCK\\x20BAY\n")
    assert volume_label("8:17", data) == "DOCK BAY"


def test_a_volume_without_a_label_carries_none(tmp_path: Path) -> None:
    sysroot, mountinfo = mounted(tmp_path)
    t = UdevTranslator(slots=4, ports={}, sys_root=sysroot, mountinfo=mountinfo, udev_data=tmp_path / "none")
    (ev,) = t.handle("add", DEVPATH, RECORDER)
    assert isinstance(ev, Attached) and "volume_label" not in ev.device.hints
