"""Frame transports to a recorder's command interface: USB bulk (pyusb) or a
serial/CDC port (pyserial). Both read until the frame terminator, bounded."""

from __future__ import annotations

import abc
import contextlib
import time
from typing import Any

from drivers.base import DeviceGone, DeviceTimeout, DockedDevice, MalformedReply


class Transport(abc.ABC):
    def __init__(self, label: str, terminator: bytes, max_frame: int, timeout_s: float) -> None:
        self.label = label
        self.terminator = terminator
        self.max_frame = max_frame
        self.timeout_s = timeout_s

    @abc.abstractmethod
    def exchange(self, command: str, frame: bytes) -> bytes: ...

    def close(self) -> None:  # noqa: B027 - optional
        """Release the port or interface."""


def usb_backend_for(device: DockedDevice) -> Any:
    if device.source == "sim":
        from drivers.sim.usb_backend import SIM_USB

        return SIM_USB
    return None  # pyusb picks libusb1


class UsbTransport(Transport):
    def __init__(self, device: DockedDevice, label: str, terminator: bytes, max_frame: int,
                 timeout_s: float = 3.0) -> None:
        super().__init__(label, terminator, max_frame, timeout_s)
        import usb.core

        self._usb = usb
        bus, addr = device.hints.get("usb_bus"), device.hints.get("usb_address")
        try:
            dev = usb.core.find(
                backend=usb_backend_for(device), idVendor=device.ids.vid, idProduct=device.ids.pid,
                custom_match=(lambda d: str(d.bus) == bus and str(d.address) == addr)
                if bus and addr else None)
        except usb.core.NoBackendError:
            raise DeviceGone(label, "no USB backend (libusb) available") from None
        if dev is None:
            raise DeviceGone(label, "USB device not found")
        self.dev = dev
        try:
            with contextlib.suppress(NotImplementedError, usb.core.USBError):
                if dev.is_kernel_driver_active(0):
                    dev.detach_kernel_driver(0)
            dev.set_configuration()
            intf = dev.get_active_configuration()[(0, 0)]
            self.ep_out = usb.util.find_descriptor(intf, custom_match=lambda e: not (
                e.bEndpointAddress & 0x80))
            self.ep_in = usb.util.find_descriptor(intf, custom_match=lambda e: bool(
                e.bEndpointAddress & 0x80))
        except usb.core.USBError as e:
            raise DeviceGone(label, f"USB setup failed: {e}") from None
        if self.ep_out is None or self.ep_in is None:
            raise DeviceGone(label, "no bulk endpoints on interface 0")

    def exchange(self, command: str, frame: bytes) -> bytes:
        usb = self._usb
        ms = int(self.timeout_s * 1000)
        try:
            self.ep_out.write(frame, ms)
            out = b""
            deadline = time.monotonic() + self.timeout_s
            while not out.endswith(self.terminator):
                if len(out) > self.max_frame:
                    raise MalformedReply(self.label, command, "no terminator within the frame limit", out)
                if time.monotonic() > deadline:
                    raise DeviceTimeout(self.label, f"{command}: reply incomplete")
                out += bytes(self.ep_in.read(self.ep_in.wMaxPacketSize * 8, ms))
            return out
        except usb.core.USBTimeoutError:
            raise DeviceTimeout(self.label, f"{command}: no reply within {self.timeout_s:.0f}s") from None
        except usb.core.USBError as e:
            raise DeviceGone(self.label, f"{command}: {e}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._usb.util.dispose_resources(self.dev)


class SerialTransport(Transport):
    def __init__(self, port: str, baudrate: int, label: str, terminator: bytes, max_frame: int,
                 timeout_s: float = 3.0) -> None:
        super().__init__(label, terminator, max_frame, timeout_s)
        import serial

        self._serial = serial
        try:
            self.port = serial.Serial(port, baudrate=baudrate, timeout=timeout_s,
                                      write_timeout=timeout_s, exclusive=True)
        except serial.SerialException as e:
            raise DeviceGone(label, f"cannot open {port}: {e}") from None

    def exchange(self, command: str, frame: bytes) -> bytes:
        try:
            self.port.reset_input_buffer()
            self.port.write(frame)
            out = bytes(self.port.read_until(self.terminator, self.max_frame + 1))
        except self._serial.SerialException as e:
            raise DeviceGone(self.label, f"{command}: {e}") from None
        if not out:
            raise DeviceTimeout(self.label, f"{command}: no reply within {self.timeout_s:.0f}s")
        if not out.endswith(self.terminator):
            if len(out) > self.max_frame:
                raise MalformedReply(self.label, command, "no terminator within the frame limit", out)
            raise DeviceTimeout(self.label, f"{command}: reply incomplete")
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.port.close()
