"""Where the sources give two readings of a field, the profile picks one:
both readings work end to end on a simulated recorder that uses them, and
BC+'s drain and read-until rule hold against stale and fragmented replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base import DeviceGone, DeviceTimeout, MalformedReply
from drivers.detect.sim import SimDetector
from drivers.families import open_recorder
from drivers.profiles import Profile, Registry
from drivers.sim.bus import Docked
from drivers.sim.firmware import BcTextFirmware

REGISTRY = Registry.load()


def docked(tmp_path: Path, protocol: str, extra: str = "") -> tuple[SimDetector, Docked]:
    folder = tmp_path / "rec"
    (folder / "storage").mkdir(parents=True)
    (folder / "device.toml").write_text(f'serial = "SET0001"\nofficer = "012345"\nprotocol = "{protocol}"\n{extra}',
                                        encoding="utf-8")
    det = SimDetector(tmp_path / "dock", 2, REGISTRY)
    det.describe(1, folder)
    d = det.docked(1)
    assert d is not None
    return det, d


def with_(protocol: str, section: str, **values: object) -> Profile:
    base = REGISTRY.default_for(protocol)
    part = getattr(base, section).model_copy(update=values)
    return base.model_copy(update={section: part})


def test_zfy_ctrl_reads_replies_with_wvalue_0_when_the_profile_says_so(tmp_path: Path) -> None:
    det, d = docked(tmp_path, "zfy-ctrl")
    rec = open_recorder(d.device, with_("zfy-ctrl", "control", in_value=0))
    assert rec.probe().idcode == "ABCDE"
    from drivers.sim.usb_backend import SIM_USB

    ins = [t for t in SIM_USB.sent_to(int(d.device.hints["usb_address"])) if t.kind == "control" and t.setup
           and t.setup.request_type == 0xC0]
    assert ins and all(t.setup is not None and t.setup.value == 0 for t in ins)
    rec.close()
    det._unplug_slot(1)


@pytest.mark.parametrize("order", ["big", "little"])
def test_e12_length_prefix_in_either_byte_order(tmp_path: Path, order: str) -> None:
    det, d = docked(tmp_path, "e12-tcp", f'length_order = "{order}"\n')
    rec = open_recorder(d.device, with_("e12-tcp", "tcp", length_order=order))
    rec.probe()
    rec.unlock("000000")
    assert rec.identify().serial == "SET0001"
    rec.close()
    det._unplug_slot(1)


def test_e12_with_the_wrong_byte_order_is_a_typed_error(tmp_path: Path) -> None:
    det, d = docked(tmp_path, "e12-tcp", 'length_order = "little"\n')
    rec = open_recorder(d.device, with_("e12-tcp", "tcp", length_order="big", read_timeout_ms=300))
    with pytest.raises((MalformedReply, DeviceGone, DeviceTimeout)):
        rec.probe()
    rec.close()
    det._unplug_slot(1)


def test_bc_text_drains_a_stale_reply_before_each_command(tmp_path: Path) -> None:
    det, d = docked(tmp_path, "bc-text")
    fw = d.firmware
    assert isinstance(fw, BcTextFirmware)
    rec = open_recorder(d.device, REGISTRY.default_for("bc-text"))
    rec.probe()
    rec.unlock("000000")
    fw.queue += b"+GBCFG:STALE01,999999,X,Y,Z\r\nOK\r\n"  # left over from an earlier tool
    assert rec.identify().serial == "SET0001"
    rec.close()
    det._unplug_slot(1)


def test_bc_text_reads_a_reply_split_over_many_packets(tmp_path: Path) -> None:
    det, d = docked(tmp_path, "bc-text", 'officer_name = "ZHANG SAN THE SECOND OF WEST"\nunit = "WEST STATION"\n')
    fw = d.firmware
    assert isinstance(fw, BcTextFirmware)
    fw.packet = 5  # a firmware that hands over 5 bytes per IN transfer
    rec = open_recorder(d.device, REGISTRY.default_for("bc-text"))
    rec.probe()
    rec.unlock("000000")
    assert rec.identify().officer_name == "ZHANG SAN THE SECOND OF WEST"
    rec.close()
    det._unplug_slot(1)


def test_zzx_storage_refused_while_recording_is_transient(tmp_path: Path) -> None:
    det, d = docked(tmp_path, "zzx-json", "recording = true\n")
    rec = open_recorder(d.device, REGISTRY.default_for("zzx-json"))
    rec.probe()
    rec.unlock("000000")
    with pytest.raises(Exception, match="storage failed") as e:
        rec.enter_storage()
    assert getattr(e.value, "permanent", True) is False
    rec.close()
    det._unplug_slot(1)
