"""Simulated detection: watch the sim dock's slot files and serve each docked
recorder through the real code path of its family (a volume; pyusb on the
simulated bus; pyserial on a pty)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from drivers.base import DockedDevice, UsbIds
from drivers.detect import Attached, Detached, DetectEvent, Detector, DetectProblem
from drivers.profiles import Registry
from drivers.sim.device import SimDevice, SimDeviceError, load_sim_device
from drivers.sim.dock import read_slots

log = logging.getLogger(__name__)


def _waiter(firmware_visible: Callable[[], bool], storage: Path) -> Callable[[float], Path | None]:
    def locate(timeout: float) -> Path | None:
        deadline = time.monotonic() + timeout
        while not firmware_visible():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return storage
    return locate


class SimDetector(Detector):
    def __init__(self, sim_dir: Path, slots: int, registry: Registry,
                 poll_interval_s: float = 0.25) -> None:
        self.sim_dir = sim_dir
        self.slots = slots
        self.registry = registry
        self.poll_interval_s = poll_interval_s
        self._unplug: dict[int, Callable[[], None]] = {}

    def describe(self, slot: int, folder: Path) -> DockedDevice:
        dev = load_sim_device(folder)
        vid, pid = dev.vid, dev.pid
        if vid is None or pid is None:
            default = self.registry.default_for(dev.protocol).match
            vid = default.vid if vid is None else vid
            pid = default.pid if pid is None else pid
        ids = UsbIds(vid, pid, dev.serial, dev.product or dev.model or None)
        if dev.protocol == "ums":
            # a plain storage recorder: what its vendor info file would tell
            hints = {k: v for k, v in (("officer", dev.officer), ("unit", dev.unit),
                                       ("model", dev.model), ("officer_name", dev.officer_name)) if v}
            return DockedDevice(slot=slot, ids=ids, volume=dev.storage, source="sim", hints=hints,
                                details=dev)
        return self._plug_protocol_device(slot, ids, dev)

    def _plug_protocol_device(self, slot: int, ids: UsbIds, dev: SimDevice) -> DockedDevice:
        from drivers.sim.firmware import SimAmbaFirmware, SimFirmware, SimZfyFirmware

        firmware: SimFirmware = SimAmbaFirmware(dev) if dev.protocol == "amba" else SimZfyFirmware(dev)
        if dev.protocol == "zfy-serial":
            from drivers.sim.serial_pty import PtyServer

            pty = PtyServer(firmware)
            locate = _waiter(lambda: pty.firmware.storage_visible, dev.storage)
            self._unplug[slot] = pty.close
            return DockedDevice(slot=slot, ids=ids, volume=None, source="sim",
                                hints={"tty": pty.path}, details=dev, locate_volume=locate)
        from drivers.sim.usb_backend import SIM_USB, SimUsbDevice

        usb_dev = SIM_USB.plug(SimUsbDevice(ids.vid, ids.pid, dev.serial, ids.product or "recorder",
                                            "dockgate-sim", firmware))
        self._unplug[slot] = lambda: SIM_USB.unplug(usb_dev)
        # ask whichever firmware the device runs now (tests swap in faulty ones)
        locate = _waiter(lambda: usb_dev.firmware.storage_visible, dev.storage)
        return DockedDevice(slot=slot, ids=ids, volume=None, source="sim",
                            hints={"usb_bus": str(usb_dev.bus), "usb_address": str(usb_dev.address)},
                            details=dev, locate_volume=locate)

    def _unplug_slot(self, slot: int) -> None:
        undo = self._unplug.pop(slot, None)
        if undo is not None:
            with contextlib.suppress(Exception):
                undo()

    async def events(self) -> AsyncIterator[DetectEvent]:
        current: dict[int, str] = {}
        last_mtime = -1
        try:
            while True:
                # attach and detach create and remove files: the directory's
                # mtime tells whether there is anything to read at all
                try:
                    mtime = os.stat(self.sim_dir).st_mtime_ns
                except FileNotFoundError:
                    mtime = 0
                if mtime == last_mtime:
                    await asyncio.sleep(self.poll_interval_s)
                    continue
                last_mtime = mtime
                seen = await asyncio.to_thread(read_slots, self.sim_dir, self.slots)
                for slot in sorted(set(current) - set(seen)):
                    del current[slot]
                    self._unplug_slot(slot)
                    yield Detached(slot)
                for slot, (folder, text) in sorted(seen.items()):
                    if current.get(slot) == text:
                        continue
                    if slot in current:  # replaced without a detach in between
                        self._unplug_slot(slot)
                        yield Detached(slot)
                    current[slot] = text
                    if folder is None:
                        yield DetectProblem(slot, f"slot file {self.sim_dir}/slot-{slot}.json is malformed")
                        continue
                    try:
                        device = await asyncio.to_thread(self.describe, slot, folder)
                    except SimDeviceError as e:
                        yield DetectProblem(slot, str(e))
                        continue
                    yield Attached(device)
                await asyncio.sleep(self.poll_interval_s)
        finally:
            for slot in list(self._unplug):
                self._unplug_slot(slot)
