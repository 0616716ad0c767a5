"""`dockgate profile new`: a site profile for a device no shipped profile
knows, from a recorded `lsusb -v` or from what the station saw in a slot,
that check-config accepts and that claims that device (and only it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.ids import UsbIds
from drivers.profiles import Registry, load_profile
from gateway.cli.profile import parse_lsusb, sysfs_interfaces
from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, archive_hashes, attach, dockgate, events, hand_made_recorder, source_hashes

DATA = Path(__file__).parent / "data"
#: `lsusb -v -d 4255:0001` of an Ambarella recorder in vendor mode (lsusb names the VID "GoPro"
#: from the hardware database; the device's own strings are "Ambarella" and "AMBA")
AMBARELLA = DATA / "lsusb-ambarella.txt"
#: `lsusb -v` of a whole bus: a root hub and a plain mass-storage recorder
BUS = DATA / "lsusb-bus.txt"
AMBARELLA_IDS = UsbIds(0x4255, 0x0001, "AMB20240305", "AMBA", "Ambarella")


def with_profiles_dir(config: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    config.write_text(config.read_text().replace("[recorders]\n", f'[recorders]\nprofiles_dir = "{folder}"\n', 1))
    return config


def test_lsusb_output_gives_the_devices_own_strings_interfaces_and_endpoints() -> None:
    (dev,) = parse_lsusb(AMBARELLA.read_text())
    assert (dev.vid, dev.pid, dev.manufacturer, dev.product, dev.serial) == \
        (0x4255, 0x0001, "Ambarella", "AMBA", "AMB20240305")
    (intf,) = dev.interfaces
    assert (intf.number, intf.triple(), intf.bulk()) == (0, "ff/ff/ff", (0x02, 0x81))
    hub, storage = parse_lsusb(BUS.read_text())
    assert hub.interfaces[0].cls == 0x09 and storage.storage_only()
    assert (storage.manufacturer, storage.product) == ("Dockgate Sim", "Sim Recorder")


def test_a_profile_from_lsusb_passes_check_config_and_claims_that_device_only(tmp_path: Path) -> None:
    config = with_profiles_dir(write_station(tmp_path / "station", slots=2), tmp_path / "profiles")
    out = tmp_path / "profiles" / "amba.toml"
    p = dockgate("profile", "new", "--from-lsusb", str(AMBARELLA), "--protocol", "amba-ascii", "-o", str(out),
                 "-c", str(config))
    assert "wrote" in p.stderr and "udevadm control --reload" in p.stderr
    text = out.read_text()
    assert "manufacturer = '^Ambarella$'" in text and "product = '^AMBA$'" in text
    assert "GoPro" not in text  # the hardware database's name is nowhere
    profile = load_profile(text, str(out))
    assert (profile.protocol, profile.usb.interface, profile.usb.ep_out, profile.usb.ep_in) == \
        ("amba-ascii", 0, 0x02, 0x81)
    dockgate("check-config", "-c", str(config))
    reg = Registry.load(out.parent)

    def claimed(ids: UsbIds) -> str | None:
        p = reg.match(ids)
        return p.name if p is not None else None

    assert claimed(AMBARELLA_IDS) == profile.name
    # the shipped 4255:0001 profiles still claim their own devices, and another model's strings stay foreign
    assert claimed(UsbIds(0x4255, 1, None, "dockgate-sim amba-ascii", "dockgate-sim")) == "amba-ascii"
    assert claimed(UsbIds(0x4255, 1, None, "AMBA", "Other Vendor")) is None
    # the udev rules made from this config give dockgate the device
    assert 'ATTR{idVendor}=="4255", ATTR{idProduct}=="0001"' in dockgate("udev-rules", "-c", str(config)).stdout


def test_without_a_file_the_profile_goes_to_stdout_and_an_existing_file_is_kept(tmp_path: Path) -> None:
    p = dockgate("profile", "new", "--from-lsusb", str(AMBARELLA), "--like", "amba-ctrl", "--name", "amba-a9")
    profile = load_profile(p.stdout, "stdout")
    assert (profile.name, profile.protocol, profile.match.manufacturer) == ("amba-a9", "amba-ctrl", "^Ambarella$")
    assert profile.control.request == 0x55  # the family's settings came along
    out = tmp_path / "x.toml"
    out.write_text("mine")
    p = dockgate("profile", "new", "--from-lsusb", str(AMBARELLA), "--protocol", "amba-ascii", "-o", str(out),
                 check=False)
    assert p.returncode == 2 and "exists" in p.stderr and out.read_text() == "mine"


def test_several_devices_need_a_choice_and_storage_only_is_ums(tmp_path: Path) -> None:
    p = dockgate("profile", "new", "--from-lsusb", str(BUS), "--protocol", "ums", check=False)
    # the root hub is never a recorder: only one candidate is left
    assert p.returncode == 2 and "generic-ums" in p.stderr and "1209:0001" in p.stderr
    both = tmp_path / "both.txt"
    both.write_text(BUS.read_text() + "\n" + AMBARELLA.read_text())
    p = dockgate("profile", "new", "--from-lsusb", str(both), check=False)
    assert p.returncode == 2 and "-d VID:PID" in p.stderr
    p = dockgate("profile", "new", "--from-lsusb", str(both), "-d", "4255:0001", check=False)
    assert p.returncode == 2 and "--protocol" in p.stderr  # a vendor interface: which family is not guessed


def test_a_profile_that_would_not_claim_the_device_alone_is_refused_and_nothing_written(tmp_path: Path) -> None:
    bare = tmp_path / "bare.txt"  # 1209:0001 without strings: the shipped generic-ums claims it alike
    bare.write_text("\n".join(line for line in BUS.read_text().splitlines()
                              if not line.strip().startswith(("iManufacturer", "iProduct"))))
    out = tmp_path / "p.toml"
    p = dockgate("profile", "new", "--from-lsusb", str(bare), "-d", "1209:0001", "-o", str(out), check=False)
    assert p.returncode == 2 and "both claim 1209:0001" in p.stderr, p.stderr
    assert not out.exists()


def test_the_command_interface_is_read_from_sysfs_of_the_port(tmp_path: Path) -> None:
    dev = tmp_path / "bus" / "usb" / "devices" / "1-1.2"
    intf = dev / "1-1.2:1.0"
    for d, attrs in ((dev, {"idVendor": "4255", "idProduct": "0002"}),
                     (intf, {"bInterfaceNumber": "00", "bAlternateSetting": " 0", "bInterfaceClass": "ff",
                             "bInterfaceSubClass": "ff", "bInterfaceProtocol": "ff"}),
                     (intf / "ep_02", {"bEndpointAddress": "02", "type": "Bulk", "direction": "out"}),
                     (intf / "ep_81", {"bEndpointAddress": "81", "type": "Bulk", "direction": "in"})):
        d.mkdir(parents=True, exist_ok=True)
        for k, v in attrs.items():
            (d / k).write_text(v + "\n")
    (found,) = sysfs_interfaces("1-1.2", 0x4255, 0x0002, tmp_path)  # type: ignore[misc]
    assert (found.number, found.triple(), found.bulk()) == (0, "ff/ff/ff", (0x02, 0x81))
    assert sysfs_interfaces("1-1.2", 0x4255, 0x0001, tmp_path) is None  # another device there now
    assert sysfs_interfaces("../../etc", 0x4255, 0x0002, tmp_path) is None


@pytest.mark.e2e
def test_a_foreign_device_in_a_slot_gets_a_profile_from_profile_new_and_is_served_after_a_restart(
        tmp_path: Path) -> None:
    station = write_station(tmp_path / "station", slots=4, reserve_bytes=0)
    storage = hand_made_recorder(tmp_path / "rec", "BOOT001", protocol="zfy-ctrl", extra=(
        'vid = 0x4255\npid = 0x0001\nproduct = "Unknown Camera"\nmanufacturer = "Shenzhen Cam"\n'
        "storage_settle_s = 0.3\n"))
    day = storage / "DCIM" / "20240305"
    day.mkdir(parents=True)
    for i in range(2):
        (day / f"054321_2024030514{i:02d}09_{i + 1:04d}.MP4").write_bytes(bytes([i]) * 40_000)
    daemon = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, tmp_path / "rec", 3)
        daemon.wait_for(lambda s: any(x["slot"] == 3 and x["state"] == "foreign" for x in s["slots"]),
                        what="foreign device flagged")
        (foreign,) = events(station, "foreign_device")
        assert foreign["slot"] == 3
        assert {k: foreign["data"].get(k) for k in ("vid", "pid", "manufacturer", "product", "serial",
                                                     "interfaces", "port")} == \
            {"vid": "4255", "pid": "0001", "manufacturer": "Shenzhen Cam", "product": "Unknown Camera",
             "serial": "BOOT001", "interfaces": "ff/ff/ff", "port": "sim-3"}
        out = tmp_path / "profiles" / "shenzhen.toml"
        with_profiles_dir(station, out.parent)
        dockgate("profile", "new", "--slot", "3", "--protocol", "zfy-ctrl", "-c", str(station), "-o", str(out))
        text = out.read_text()
        assert "manufacturer = '^Shenzhen Cam$'" in text and "product = '^Unknown Camera$'" in text
        assert "slot 3, foreign_device event" in text
        dockgate("check-config", "-c", str(station))
        assert daemon.stop() == 0
        daemon = DaemonProc(station, tmp_path / "daemon2.log").start()
        daemon.wait_for(lambda s: s["clips"]["archived"] == 2, timeout=90, what="served once profiled")
        (docked,) = events(station, "docked")
        assert docked["data"]["profile"] == "site-4255-0001-unknown-camera"
        assert archive_hashes(load_archive(station)) == source_hashes(storage)
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()


@pytest.mark.e2e
def test_an_unrecognised_device_event_carries_the_same_fields_and_profile_new_reads_it(tmp_path: Path) -> None:
    """A profile claimed it, but the read-only probe's answer was not what the profile expects."""
    station = with_profiles_dir(write_station(tmp_path / "station", slots=2), tmp_path / "profiles")
    (tmp_path / "profiles" / "strict.toml").write_text(
        "name = 'strict'\nprotocol = 'zfy-ctrl'\n[match]\nvid = 0x4255\npid = 0x0001\nproduct = '^Strict Cam$'\n"
        "[probe]\nidcode = '^XYZ'\n")
    hand_made_recorder(tmp_path / "rec", "STRICT1", protocol="zfy-ctrl",
                       extra='vid = 0x4255\npid = 0x0001\nproduct = "Strict Cam"\nmanufacturer = "Zfy"\n')
    daemon = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, tmp_path / "rec", 2)
        wait = daemon.wait_for(lambda s: any(x["slot"] == 2 and x["state"] == "foreign" for x in s["slots"]),
                               what="unrecognised")
        assert sum(wait["clips"].values()) == 0
    finally:
        daemon.stop()
    (ev,) = events(station, "unrecognised_device")
    assert ev["data"]["profile"] == "strict" and "IDCode" in ev["data"]["error"]
    assert {k: ev["data"].get(k) for k in ("vid", "pid", "manufacturer", "product", "serial", "interfaces")} == \
        {"vid": "4255", "pid": "0001", "manufacturer": "Zfy", "product": "Strict Cam", "serial": "STRICT1",
         "interfaces": "ff/ff/ff"}
    # a skeleton for it would claim it exactly as the site's own profile does: refused, nothing written
    out = tmp_path / "profiles" / "again.toml"
    p = dockgate("profile", "new", "--slot", "2", "--like", "strict", "-c", str(station), "-o", str(out),
                 check=False)
    assert p.returncode == 2 and "strict.toml" in p.stderr and not out.exists(), p.stderr


def test_profile_new_for_a_slot_with_nothing_reported_says_what_to_do(tmp_path: Path) -> None:
    station = write_station(tmp_path / "station", slots=2)
    p = dockgate("profile", "new", "--slot", "1", "--protocol", "ums", "-c", str(station), check=False)
    assert p.returncode == 2 and "foreign_device" in p.stderr and "dock the device" in p.stderr


def load_archive(config: Path) -> Path:
    from gateway.config import load_config

    return load_config(config).archive.path


def test_a_dv16_profile_needs_the_disks_inquiry_and_matches_and_probes_for_it(tmp_path: Path) -> None:
    # a JieLi disk at ids no shipped profile uses (the bus capture's recorder, re-numbered)
    lsusb = tmp_path / "jl.txt"
    lsusb.write_text(BUS.read_text().replace("ID 1209:0001", "ID 1209:4a4c").replace("0x0001 pid", "0x4a4c pid"))
    args = ("profile", "new", "--from-lsusb", str(lsusb), "-d", "1209:4a4c", "--protocol", "dv16-scsi")
    p = dockgate(*args, check=False)
    assert p.returncode == 2 and "--scsi-vendor" in p.stderr and "INQUIRY" in p.stderr, p.stderr
    p = dockgate(*args, "--scsi-vendor", "JL      ", "--scsi-model", "DV20 CAM V2.1")
    profile = load_profile(p.stdout, "new")
    assert profile.match.inquiry == r"^jldv20camv2\.1$" and profile.scsi.inquiry_key == "jldv20camv2.1"
    ids = {"serial": None, "product": "Sim Recorder", "manufacturer": "Dockgate Sim"}
    assert profile.matches(UsbIds(0x1209, 0x4A4C, **ids, scsi_vendor="JL", scsi_model="DV20 CAM V2.1"))
    assert not profile.matches(UsbIds(0x1209, 0x4A4C, **ids, scsi_vendor="DV16", scsi_model="DEVICE V1.00"))
