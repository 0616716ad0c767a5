"""4255:0001 carries four incompatible protocols and maybe a boot ROM: a
device no profile claims gets nothing at all, and a claimed one gets nothing
but its profile's read-only probe until the probe confirmed it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from drivers.base import DeviceTimeout, NotRecognised
from drivers.detect import Attached, DetectEvent
from drivers.detect.sim import SimDetector
from drivers.families import open_recorder
from drivers.ids import UsbIds
from drivers.profiles import Registry, load_profile
from drivers.sim.dock import attach
from drivers.sim.usb_backend import SIM_USB

REGISTRY = Registry.load()


def folder_for(tmp: Path, protocol: str, product: str | None = None, name: str = "rec") -> Path:
    folder = tmp / name
    (folder / "storage").mkdir(parents=True)
    extra = f'product = "{product}"\nvid = 0x4255\npid = 0x0001\n' if product is not None else ""
    (folder / "device.toml").write_text(f'serial = "U0001"\nprotocol = "{protocol}"\n{extra}', encoding="utf-8")
    return folder


async def first_event(det: SimDetector) -> DetectEvent:
    stream = det.events()
    async with asyncio.timeout(10):
        ev = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    return ev


@pytest.mark.parametrize("protocol", ["amba-ctrl", "amba-ascii", "zfy-ctrl", "bc-text"])
def test_an_unprofiled_4255_0001_gets_no_transfer_of_any_kind(tmp_path: Path, protocol: str) -> None:
    folder = folder_for(tmp_path, protocol, product="Unknown Camera")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY, poll_interval_s=0.05)
    attach(tmp_path / "dock", 1, folder)
    ev = asyncio.run(first_event(det))
    assert isinstance(ev, Attached) and ev.device.ids.vidpid == "4255:0001"
    assert REGISTRY.match(ev.device.ids) is None  # foreign: the gateway never opens it
    assert SIM_USB.sent_to(int(ev.device.hints["usb_address"])) == []
    log = tmp_path / "dock" / "usb-transfers.jsonl"
    assert not log.exists() or not any(json.loads(x)["serial"] == "U0001" for x in log.read_text().splitlines())


def test_a_device_two_profiles_match_alike_matches_neither() -> None:
    text = "name = '{n}'\nprotocol = '{p}'\n[match]\nvid = 0x4255\npid = 0x0001\nproduct = '{r}'\n"
    a = load_profile(text.format(n="a", p="zfy-ctrl", r="^Cam"), "a.toml")
    b = load_profile(text.format(n="b", p="amba-ascii", r="Cam$"), "b.toml")
    assert Registry([a, b]).match(UsbIds(0x4255, 0x0001, None, "Cam")) is None


def test_a_probe_the_device_does_not_answer_confirms_nothing_and_nothing_else_is_sent(
        tmp_path: Path) -> None:
    # the device speaks BC+ but claims the product string the amba-ascii profile matches
    folder = folder_for(tmp_path, "bc-text", product="dockgate-sim amba-ascii")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    profile = REGISTRY.match(device.ids)
    assert profile is not None and profile.protocol == "amba-ascii"
    rec = open_recorder(device, profile)
    with pytest.raises((NotRecognised, DeviceTimeout)):  # BC+ firmware does not answer an @ frame
        rec.probe()
    writes = [t for t in SIM_USB.sent_to(int(device.hints["usb_address"])) if t.is_write]
    assert [t.data for t in writes] == [b"@Ver;8;00000000;#"]
    with pytest.raises(Exception, match="probe"):
        rec.unlock("000000")
    rec.close()
    det._unplug_slot(1)


def test_an_idcode_the_profile_does_not_expect_is_not_recognised(tmp_path: Path) -> None:
    folder = folder_for(tmp_path, "zfy-ctrl")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    strict = REGISTRY.default_for("zfy-ctrl").model_copy(update={"probe": load_profile(
        "name='x'\nprotocol='zfy-ctrl'\n[match]\nvid=1\npid=1\n[probe]\nidcode='^XYZ'\n", "x").probe})
    rec = open_recorder(device, strict)
    with pytest.raises(NotRecognised, match="IDCode"):
        rec.probe()
    rec.close()
    det._unplug_slot(1)


@pytest.mark.parametrize("protocol", ["ums", "amba-ctrl", "amba-ascii", "zfy-ctrl", "bc-text", "e12-tcp",
                                      "zzx-json"])
def test_a_hand_written_folder_without_ids_takes_its_familys_profile(tmp_path: Path, protocol: str) -> None:
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder_for(tmp_path, protocol))
    profile = REGISTRY.match(device.ids)
    assert profile is not None and profile.protocol == protocol
    det._unplug_slot(1)
