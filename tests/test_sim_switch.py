"""The storage switch on the simulated dock, as real recorders do it: the
vendor device leaves the bus, and a mass-storage device with its own ids
appears on the same slot after the settle time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import usb.core

from drivers.base import DeviceGone, DockedDevice
from drivers.detect import Attached, Detached, DetectEvent
from drivers.detect.sim import SimDetector
from drivers.families import open_recorder
from drivers.ids import UsbIds
from drivers.profiles import Registry, load_profile
from drivers.sim.bus import SIM_STORAGE_IDS
from drivers.sim.dock import attach
from drivers.sim.usb_backend import SIM_USB

REGISTRY = Registry.load()


def hand_written(folder: Path, protocol: str, extra: str = "") -> Path:
    """A recorder folder as a person writes it: protocol, no vid/pid."""
    (folder / "storage" / "DCIM").mkdir(parents=True)
    (folder / "storage" / "DCIM" / "012345_20240305140709_0001.MP4").write_bytes(b"clip")
    (folder / "device.toml").write_text(f'serial = "HW0001"\nofficer = "012345"\nprotocol = "{protocol}"\n{extra}',
                                        encoding="utf-8")
    return folder


def switch(det: SimDetector, device: DockedDevice) -> None:
    profile = REGISTRY.match(device.ids)
    assert profile is not None
    rec = open_recorder(device, profile)
    try:
        rec.probe()
        rec.unlock("000000")
        rec.enter_storage()
    finally:
        rec.close()


async def _events_until(det: SimDetector, want: int, timeout: float = 15) -> list[DetectEvent]:
    got: list[DetectEvent] = []
    stream = det.events()
    async with asyncio.timeout(timeout):
        async for ev in stream:
            got.append(ev)
            if isinstance(ev, Attached) and ev.device.ids.vid == 0x4255:
                await asyncio.to_thread(switch, det, ev.device)
            if len(got) >= want:
                break
    await stream.aclose()  # type: ignore[attr-defined]
    return got


def test_detector_reports_the_vendor_device_leaving_then_storage_on_the_same_slot(tmp_path: Path) -> None:
    folder = hand_written(tmp_path / "rec", "zfy-ctrl", "storage_settle_s = 0.2\n")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY, poll_interval_s=0.05)
    attach(tmp_path / "dock", 3, folder)
    first, gone, storage = asyncio.run(_events_until(det, 3))
    assert isinstance(first, Attached) and first.device.ids.vidpid == "4255:0001" and first.device.volume is None
    assert gone == Detached(3)
    assert isinstance(storage, Attached) and storage.device.slot == 3
    assert storage.device.volume == (folder / "storage").resolve()
    assert storage.device.ids.vidpid == SIM_STORAGE_IDS.vidpid


def test_storage_appears_only_after_the_settle_time(tmp_path: Path) -> None:
    folder = hand_written(tmp_path / "rec", "bc-text", "storage_settle_s = 0.5\n")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    switch(det, device)
    docked = det.docked(1)
    assert docked is not None and docked.left.wait(5)
    storage = det.storage_device(1)
    assert storage is not None
    assert time.monotonic() - docked.left_at >= 0.5
    det._unplug_slot(1)


def test_the_switched_usb_device_is_gone_from_the_bus(tmp_path: Path) -> None:
    folder = hand_written(tmp_path / "rec", "amba-ctrl")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    switch(det, device)
    assert det.storage_device(1) is not None
    addr = device.hints["usb_address"]
    assert usb.core.find(backend=SIM_USB, custom_match=lambda d: str(d.address) == addr) is None
    det._unplug_slot(1)


def test_the_switched_tcp_recorder_refuses_connections(tmp_path: Path) -> None:
    folder = hand_written(tmp_path / "rec", "zzx-json")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    switch(det, device)
    assert det.storage_device(1) is not None
    rec = open_recorder(device, REGISTRY.match(device.ids))  # type: ignore[arg-type]
    with pytest.raises(DeviceGone):
        rec.probe()
    det._unplug_slot(1)


def test_storage_ids_come_from_device_toml(tmp_path: Path) -> None:
    folder = hand_written(tmp_path / "rec", "e12-tcp", "storage_vid = 0x18d1\nstorage_pid = 0x4ee1\n")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    switch(det, det.describe(1, folder))
    storage = det.storage_device(1)
    assert storage is not None and storage.ids.vidpid == "18d1:4ee1"
    det._unplug_slot(1)


def test_the_volume_label_is_the_recorders_id_where_the_family_ties_them(tmp_path: Path) -> None:
    folder = hand_written(tmp_path / "rec", "amba-ascii")
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    rec = open_recorder(device, REGISTRY.match(device.ids))  # type: ignore[arg-type]
    rec.probe()
    rec.unlock(None)
    rec.identify()
    sw = rec.enter_storage()
    assert sw is not None and sw.volume_label == "HW0001"
    storage = det.storage_device(1)
    assert storage is not None and storage.hints["volume_label"] == "HW0001"
    rec.attach_storage(storage)
    assert len(list(rec.list_clips(lambda s: None))) == 1
    det._unplug_slot(1)


def test_a_storage_volume_labelled_for_another_recorder_is_refused(tmp_path: Path) -> None:
    folder = hand_written(tmp_path / "rec", "amba-ascii", 'volume_label = "OTHER01"\n')
    det = SimDetector(tmp_path / "dock", 4, REGISTRY)
    device = det.describe(1, folder)
    rec = open_recorder(device, REGISTRY.match(device.ids))  # type: ignore[arg-type]
    rec.probe()
    rec.identify()
    rec.enter_storage()
    storage = det.storage_device(1)
    assert storage is not None
    with pytest.raises(Exception, match="volume label") as e:
        rec.attach_storage(storage)
    assert getattr(e.value, "permanent", False)
    det._unplug_slot(1)


PROFILE = """
name = "{name}"
protocol = "zfy-ctrl"
[match]
vid = 0x4255
pid = 0x0001
product = '^{product}$'
[storage]
vid = 0x{svid:04x}
pid = 0x{spid:04x}
settle_s = 1
"""


def test_match_storage_names_the_profile_whose_storage_side_has_the_ids() -> None:
    mine = load_profile(PROFILE.format(name="m1", product="M1", svid=0x1234, spid=0x5678), "m1.toml")
    reg = Registry([*REGISTRY.profiles, mine])
    assert reg.match_storage(UsbIds(0x1234, 0x5678, "X")) is mine
    assert reg.match_storage(UsbIds(0x1234, 0x9999)) is None


def test_match_storage_claimed_by_two_profiles_is_nobodys() -> None:
    a = load_profile(PROFILE.format(name="a", product="A", svid=0x1234, spid=0x5678), "a.toml")
    b = load_profile(PROFILE.format(name="b", product="B", svid=0x1234, spid=0x5678), "b.toml")
    assert Registry([a, b]).match_storage(UsbIds(0x1234, 0x5678)) is None
