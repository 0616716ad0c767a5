"""Real hot-plug detection through udev (pyudev).

At start every USB device already present is reported (a station rebooting
with recorders docked serves them), then add/remove events follow, read from
the netlink monitor's descriptor on the event loop, never blocking it.

Only devices that could be recorders are reported (mass storage, CDC, vendor
class interfaces); hubs and input devices are ignored. Whether a reported
device is read at all is the firmware profiles' decision: a device no
profile claims raises ``foreign_device`` and is never opened.

Slots: ``detect.ports`` maps USB port paths (``1-1.2``, as in sysfs) to slot
numbers, so a slot's number is the dock's physical bay. Ports not listed take
the lowest free slot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from drivers.base import DockedDevice, UsbIds
from drivers.detect import Attached, Detached, DetectEvent, Detector, DetectProblem

log = logging.getLogger(__name__)
_RECORDER_CLASSES = re.compile(r":(08|02|0a|ff)[0-9a-f]{4}:", re.IGNORECASE)


def _unescape(value: str) -> str:
    # udev's *_ENC properties escape bytes as \xNN
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def ids_from_properties(props: Mapping[str, str]) -> UsbIds | None:
    try:
        vid = int(props["ID_VENDOR_ID"], 16)
        pid = int(props["ID_MODEL_ID"], 16)
    except (KeyError, ValueError):
        return None
    product = (props.get("ID_MODEL_FROM_DATABASE") or _unescape(props.get("ID_MODEL_ENC", ""))
               or props.get("ID_MODEL") or None)
    vendor = props.get("ID_VENDOR_FROM_DATABASE") or _unescape(props.get("ID_VENDOR_ENC", "")) or None
    return UsbIds(vid, pid, props.get("ID_SERIAL_SHORT") or None, product, vendor)


def could_be_recorder(props: Mapping[str, str]) -> bool:
    if props.get("DEVTYPE") != "usb_device":
        return False
    if props.get("ID_VENDOR_ID", "").lower() == "1d6b":  # Linux root hubs
        return False
    return bool(_RECORDER_CLASSES.search(props.get("ID_USB_INTERFACES", "")))


def port_of(devpath: str) -> str:
    return devpath.rstrip("/").rsplit("/", 1)[-1]


def _find_under(sysdir: Path, want: Callable[[str, str], bool]) -> list[tuple[str, str]]:
    hits = []
    for dirpath, dirnames, _files in os.walk(sysdir, followlinks=False):
        parent = os.path.basename(dirpath)
        for d in dirnames:
            if want(parent, d):
                hits.append((dirpath, d))
    return hits


def mounted_volume(devpath: str, sys_root: Path = Path("/sys"), mountinfo: Path = Path("/proc/self/mountinfo")
                   ) -> Path | None:
    """The mount point of a block device that belongs to this USB device."""
    sysdir = sys_root / devpath.lstrip("/")
    numbers = set()
    for dirpath, name in _find_under(sysdir, lambda parent, d: parent == "block" or d.startswith("sd")):
        with_dev = Path(dirpath) / name / "dev"
        if with_dev.exists():
            numbers.add(with_dev.read_text().strip())
    if not numbers:
        return None
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[2] in numbers:
            return Path(fields[4].encode().decode("unicode_escape"))
    return None


def tty_of(devpath: str, sys_root: Path = Path("/sys")) -> str | None:
    for _dirpath, name in _find_under(sys_root / devpath.lstrip("/"), lambda parent, d: parent == "tty"):
        return f"/dev/{name}"
    return None


class SlotMap:
    def __init__(self, slots: int, ports: Mapping[str, int]) -> None:
        self.slots = slots
        self.ports = dict(ports)
        self.by_devpath: dict[str, int] = {}

    def assign(self, devpath: str) -> int | None:
        if devpath in self.by_devpath:
            return self.by_devpath[devpath]
        slot = self.ports.get(port_of(devpath))
        if slot is None:
            used = set(self.by_devpath.values()) | set(self.ports.values())
            slot = next((n for n in range(1, self.slots + 1) if n not in used), None)
        if slot is None or slot in self.by_devpath.values():
            return None
        self.by_devpath[devpath] = slot
        return slot

    def release(self, devpath: str) -> int | None:
        return self.by_devpath.pop(devpath, None)


class UdevTranslator:
    """udev (action, devpath, properties) -> dock events. No I/O but sysfs look-ups."""

    def __init__(self, slots: int, ports: Mapping[str, int], sys_root: Path = Path("/sys")) -> None:
        self.map = SlotMap(slots, ports)
        self.sys_root = sys_root

    def handle(self, action: str, devpath: str, props: Mapping[str, str]) -> list[DetectEvent]:
        if action == "remove":
            slot = self.map.release(devpath)
            return [Detached(slot)] if slot is not None else []
        if action not in ("add", "bind") or not could_be_recorder(props):
            return []
        ids = ids_from_properties(props)
        if ids is None:
            return []
        if devpath in self.map.by_devpath:
            return []  # "bind" after "add": already reported
        slot = self.map.assign(devpath)
        if slot is None:
            return [DetectProblem(0, f"no free slot for {ids} at port {port_of(devpath)}")]
        sys_root = self.sys_root

        def locate(timeout: float) -> Path | None:
            deadline = time.monotonic() + timeout
            while True:
                found = mounted_volume(devpath, sys_root)
                if found is not None or time.monotonic() > deadline:
                    return found
                time.sleep(0.25)

        hints = {k: v for k, v in (("usb_bus", props.get("BUSNUM", "").lstrip("0")),
                                   ("usb_address", props.get("DEVNUM", "").lstrip("0")),
                                   ("tty", tty_of(devpath, sys_root) or ""),
                                   ("port", port_of(devpath))) if v}
        return [Attached(DockedDevice(slot=slot, ids=ids, volume=None, source="udev", hints=hints,
                                      details=devpath, locate_volume=locate))]


class UdevDetector(Detector):
    def __init__(self, slots: int, ports: Mapping[str, int]) -> None:
        self.translator = UdevTranslator(slots, ports)

    async def events(self) -> AsyncIterator[DetectEvent]:
        import pyudev

        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by("usb", "usb_device")
        monitor.start()
        queue: asyncio.Queue[tuple[str, str, dict[str, str]]] = asyncio.Queue()

        def readable() -> None:
            while (dev := monitor.poll(timeout=0)) is not None:
                queue.put_nowait((dev.action or "", dev.device_path, dict(dev.properties)))

        loop = asyncio.get_running_loop()
        loop.add_reader(monitor.fileno(), readable)
        try:
            for dev in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
                for ev in self.translator.handle("add", dev.device_path, dict(dev.properties)):
                    yield ev
            while True:
                action, devpath, props = await queue.get()
                for ev in self.translator.handle(action, devpath, props):
                    yield ev
        finally:
            loop.remove_reader(monitor.fileno())
