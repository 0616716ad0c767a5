"""Docking a simulated recorder: its firmware on the simulated USB bus (or
behind a TCP server), as the ``DockedDevice`` detection reports, and the
mass-storage device it becomes after the storage switch."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.base import DockedDevice
from drivers.ids import UsbIds
from drivers.profiles import Profile, Registry
from drivers.sim.adbd import SimAdbd
from drivers.sim.device import SimDevice
from drivers.sim.firmware import FIRMWARE, LEAVE_AFTER_S, BcTextFirmware, SimFirmware, TcpFirmware, UsbFirmware

#: the storage side's ids when neither device.toml nor the profile knows them
#: (pid.codes test range; no profile claims it: a stray one is foreign)
SIM_STORAGE_IDS = UsbIds(0x1209, 0x0FFF)
#: a disk claimed by its INQUIRY text (DV16), when device.toml gives no ids (no profile claims them)
SIM_DISK_IDS = UsbIds(0x1209, 0x0FFE)
_DISKS = itertools.count()
DEFAULT_IDCODE = {"bc-text": "BC004"}


def sim_product(protocol: str) -> str:
    """The product string a simulated recorder reports when device.toml
    gives none; the family's shipped profile matches it."""
    return f"dockgate-sim {protocol}"


@dataclass
class Docked:
    """One simulated recorder on the dock."""

    device: DockedDevice
    storage: DockedDevice | None
    settle_s: float
    firmware: SimFirmware | None = None
    #: set when the vendor interface left the bus after the switch
    left: threading.Event = field(default_factory=threading.Event)
    left_at: float = 0.0
    #: the detector reported the vendor device's Detached
    reported_left: bool = False
    #: ZZX with ``adb = true``: the simulated adbd the station reaches it through
    adbd: SimAdbd | None = None
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def unplug(self) -> None:
        for undo in reversed(self._undo):
            with contextlib.suppress(Exception):
                undo()
        self._undo.clear()


def plug(slot: int, dev: SimDevice, registry: Registry, on_leave: Callable[[Docked], None]) -> Docked:
    """Put *dev* on the simulated bus; *on_leave* runs (in a firmware thread)
    when its vendor interface leaves after the storage switch."""
    profile = registry.default_for(dev.protocol)
    default = profile.match
    vid = (default.vid if default.vid is not None else SIM_DISK_IDS.vid) if dev.vid is None else dev.vid
    pid = (default.pid if default.pid is not None else SIM_DISK_IDS.pid) if dev.pid is None else dev.pid
    product = dev.product if dev.product is not None else (
        sim_product(dev.protocol) if dev.protocol != "ums" else dev.model or None)
    if dev.protocol == "dv16-scsi":
        return _plug_disk(slot, dev, vid, pid, product)
    if dev.protocol == "ums":
        ids = UsbIds(vid, pid, dev.serial, product)
        hints = {k: v for k, v in (("officer", dev.officer), ("unit", dev.unit), ("model", dev.model),
                                   ("officer_name", dev.officer_name)) if v}
        hints["interfaces"] = "08/06/50"  # what a real one shows: mass storage, SCSI, bulk-only
        return Docked(DockedDevice(slot=slot, ids=ids, volume=dev.storage, source="sim", hints=hints, details=dev),
                      None, 0.0)
    dev = dev.model_copy(update={"idcode": dev.idcode or DEFAULT_IDCODE.get(dev.protocol, "ABCDE")})
    usb_serial = dev.usb_serial or (f"{dev.serial}_0" if dev.protocol == "bc-text" else dev.serial)
    ids = UsbIds(vid, pid, usb_serial, product, dev.manufacturer or "dockgate-sim")
    # the model's own profile shapes the simulated hardware (interface, endpoints)
    claimed = registry.match(ids)
    own = claimed is not None and claimed.protocol == dev.protocol
    profile = claimed if claimed is not None and own else profile
    storage = DockedDevice(slot=slot, ids=_storage_ids(dev, profile, usb_serial), volume=dev.storage, source="sim",
                           hints={"volume_label": dev.volume_label or dev.serial, "port": f"sim-{slot}"},
                           details=dev)
    firmware = _firmware(dev, profile, ids, own)
    docked = Docked(DockedDevice(slot=slot, ids=ids, volume=None, source="sim", details=dev), storage,
                    dev.storage_settle_s, firmware)

    def left() -> None:
        if not docked.left.is_set():
            docked.left.set()
            on_leave(docked)

    if isinstance(firmware, UsbFirmware):
        from drivers.sim.usb_backend import SIM_USB, SimUsbDevice

        usb_dev = SIM_USB.plug(SimUsbDevice(vid, pid, usb_serial, product or "", ids.manufacturer or "", firmware,
                                            on_leave=left))
        docked._undo.append(lambda: SIM_USB.unplug(usb_dev))

        def leave_soon() -> None:  # a device whose last reply is never read still leaves
            timer = threading.Timer(LEAVE_AFTER_S, SIM_USB.leave, (usb_dev,))
            timer.daemon = True
            timer.start()

        firmware.on_switch = leave_soon
        docked.device = DockedDevice(slot=slot, ids=ids, volume=None, source="sim", details=dev,
                                     hints={"usb_bus": str(usb_dev.bus), "usb_address": str(usb_dev.address),
                                            "port": f"sim-{slot}", "interfaces": "ff/ff/ff"})
    else:
        assert isinstance(firmware, TcpFirmware)
        from drivers.sim.tcp import SimTcpServer

        server = SimTcpServer(firmware)
        docked._undo.append(server.close)

        def gone() -> None:
            server.close()
            left()

        def switched() -> None:
            # the app answers, then the phone becomes a disk: the server goes
            timer = threading.Timer(0.05, gone)
            timer.daemon = True
            timer.start()

        firmware.on_switch = switched
        if dev.adb:
            def broadcast(action: str, extras: dict[str, int]) -> tuple[str, int] | None:
                # the ZZX app: com.zzx.sdk with a positive int extra "port" starts its server
                ok = action == "com.zzx.sdk" and extras.get("port", 0) > 0
                return (server.host, server.port) if ok else None

            adbd = SimAdbd(broadcast)
            docked._undo.append(adbd.close)
            docked.adbd = adbd
            docked.device = DockedDevice(slot=slot, ids=ids, volume=None, source="sim", details=dev,
                                         hints={"adb_serial": adbd.serial, "port": f"sim-{slot}"})
        else:
            docked.device = DockedDevice(slot=slot, ids=ids, volume=None, source="sim", details=dev,
                                         hints={"tcp_host": server.host, "tcp_port": str(server.port),
                                                "port": f"sim-{slot}"})
    return docked


def _plug_disk(slot: int, dev: SimDevice, vid: int, pid: int, product: str | None) -> Docked:
    """A recorder that is a disk from the start and takes vendor CDBs through
    it (DV16): the volume at once, and its firmware behind the simulated SG_IO
    node named in ``hints["scsi_node"]``, as udev detection names the real one."""
    from drivers.sim.firmware_scsi import Dv16Firmware
    from drivers.sim.sgio_backend import SIM_SG

    dev = dev.model_copy(update={"idcode": dev.idcode or DEFAULT_IDCODE.get(dev.protocol, "ABCDE")})
    firmware = Dv16Firmware(dev)
    node = f"sim-sg/{next(_DISKS)}/slot-{slot}"  # a new node each plug, as the kernel's sgN
    ids = UsbIds(vid, pid, dev.usb_serial or dev.serial, product, dev.manufacturer or "dockgate-sim",
                 scsi_vendor=dev.scsi_vendor, scsi_model=dev.scsi_model)
    SIM_SG.plug(node, firmware)
    hints = {"scsi_node": node, "port": f"sim-{slot}", "interfaces": "08/06/50",
             "volume_label": dev.volume_label or dev.serial}
    docked = Docked(DockedDevice(slot=slot, ids=ids, volume=dev.storage, source="sim", hints=hints, details=dev),
                    None, 0.0, firmware)
    docked._undo.append(lambda: SIM_SG.unplug(node))
    return docked


def _storage_ids(dev: SimDevice, profile: Profile, serial: str) -> UsbIds:
    if dev.storage_vid is not None and dev.storage_pid is not None:
        return UsbIds(dev.storage_vid, dev.storage_pid, serial)
    known = profile.storage.ids
    base = known or SIM_STORAGE_IDS
    return UsbIds(base.vid, base.pid, serial)


#: LibBodycam's device table: PIDs on interface 2 with bulk 0x02/0x83 (the rest: 0, 0x01/0x81)
_BC_INTERFACE_2 = {(0x1D70, 0x01D6), (0x1D70, 0x01D4)}


def _firmware(dev: SimDevice, profile: Profile, ids: UsbIds, claimed: bool) -> SimFirmware:
    cls = FIRMWARE[dev.protocol]
    if cls is BcTextFirmware:
        if claimed:  # the model's own profile says where its interface is
            u = profile.usb
            return BcTextFirmware(dev, u.interface, u.ep_out or 0x01, u.ep_in or 0x81)
        if (ids.vid, ids.pid) in _BC_INTERFACE_2:
            return BcTextFirmware(dev, 2, 0x02, 0x83)
        return BcTextFirmware(dev, 0, 0x01, 0x81)
    return cls(dev)
