"""A pyusb backend serving simulated recorders.

pyusb's own core (``usb.core.find``, ``Device``, endpoints, ``usb.util``
string descriptors) runs unchanged on top of it; only the wire is simulated:
bulk OUT frames go to the simulated firmware, its replies come back on bulk
IN. Unplugging makes every call fail with ENODEV, as libusb does.
"""

from __future__ import annotations

import array
import errno
import itertools
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

from drivers.sim.firmware import SimFirmware

EP_OUT = 0x01
EP_IN = 0x81
_STRINGS = {1: "manufacturer", 2: "product", 3: "serial"}


@dataclass(eq=False)
class SimUsbDevice:
    vid: int
    pid: int
    serial: str
    product: str
    manufacturer: str
    firmware: SimFirmware
    bus: int = 1
    address: int = 0
    plugged: bool = True
    pending: bytearray = field(default_factory=bytearray)


def _desc(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(**kw)


class SimUsbBackend(usb.backend.IBackend):  # type: ignore[misc]
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: list[SimUsbDevice] = []
        self._addresses = itertools.count(2)

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

    # -- pyusb's side -------------------------------------------------------
    @staticmethod
    def _alive(dev: SimUsbDevice) -> SimUsbDevice:
        if not dev.plugged:
            raise usb.core.USBError("No such device (it may have been disconnected)",
                                    errno.ENODEV, -4)
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
        return _desc(bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=1,
                     bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=250,
                     extra_descriptors=[])

    def get_interface_descriptor(self, dev: SimUsbDevice, intf: int, alt: int,
                                 config: int) -> SimpleNamespace:
        return _desc(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                     bNumEndpoints=2, bInterfaceClass=0xFF, bInterfaceSubClass=0,
                     bInterfaceProtocol=0, iInterface=0, extra_descriptors=[])

    def get_endpoint_descriptor(self, dev: SimUsbDevice, ep: int, intf: int, alt: int,
                                config: int) -> SimpleNamespace:
        return _desc(bLength=7, bDescriptorType=5, bEndpointAddress=(EP_OUT, EP_IN)[ep],
                     bmAttributes=2, wMaxPacketSize=512, bInterval=0, bRefresh=0, bSynchAddress=0,
                     extra_descriptors=[])

    def open_device(self, dev: SimUsbDevice) -> SimUsbDevice:
        return self._alive(dev)

    def close_device(self, dev_handle: SimUsbDevice) -> None:
        return None

    def set_configuration(self, dev_handle: SimUsbDevice, config_value: int) -> None:
        self._alive(dev_handle)

    def get_configuration(self, dev_handle: SimUsbDevice) -> int:
        self._alive(dev_handle)
        return 1

    def set_interface_altsetting(self, dev_handle: SimUsbDevice, intf: int, altsetting: int) -> None:
        self._alive(dev_handle)

    def claim_interface(self, dev_handle: SimUsbDevice, intf: int) -> None:
        self._alive(dev_handle)

    def release_interface(self, dev_handle: SimUsbDevice, intf: int) -> None:
        return None

    def is_kernel_driver_active(self, dev_handle: SimUsbDevice, intf: int) -> bool:
        return False

    def bulk_write(self, dev_handle: SimUsbDevice, ep: int, intf: int, data: array.array[int],
                   timeout: int) -> int:
        dev = self._alive(dev_handle)
        reply = dev.firmware.handle(bytes(data))
        dev.pending += reply
        return len(data)

    def bulk_read(self, dev_handle: SimUsbDevice, ep: int, intf: int, buff: array.array[int],
                  timeout: int) -> int:
        dev = self._alive(dev_handle)
        if not dev.pending:
            raise usb.core.USBTimeoutError("Operation timed out", errno.ETIMEDOUT, -7)
        n = min(len(buff), len(dev.pending))
        buff[:n] = array.array("B", dev.pending[:n])
        del dev.pending[:n]
        return n

    def ctrl_transfer(self, dev_handle: SimUsbDevice, bmRequestType: int, bRequest: int,
                      wValue: int, wIndex: int, data: array.array[int], timeout: int) -> Any:
        dev = self._alive(dev_handle)
        if bmRequestType == 0x80 and bRequest == 6 and wValue >> 8 == 3:  # GET_DESCRIPTOR string
            index = wValue & 0xFF
            if index == 0:
                raw = bytes([4, 3, 0x09, 0x04])  # one language: en-US
            else:
                text = getattr(dev, _STRINGS.get(index, ""), "") or ""
                enc = text.encode("utf-16-le")
                raw = bytes([2 + len(enc), 3]) + enc
            n = min(len(data), len(raw))
            data[:n] = array.array("B", raw[:n])
            return n
        raise usb.core.USBError("Pipe error (request not supported)", errno.EPIPE, -9)


#: the one simulated bus of this process
SIM_USB = SimUsbBackend()
