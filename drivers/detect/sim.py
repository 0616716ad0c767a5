"""Simulated detection: watch the sim dock's slot files."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from drivers.base import DockedDevice, UsbIds
from drivers.detect import Attached, Detached, DetectEvent, Detector, DetectProblem
from drivers.profiles import Registry
from drivers.sim.device import SimDeviceError, load_sim_device
from drivers.sim.dock import read_slots

log = logging.getLogger(__name__)


class SimDetector(Detector):
    def __init__(self, sim_dir: Path, slots: int, registry: Registry,
                 poll_interval_s: float = 0.25) -> None:
        self.sim_dir = sim_dir
        self.slots = slots
        self.registry = registry
        self.poll_interval_s = poll_interval_s

    def describe(self, slot: int, folder: Path) -> DockedDevice:
        dev = load_sim_device(folder)
        vid, pid = dev.vid, dev.pid
        if vid is None or pid is None:
            default = self.registry.default_for(dev.protocol).match
            vid = default.vid if vid is None else vid
            pid = default.pid if pid is None else pid
        hints = {k: v for k, v in (("officer", dev.officer), ("unit", dev.unit),
                                   ("model", dev.model), ("officer_name", dev.officer_name))
                 if v}
        return DockedDevice(slot=slot, ids=UsbIds(vid, pid, dev.serial, dev.product),
                            volume=dev.storage, source="sim", hints=hints, details=dev)

    async def events(self) -> AsyncIterator[DetectEvent]:
        current: dict[int, str] = {}
        while True:
            seen = await asyncio.to_thread(read_slots, self.sim_dir, self.slots)
            for slot in sorted(set(current) - set(seen)):
                del current[slot]
                yield Detached(slot)
            for slot, (folder, text) in sorted(seen.items()):
                if current.get(slot) == text:
                    continue
                if slot in current:  # replaced without a detach in between
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
