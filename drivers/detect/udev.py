"""Real hot-plug detection through udev (pyudev).

At start every USB device already present is reported (a station rebooting
with recorders docked serves them), then add/remove events follow, read from
the netlink monitor's descriptor on the event loop, never blocking it.

Only devices that could be recorders are reported (mass storage, CDC, vendor
class interfaces); hubs and input devices are ignored. Whether a reported
device is read at all is the firmware profiles' decision: a device no
profile claims raises ``foreign_device`` and is never opened. Profiles match
the device's own strings (sysfs, else udev's ``*_ENC``), never the hardware
database's names, and the event carries what was matched on (strings,
interface classes, port) so an admin sees why a device is foreign.

Slots: ``detect.ports`` maps USB port paths (``1-1.2``, as in sysfs) to slot
numbers, so a slot's number is the dock's physical bay. Ports not listed take
the lowest free slot, and keep it: a device that re-enumerates on the same
port (a recorder switched to mass storage) comes back on the same slot.

A device that is mass storage and nothing else is reported once its volume is
mounted (``volume`` set), so that a recorder's storage side reaches its dock
session ready to read; devices with a vendor or CDC interface are reported at
once, with ``volume`` None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from pathlib import Path

from drivers.base import DockedDevice, UsbIds
from drivers.detect import Attached, Detached, DetectEvent, Detector, DetectProblem

log = logging.getLogger(__name__)
_RECORDER_CLASSES = re.compile(r":(08|02|0a|ff)[0-9a-f]{4}:", re.IGNORECASE)
_COMMAND_CLASSES = re.compile(r":(02|0a|ff)[0-9a-f]{4}:", re.IGNORECASE)
#: a mass-storage device still unmounted after this long is reported as a problem
MOUNT_PATIENCE_S = 60.0


def _unescape(value: str) -> str:
    # udev's *_ENC properties escape bytes as \xNN (of UTF-8 text)
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), value.encode())
    return raw.decode("utf-8", errors="replace")


def _sysfs_strings(sysdir: Path) -> dict[str, str | None] | None:
    """The device's own string descriptors as the kernel read them at
    enumeration (sysfs ``manufacturer``/``product``/``serial``; a string the
    device does not have is no file), or None where there is no sysfs
    device (tests, a device already gone)."""
    if not (sysdir / "idVendor").is_file():
        return None
    out: dict[str, str | None] = {}
    for attr in ("manufacturer", "product", "serial"):
        try:
            out[attr] = (sysdir / attr).read_bytes().decode("utf-8", errors="replace").removesuffix("\n") or None
        except OSError:
            out[attr] = None
    return out


def ids_from_properties(props: Mapping[str, str], sysdir: Path | None = None) -> UsbIds | None:
    """VID:PID and the device's OWN strings: sysfs where the device is there
    to read (exact, as the kernel decoded them), else udev's ``ID_VENDOR_ENC``,
    ``ID_MODEL_ENC`` and ``ID_SERIAL_SHORT``. Never the hardware database's
    ``ID_VENDOR_FROM_DATABASE``/``ID_MODEL_FROM_DATABASE``: the database names
    VID 4255 "GoPro" and 1209:0001 "pid.codes Test PID", names no device
    sends, so a profile's regexes on the strings ``lsusb -v`` shows (the
    device's) would never match (issue 28)."""
    try:
        vid_hex, pid_hex = props["ID_VENDOR_ID"], props["ID_MODEL_ID"]
        vid, pid = int(vid_hex, 16), int(pid_hex, 16)
    except (KeyError, ValueError):
        return None
    own = _sysfs_strings(sysdir) if sysdir is not None else None
    if own is not None:
        return UsbIds(vid, pid, own["serial"], own["product"], own["manufacturer"])

    def enc(key: str, id_hex: str) -> str | None:
        # with no string descriptor udev puts the id itself there ("4255"): not a string the device sent
        value = _unescape(props.get(key, ""))
        return None if not value or value.lower() == id_hex.lower() else value

    return UsbIds(vid, pid, props.get("ID_SERIAL_SHORT") or None, enc("ID_MODEL_ENC", pid_hex),
                  enc("ID_VENDOR_ENC", vid_hex))


def interface_classes(props: Mapping[str, str]) -> str:
    """udev's ``ID_USB_INTERFACES`` (``:ffffff:080650:``) as class/subclass/protocol
    per interface, the way ``lsusb -v`` reads: ``ff/ff/ff 08/06/50``."""
    return " ".join(f"{c[0:2]}/{c[2:4]}/{c[4:6]}" for c in props.get("ID_USB_INTERFACES", "").lower().split(":")
                    if re.fullmatch(r"[0-9a-f]{6}", c))


def could_be_recorder(props: Mapping[str, str]) -> bool:
    if props.get("DEVTYPE") != "usb_device":
        return False
    if props.get("ID_VENDOR_ID", "").lower() == "1d6b":  # Linux root hubs
        return False
    return bool(_RECORDER_CLASSES.search(props.get("ID_USB_INTERFACES", "")))


def storage_only(props: Mapping[str, str]) -> bool:
    """Mass storage and no command interface: a recorder's storage side."""
    interfaces = props.get("ID_USB_INTERFACES", "")
    return ":08" in interfaces.lower() and not _COMMAND_CLASSES.search(interfaces)


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
    found = _mounted(devpath, sys_root, mountinfo)
    return found[0] if found is not None else None


def volume_label(number: str, udev_data: Path = Path("/run/udev/data")) -> str | None:
    """The filesystem label udev's blkid import recorded for block device
    *number* (``major:minor``), or None. Family B pairs the storage device
    with its recorder by it (reference §2B)."""
    try:
        lines = (udev_data / f"b{number}").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    props = dict(line[2:].split("=", 1) for line in lines if line.startswith("E:") and "=" in line)
    if props.get("ID_FS_LABEL_ENC"):
        return _unescape(props["ID_FS_LABEL_ENC"]) or None
    return props.get("ID_FS_LABEL") or None


def _mounted(devpath: str, sys_root: Path, mountinfo: Path) -> tuple[Path, str] | None:
    """(mount point, major:minor) of a mounted block device under this USB device."""
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
            return Path(fields[4].encode().decode("unicode_escape")), fields[2]
    return None


def scsi_disk(devpath: str, sys_root: Path = Path("/sys")) -> tuple[str, str, str | None] | None:
    """A disk's SCSI INQUIRY vendor and model as the kernel read them (sysfs
    ``vendor``/``model`` of the ``H:C:T:L`` device, what udev's ID_VENDOR and
    ID_MODEL of the block device come from), and the node vendor CDBs go
    through: its ``/dev/sgN`` (no CAP_SYS_RAWIO needed when opened
    read-write), else its block node. None where there is no SCSI device."""
    for dirpath, _dirs, files in os.walk(sys_root / devpath.lstrip("/"), followlinks=False):
        if "vendor" not in files or "model" not in files or not re.fullmatch(r"\d+:\d+:\d+:\d+",
                                                                              os.path.basename(dirpath)):
            continue
        try:
            vendor, model = ((Path(dirpath) / f).read_bytes().decode("ascii", "replace").strip()
                             for f in ("vendor", "model"))
        except OSError:
            return None
        node = None
        for sub in ("scsi_generic", "block"):
            with contextlib.suppress(OSError):
                names = sorted(os.listdir(Path(dirpath) / sub))
                if names:
                    node = f"/dev/{names[0]}"
                    break
        return vendor, model, node
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
        #: the slot each unlisted port had last: a re-enumerated device keeps it
        self.last_by_port: dict[str, int] = {}
        #: when each slot's device left, in order (slots never used are not in it)
        self.left: dict[int, int] = {}
        self._left = 0

    def assign(self, devpath: str) -> int | None:
        if devpath in self.by_devpath:
            return self.by_devpath[devpath]
        port = port_of(devpath)
        used = set(self.by_devpath.values())
        slot = self.ports.get(port)
        if slot is None:
            last = self.last_by_port.get(port)
            if last is not None and last not in used:
                slot = last
        if slot is None:
            # a slot whose device just left may be a recorder switching to storage, coming back on
            # its port in a moment: a new device gets a slot never used, else the one left longest ago
            reserved = used | set(self.ports.values())
            free = [n for n in range(1, self.slots + 1) if n not in reserved]
            slot = min(free, key=lambda n: self.left.get(n, -1), default=None)
        if slot is None or slot in used:
            return None
        self.by_devpath[devpath] = slot
        self.last_by_port[port] = slot
        return slot

    def release(self, devpath: str) -> int | None:
        slot = self.by_devpath.pop(devpath, None)
        if slot is not None:
            self._left += 1
            self.left[slot] = self._left
        return slot


class UdevTranslator:
    """udev (action, devpath, properties) -> dock events. No I/O but sysfs and
    mountinfo look-ups."""

    def __init__(self, slots: int, ports: Mapping[str, int], sys_root: Path = Path("/sys"),
                 mountinfo: Path = Path("/proc/self/mountinfo"), udev_data: Path = Path("/run/udev/data")) -> None:
        self.map = SlotMap(slots, ports)
        self.sys_root = sys_root
        self.mountinfo = mountinfo
        self.udev_data = udev_data
        #: storage-only devices waiting for their volume: devpath -> (device, since)
        self.unmounted: dict[str, tuple[DockedDevice, float]] = {}

    def handle(self, action: str, devpath: str, props: Mapping[str, str],
               now: float | None = None) -> list[DetectEvent]:
        if action == "remove":
            self.unmounted.pop(devpath, None)
            slot = self.map.release(devpath)
            return [Detached(slot)] if slot is not None else []
        if action not in ("add", "bind") or not could_be_recorder(props):
            return []
        if devpath in self.map.by_devpath:
            return []  # "bind" after "add": already reported
        ids = ids_from_properties(props, self.sys_root / devpath.lstrip("/"))
        if ids is None:
            return []
        slot = self.map.assign(devpath)
        if slot is None:
            return [DetectProblem(0, f"no free slot for {ids} at port {port_of(devpath)}")]
        hints = {k: v for k, v in (("usb_bus", props.get("BUSNUM", "").lstrip("0")),
                                   ("usb_address", props.get("DEVNUM", "").lstrip("0")),
                                   ("tty", tty_of(devpath, self.sys_root) or ""),
                                   ("port", port_of(devpath)),
                                   # what an admin needs to see why no profile claims it (foreign_device);
                                   # the database names only to inform, never to match
                                   ("interfaces", interface_classes(props)),
                                   ("hwdb_vendor", props.get("ID_VENDOR_FROM_DATABASE", "")),
                                   ("hwdb_model", props.get("ID_MODEL_FROM_DATABASE", ""))) if v}
        device = DockedDevice(slot=slot, ids=ids, volume=None, source="udev", hints=hints, details=devpath)
        if storage_only(props):
            self.unmounted[devpath] = (device, time.monotonic() if now is None else now)
            return self.poll_mounts(now)
        return [Attached(device)]

    def poll_mounts(self, now: float | None = None) -> list[DetectEvent]:
        """Attached for storage devices whose volume is now mounted; a
        problem, once, for one that stays unmounted too long."""
        out: list[DetectEvent] = []
        now = time.monotonic() if now is None else now
        for devpath, (device, since) in list(self.unmounted.items()):
            try:
                found = _mounted(devpath, self.sys_root, self.mountinfo)
            except OSError:
                found = None
            if found is not None:
                del self.unmounted[devpath]
                volume, number = found
                label = volume_label(number, self.udev_data)
                ready = replace(device, volume=volume,
                                hints={**device.hints, "volume_label": label} if label else device.hints)
                disk = scsi_disk(devpath, self.sys_root)
                if disk is not None:  # profiles may claim a disk by its INQUIRY text (DV16)
                    vendor, model, node = disk
                    ready = replace(ready, ids=replace(device.ids, scsi_vendor=vendor, scsi_model=model),
                                    hints={**ready.hints, **({"scsi_node": node} if node else {})})
                out.append(Attached(ready))
            elif since >= 0 and now - since > MOUNT_PATIENCE_S:
                self.unmounted[devpath] = (device, -1.0)  # said once
                out.append(DetectProblem(device.slot, f"mass-storage device {device.ids} on port "
                                                      f"{port_of(devpath)} has no mounted volume"))
        return out


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
                try:
                    # while storage waits for its mount, look again every half second
                    async with asyncio.timeout(0.5 if self.translator.unmounted else None):
                        action, devpath, props = await queue.get()
                except TimeoutError:
                    for ev in self.translator.poll_mounts():
                        yield ev
                    continue
                for ev in self.translator.handle(action, devpath, props):
                    yield ev
        finally:
            loop.remove_reader(monitor.fileno())
