"""A pyusb backend serving simulated recorders.

pyusb's own core (``usb.core.find``, ``Device``, ``ctrl_transfer``,
endpoints, ``usb.util`` string descriptors) runs unchanged on top of it; only
the wire is simulated: control transfers on EP0 and bulk transfers on the
interface and endpoints the simulated firmware declares go to the firmware.
A device that left the bus (unplugged, or switched to mass storage) fails
every call with ENODEV, as libusb does. Every transfer that reached the bus
is recorded (``SIM_USB.transfers``), so a test can assert what a device was
sent, or that it was sent nothing.
"""

from __future__ import annotations

import array
import contextlib
import errno
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

from drivers.codec import ControlSetup
from drivers.sim.firmware import SimStall, UsbFirmware

_STRINGS = {1: "manufacturer", 2: "product", 3: "serial"}
_GET_DESCRIPTOR = 6
#: a switched device leaves the bus this long after its last reply was read
LEAVE_DELAY_S = 0.05


@dataclass(frozen=True)
class Transfer:
    """One transfer that reached a simulated device."""

    address: int
    serial: str
    #: "control" or "bulk"
    kind: str
    #: "out" (host to device) or "in"
    direction: str
    #: control: the setup fields; bulk: None
    setup: ControlSetup | None
    endpoint: int
    data: bytes

    @property
    def is_write(self) -> bool:
        return self.direction == "out"


@dataclass(eq=False)
class SimUsbDevice:
    vid: int
    pid: int
    serial: str
    product: str
    manufacturer: str
    firmware: UsbFirmware
    bus: int = 1
    address: int = 0
    plugged: bool = True
    #: called once when the device leaves the bus by itself (the storage switch)
    on_leave: Callable[[], None] | None = None
    configuration: int = 0
    leaving: bool = False
    claimed: set[int] = field(default_factory=set)
    #: until then (time.monotonic()) opening the device fails as libusb does when
    #: udev has not yet given its node to our group (LIBUSB_ERROR_ACCESS)
    denied_until: float = 0.0


def _desc(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(**kw)


class SimUsbBackend(usb.backend.IBackend):  # type: ignore[misc]
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: list[SimUsbDevice] = []
        self._addresses = itertools.count(2)
        self.transfers: deque[Transfer] = deque(maxlen=100_000)
        #: also append every transfer to this file as a JSON line (set by the sim detector)
        self.log_path: Path | None = None

    # -- the simulator's side -------------------------------------------
    def plug(self, dev: SimUsbDevice) -> SimUsbDevice:
        with self._lock:
            dev.address = next(self._addresses)
            dev.plugged = True
            self._devices.append(dev)
        return dev

    def unplug(self, dev: SimUsbDevice) -> None:
        with self._lock:
            dev.plugged = False
            if dev in self._devices:
                self._devices.remove(dev)

    def sent_to(self, address: int) -> list[Transfer]:
        """Every transfer that reached the device at *address*."""
        return [t for t in list(self.transfers) if t.address == address]

    def _leave_if_switched(self, dev: SimUsbDevice) -> None:
        """After the storage switch the device drops off the bus shortly after
        its last reply has been read, as a real one resets its USB side."""
        if dev.plugged and not dev.leaving and dev.firmware.switched.is_set() and not dev.firmware.pending():
            dev.leaving = True
            timer = threading.Timer(LEAVE_DELAY_S, self.leave, (dev,))
            timer.daemon = True
            timer.start()

    def leave(self, dev: SimUsbDevice) -> None:
        """The device left by itself (not unplugged by the dock)."""
        if dev.plugged:
            self.unplug(dev)
            if dev.on_leave is not None:
                dev.on_leave()

    def _record(self, dev: SimUsbDevice, kind: str, direction: str, setup: ControlSetup | None, ep: int,
                data: bytes) -> None:
        self.transfers.append(Transfer(dev.address, dev.serial, kind, direction, setup, ep, data))
        path = self.log_path
        if path is not None:
            line = json.dumps({"vidpid": f"{dev.vid:04x}:{dev.pid:04x}", "serial": dev.serial,
                               "product": dev.product, "kind": kind, "direction": direction,
                               "setup": str(setup) if setup else None, "endpoint": ep, "data": data.hex()})
            with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    # -- pyusb's side -------------------------------------------------------
    @staticmethod
    def _alive(dev: SimUsbDevice) -> SimUsbDevice:
        if not dev.plugged:
            raise usb.core.USBError("No such device (it may have been disconnected)", errno.ENODEV, -4)
        return dev

    def enumerate_devices(self) -> list[SimUsbDevice]:
        with self._lock:
            return list(self._devices)

    def get_parent(self, dev: SimUsbDevice) -> None:
        return None

    def get_device_descriptor(self, dev: SimUsbDevice) -> SimpleNamespace:
        return _desc(bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
                     bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=dev.vid, idProduct=dev.pid,
                     bcdDevice=0x0100, iManufacturer=1, iProduct=2, iSerialNumber=3,
                     bNumConfigurations=1, address=dev.address, bus=dev.bus, port_number=dev.address,
                     port_numbers=(dev.address,), speed=3)

    def get_configuration_descriptor(self, dev: SimUsbDevice, config: int) -> SimpleNamespace:
        if config != 0:
            raise IndexError(config)
        return _desc(bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=len(dev.firmware.interfaces),
                     bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=250,
                     extra_descriptors=[])

    def get_interface_descriptor(self, dev: SimUsbDevice, intf: int, alt: int, config: int) -> SimpleNamespace:
        interfaces = dev.firmware.interfaces
        if alt != 0 or not 0 <= intf < len(interfaces):
            raise IndexError((intf, alt))
        cls, eps = interfaces[intf]
        return _desc(bLength=9, bDescriptorType=4, bInterfaceNumber=intf, bAlternateSetting=0,
                     bNumEndpoints=len(eps), bInterfaceClass=cls, bInterfaceSubClass=0,
                     bInterfaceProtocol=0, iInterface=0, extra_descriptors=[])

    def get_endpoint_descriptor(self, dev: SimUsbDevice, ep: int, intf: int, alt: int,
                                config: int) -> SimpleNamespace:
        _cls, eps = dev.firmware.interfaces[intf]
        return _desc(bLength=7, bDescriptorType=5, bEndpointAddress=eps[ep], bmAttributes=2, wMaxPacketSize=512,
                     bInterval=0, bRefresh=0, bSynchAddress=0, extra_descriptors=[])

    def open_device(self, dev: SimUsbDevice) -> SimUsbDevice:
        if time.monotonic() < dev.denied_until:  # as pyusb's libusb1 backend raises it: (text, code, errno)
            raise usb.core.USBError("Access denied (insufficient permissions)", -3, errno.EACCES)
        return self._alive(dev)

    def close_device(self, dev_handle: SimUsbDevice) -> None:
        return None

    def set_configuration(self, dev_handle: SimUsbDevice, config_value: int) -> None:
        self._alive(dev_handle).configuration = config_value

    def get_configuration(self, dev_handle: SimUsbDevice) -> int:
        return self._alive(dev_handle).configuration or 1

    def set_interface_altsetting(self, dev_handle: SimUsbDevice, intf: int, altsetting: int) -> None:
        self._alive(dev_handle)

    def claim_interface(self, dev_handle: SimUsbDevice, intf: int) -> None:
        self._alive(dev_handle).claimed.add(intf)

    def release_interface(self, dev_handle: SimUsbDevice, intf: int) -> None:
        dev_handle.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: SimUsbDevice, intf: int) -> bool:
        return False

    def clear_halt(self, dev_handle: SimUsbDevice, ep: int) -> None:
        self._alive(dev_handle)

    def bulk_write(self, dev_handle: SimUsbDevice, ep: int, intf: int, data: array.array[int],
                   timeout: int) -> int:
        dev = self._alive(dev_handle)
        raw = bytes(data)
        self._record(dev, "bulk", "out", None, ep, raw)
        try:
            dev.firmware.bulk_out(ep, raw)
        except SimStall:
            raise usb.core.USBError("Pipe error", errno.EPIPE, -9) from None
        self._leave_if_switched(dev)
        return len(raw)

    def bulk_read(self, dev_handle: SimUsbDevice, ep: int, intf: int, buff: array.array[int],
                  timeout: int) -> int:
        dev = self._alive(dev_handle)
        try:
            chunk = dev.firmware.bulk_in(ep, len(buff))
        except SimStall:
            raise usb.core.USBError("Pipe error", errno.EPIPE, -9) from None
        if chunk is None:
            raise usb.core.USBTimeoutError("Operation timed out", errno.ETIMEDOUT, -7)
        self._record(dev, "bulk", "in", None, ep, chunk)
        buff[:len(chunk)] = array.array("B", chunk)
        self._leave_if_switched(dev)
        return len(chunk)

    def ctrl_transfer(self, dev_handle: SimUsbDevice, bmRequestType: int, bRequest: int,
                      wValue: int, wIndex: int, data: array.array[int], timeout: int) -> Any:
        dev = self._alive(dev_handle)
        is_in = bool(bmRequestType & 0x80)
        setup = ControlSetup(bmRequestType, bRequest, wValue, wIndex, len(data))
        if bmRequestType == 0x80 and bRequest == _GET_DESCRIPTOR and wValue >> 8 == 3:  # a string
            index = wValue & 0xFF
            if index == 0:
                raw = bytes([4, 3, 0x09, 0x04])  # one language: en-US
            else:
                text = getattr(dev, _STRINGS.get(index, ""), "") or ""
                enc = text.encode("utf-16-le")
                raw = bytes([2 + len(enc), 3]) + enc
            n = min(len(data), len(raw))
            data[:n] = array.array("B", raw[:n])
            self._record(dev, "control", "in", setup, 0, raw[:n])
            return n
        try:
            if is_in:
                reply = dev.firmware.control_in(setup)
                n = min(len(data), len(reply))
                data[:n] = array.array("B", reply[:n])
                self._record(dev, "control", "in", setup, 0, reply[:n])
                self._leave_if_switched(dev)
                return n
            raw = bytes(data)
            self._record(dev, "control", "out", setup, 0, raw)
            dev.firmware.control_out(setup, raw)
        except SimStall:
            raise usb.core.USBError("Pipe error (request not supported)", errno.EPIPE, -9) from None
        self._leave_if_switched(dev)
        return len(data)


#: the one simulated bus of this process
SIM_USB = SimUsbBackend()
