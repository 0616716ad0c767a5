"""Simulated detection: watch the sim dock's slot files and serve each docked
recorder through the real code path of its family (a volume; pyusb on the
simulated bus; a TCP socket on 127.0.0.1).

The storage switch happens as on real hardware: when the simulated firmware
accepts "enter storage", the vendor device leaves (``Detached(slot)``) and,
after the device's settle time, a mass-storage device with its own ids and
the recorder's volume appears on the same slot (``Attached``, ``volume``
set, ``hints["volume_label"]``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from drivers.base import DockedDevice
from drivers.detect import Attached, Detached, DetectEvent, Detector, DetectProblem
from drivers.profiles import Registry
from drivers.sim.bus import Docked, plug
from drivers.sim.device import SimDeviceError, load_sim_device
from drivers.sim.dock import read_slots

log = logging.getLogger(__name__)


class SimDetector(Detector):
    def __init__(self, sim_dir: Path, slots: int, registry: Registry, poll_interval_s: float = 0.25) -> None:
        self.sim_dir = sim_dir
        self.slots = slots
        self.registry = registry
        self.poll_interval_s = poll_interval_s
        self._docked: dict[int, Docked] = {}
        self._lock = threading.Lock()
        #: (due monotonic time, slot): vendor devices that left; storage to bring up
        self._switching: list[tuple[float, int]] = []
        self._wake = threading.Event()
        self._loop_wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        from drivers.sim.usb_backend import SIM_USB

        # what reached the simulated bus, for tests that run the daemon in a process of its own
        SIM_USB.log_path = sim_dir / "usb-transfers.jsonl"
        from drivers.sim.sgio_backend import SIM_SG

        # and every SCSI command that reached a simulated disk (DV16)
        SIM_SG.log_path = sim_dir / "scsi-commands.jsonl"

    # -- docking ----------------------------------------------------------------
    def docked(self, slot: int) -> Docked | None:
        """The simulated recorder in *slot* (its firmware, for tests)."""
        with self._lock:
            return self._docked.get(slot)

    def describe(self, slot: int, folder: Path) -> DockedDevice:
        """Put the recorder in *folder* on the simulated bus; what detection reports."""
        dev = load_sim_device(folder)
        self._unplug_slot(slot)
        docked = plug(slot, dev, self.registry, self._left)
        with self._lock:
            self._docked[slot] = docked
        return docked.device

    def _left(self, docked: Docked) -> None:
        """A vendor interface left the bus after the switch (firmware thread)."""
        docked.left_at = time.monotonic()
        with self._lock:
            if self._docked.get(docked.device.slot) is not docked:
                return
            self._switching.append((docked.left_at + docked.settle_s, docked.device.slot))
        self._wake.set()
        if self._loop is not None and self._loop_wake is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._loop_wake.set)

    def storage_device(self, slot: int, timeout: float = 10.0) -> DockedDevice | None:
        """For callers without the event loop (tests): wait for the storage
        device the recorder in *slot* becomes, as ``events`` would report it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            docked = self._docked.get(slot)
        if docked is None or docked.storage is None:
            return None
        if not docked.left.wait(max(0.0, deadline - time.monotonic())):
            return None
        due = docked.left_at + docked.settle_s
        while time.monotonic() < due:
            self._wake.wait(due - time.monotonic())
        return docked.storage

    def _unplug_slot(self, slot: int) -> None:
        with self._lock:
            docked = self._docked.pop(slot, None)
            self._switching = [(t, s) for t, s in self._switching if s != slot]
        if docked is not None:
            docked.unplug()

    def _due(self) -> list[DetectEvent]:
        """Detached for vendor devices that left; Attached for storage now due."""
        out: list[DetectEvent] = []
        now = time.monotonic()
        with self._lock:
            for docked in self._docked.values():
                if docked.left.is_set() and not docked.reported_left:
                    docked.reported_left = True
                    out.append(Detached(docked.device.slot))
            keep = []
            for due, slot in self._switching:
                docked_now = self._docked.get(slot)
                if due <= now and docked_now is not None and docked_now.storage is not None:
                    out.append(Attached(docked_now.storage))
                elif due > now:
                    keep.append((due, slot))
            self._switching = keep
        return out

    def _next_due(self) -> float | None:
        with self._lock:
            return min((t for t, _ in self._switching), default=None)

    # -- the event stream -------------------------------------------------------
    async def events(self) -> AsyncIterator[DetectEvent]:
        current: dict[int, str] = {}
        last_mtime = -1
        self._loop = asyncio.get_running_loop()
        self._loop_wake = asyncio.Event()
        try:
            while True:
                for ev in self._due():
                    yield ev
                # attach and detach create and remove files: the directory's
                # mtime tells whether there is anything to read at all
                try:
                    mtime = os.stat(self.sim_dir).st_mtime_ns
                except FileNotFoundError:
                    mtime = 0
                if mtime != last_mtime:
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
                    continue
                timeout = self.poll_interval_s
                nxt = self._next_due()
                if nxt is not None:
                    timeout = max(0.0, min(timeout, nxt - time.monotonic()))
                self._loop_wake.clear()
                if self._due_now():
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._loop_wake.wait()
        finally:
            self._loop = None
            for slot in list(self._docked):
                self._unplug_slot(slot)

    def _due_now(self) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(d.left.is_set() and not d.reported_left for d in self._docked.values()) \
                or any(t <= now for t, _ in self._switching)
