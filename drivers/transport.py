"""Transports to a recorder's command interface: USB (control transfers on
EP0, bulk on the profile's interface and endpoints, through pyusb) and TCP
(through a socket, optionally reached with ``adb forward``).

Every failure leaves as a typed driver error: a timeout is ``DeviceTimeout``,
a device that left the bus or closed the socket is ``DeviceGone``, a stalled
request is ``CommandFailed``. Nothing here knows a protocol.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from drivers.base import CommandFailed, DeviceGone, DeviceTimeout, DockedDevice, DriverError, NotRecognised
from drivers.codec import ControlSetup

#: how long a device announced by udev may still refuse us (its permissions
#: being set): 3 s was not always enough in a busy emulated guest
PERMISSION_WAIT_S = 10.0
_GONE = {errno.ENODEV, errno.ENOENT, errno.ESHUTDOWN, errno.EIO, errno.ENXIO}


def _node_mode(device: DockedDevice) -> str:
    """The device node's owner, group and mode, for the error that names the udev rules."""
    bus, addr = device.hints.get("usb_bus"), device.hints.get("usb_address")
    if not bus or not addr:
        return ""
    node = f"/dev/bus/usb/{int(bus):03d}/{int(addr):03d}"
    try:
        st = os.stat(node)
    except (OSError, ValueError):
        return f" ({node} not found)"
    return f" ({node} is uid {st.st_uid} gid {st.st_gid} mode {st.st_mode & 0o777:o})"


def usb_backend_for(device: DockedDevice) -> Any:
    if device.source == "sim":
        from drivers.sim.usb_backend import SIM_USB

        return SIM_USB
    return None  # pyusb picks libusb1


@dataclass(frozen=True)
class Interface:
    number: int
    cls: int
    endpoints: tuple[int, ...]


class UsbLink:
    """One opened USB device: EP0 control transfers, and bulk on one
    claimed interface when ``ep_out``/``ep_in`` are given."""

    def __init__(self, device: DockedDevice, label: str, *, configuration: int = 1, interface: int = 0,
                 ep_out: int | None = None, ep_in: int | None = None, timeout_ms: int = 1000) -> None:
        import usb.core
        import usb.util

        self._usb = usb
        self.label = label
        self.timeout_ms = timeout_ms
        self.interface = interface
        # udev may still be giving the device node to the dockgate group when the
        # device is announced (seen on a real boot under load): wait a moment
        # for the permission before calling it a fault
        deadline = time.monotonic() + PERMISSION_WAIT_S
        while True:
            try:
                self._open(device, label, configuration, interface, ep_out, ep_in)
                return
            except DeviceGone as e:
                if e.errno != errno.EACCES:
                    raise
                if time.monotonic() >= deadline:
                    raise DeviceGone(label, "no permission to open the USB device" + _node_mode(device)
                                     + ": are dockgate's udev rules installed (`dockgate udev-rules`) and udev "
                                       "reloaded?") from None
                time.sleep(0.2)

    def _open(self, device: DockedDevice, label: str, configuration: int, interface: int, ep_out: int | None,
              ep_in: int | None) -> None:
        usb = self._usb
        bus, addr = device.hints.get("usb_bus"), device.hints.get("usb_address")
        try:
            dev = usb.core.find(
                backend=usb_backend_for(device), idVendor=device.ids.vid, idProduct=device.ids.pid,
                custom_match=(lambda d: str(d.bus) == bus and str(d.address) == addr) if bus and addr else None)
        except usb.core.NoBackendError:
            raise DeviceGone(label, "no USB backend (libusb) available") from None
        except usb.core.USBError as e:
            raise self._error(e, "find") from None
        if dev is None:
            raise DeviceGone(label, "USB device not found")
        self.dev = dev
        self.ep_out: Any = None
        self.ep_in: Any = None
        try:
            with contextlib.suppress(NotImplementedError, usb.core.USBError):
                if dev.is_kernel_driver_active(interface):
                    dev.detach_kernel_driver(interface)
            with contextlib.suppress(usb.core.USBError):
                current = dev.get_active_configuration().bConfigurationValue
                if current == configuration:
                    configuration = 0  # already set: do not reset the device's state
            if configuration:
                dev.set_configuration(configuration)
            if ep_out is None and ep_in is None:
                return
            intf = dev.get_active_configuration()[(interface, 0)]
            usb.util.claim_interface(dev, interface)
        except usb.core.USBError as e:
            raise self._error(e, "USB set-up") from None
        except (KeyError, IndexError):
            raise NotRecognised(label, f"no interface {interface}") from None
        self.ep_out = usb.util.find_descriptor(intf, bEndpointAddress=ep_out) if ep_out is not None else None
        self.ep_in = usb.util.find_descriptor(intf, bEndpointAddress=ep_in) if ep_in is not None else None
        if (ep_out is not None and self.ep_out is None) or (ep_in is not None and self.ep_in is None):
            raise NotRecognised(label, f"interface {interface} lacks endpoint "
                                       f"{ep_out if self.ep_out is None else ep_in:#04x}")

    def _error(self, e: Exception, name: str) -> DriverError:
        usb = self._usb
        if isinstance(e, usb.core.USBTimeoutError):
            return DeviceTimeout(self.label, f"{name}: no answer within {self.timeout_ms} ms")
        code = getattr(e, "errno", None)
        if code == errno.EPIPE:
            return CommandFailed(self.label, name, "the device stalled the request")
        # ENODEV and friends: the device left; anything else libusb reports
        # leaves the device unusable for this dock as well
        gone = DeviceGone(self.label, f"{name}: {e}")
        gone.errno = code
        return gone

    # -- descriptors (read-only) -----------------------------------------
    def strings(self) -> tuple[str | None, str | None, str | None]:
        """(manufacturer, product, serial) from the string descriptors."""
        usb = self._usb
        out: list[str | None] = []
        for index in (self.dev.iManufacturer, self.dev.iProduct, self.dev.iSerialNumber):
            if not index:
                out.append(None)
                continue
            try:
                out.append(usb.util.get_string(self.dev, index))
            except (usb.core.USBError, ValueError) as e:
                if isinstance(e, usb.core.USBError) and getattr(e, "errno", None) in _GONE:
                    raise self._error(e, "string descriptor") from None
                out.append(None)
        return out[0], out[1], out[2]

    def interfaces(self) -> Iterator[Interface]:
        try:
            for intf in self.dev.get_active_configuration():
                yield Interface(intf.bInterfaceNumber, intf.bInterfaceClass,
                                tuple(ep.bEndpointAddress for ep in intf))
        except self._usb.core.USBError as e:
            raise self._error(e, "configuration descriptor") from None

    # -- EP0 ------------------------------------------------------------------
    def control_out(self, setup: ControlSetup, data: bytes, name: str) -> None:
        try:
            n = self.dev.ctrl_transfer(setup.request_type, setup.request, setup.value, setup.index, data,
                                       self.timeout_ms)
        except self._usb.core.USBError as e:
            raise self._error(e, name) from None
        if n != len(data):
            raise DeviceTimeout(self.label, f"{name}: {n} of {len(data)} bytes accepted")

    def control_in(self, setup: ControlSetup, name: str) -> bytes:
        try:
            return bytes(self.dev.ctrl_transfer(setup.request_type, setup.request, setup.value, setup.index,
                                                setup.length, self.timeout_ms))
        except self._usb.core.USBError as e:
            raise self._error(e, name) from None

    # -- bulk -----------------------------------------------------------------
    def write(self, data: bytes, name: str, attempts: int = 6) -> None:
        """Bulk OUT; a partial write is resent from where it stopped."""
        sent = 0
        try:
            for _ in range(attempts):
                sent += self.ep_out.write(data[sent:], self.timeout_ms)
                if sent >= len(data):
                    return
        except self._usb.core.USBError as e:
            raise self._error(e, name) from None
        raise DeviceTimeout(self.label, f"{name}: {sent} of {len(data)} bytes written")

    def read(self, size: int, name: str, timeout_ms: int | None = None) -> bytes:
        try:
            return bytes(self.ep_in.read(size, timeout_ms or self.timeout_ms))
        except self._usb.core.USBError as e:
            raise self._error(e, name) from None

    def drain(self, size: int, timeout_ms: int, limit: int = 64) -> int:
        """Read and drop whatever is pending on bulk IN until a read times out."""
        dropped = 0
        for _ in range(limit):
            try:
                dropped += len(self.ep_in.read(size, timeout_ms))
            except self._usb.core.USBTimeoutError:
                return dropped
            except self._usb.core.USBError as e:
                raise self._error(e, "drain") from None
        return dropped

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._usb.util.dispose_resources(self.dev)


class TcpLink:
    """A TCP connection to a recorder's command server."""

    def __init__(self, host: str, port: int, label: str, *, connect_timeout_ms: int = 3000,
                 send_timeout_ms: int = 3000, read_timeout_ms: int = 5000,
                 sock: socket.socket | None = None) -> None:
        """Connects to host:port, or uses *sock*, a socket already connected
        (one end of a socketpair in tests)."""
        self.label = label
        self.send_timeout = send_timeout_ms / 1000
        self.read_timeout = read_timeout_ms / 1000
        self._buf = b""
        if sock is not None:
            self.sock = sock
            return
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout_ms / 1000)
        except TimeoutError:
            raise DeviceTimeout(label, f"no TCP answer from {host}:{port}") from None
        except OSError as e:
            raise DeviceGone(label, f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def alive(self, wait_s: float) -> bool:
        """False if the peer closed the connection within *wait_s* without a
        word (an adb forward whose device side refused); True if it stays
        open or has sent something."""
        try:
            self.sock.settimeout(wait_s)
            return self.sock.recv(1, socket.MSG_PEEK) != b""
        except TimeoutError:
            return True
        except OSError:
            return False

    def send(self, data: bytes, name: str) -> None:
        try:
            self.sock.settimeout(self.send_timeout)
            self.sock.sendall(data)
        except TimeoutError:
            raise DeviceTimeout(self.label, f"{name}: send timed out") from None
        except OSError as e:
            raise DeviceGone(self.label, f"{name}: {e.strerror or e}") from None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed (0: the stream is at a message boundary)."""
        return len(self._buf)

    def _more(self, name: str, timeout: float | None = None) -> None:
        wait = self.read_timeout if timeout is None else timeout
        try:
            self.sock.settimeout(wait)
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise DeviceTimeout(self.label, f"{name}: no answer within {wait:g}s") from None
        except OSError as e:
            raise DeviceGone(self.label, f"{name}: {e.strerror or e}") from None
        if not chunk:
            raise DeviceGone(self.label, f"{name}: the recorder closed the connection")
        self._buf += chunk

    def recv_exact(self, n: int, name: str, timeout: float | None = None) -> bytes:
        while len(self._buf) < n:
            self._more(name, timeout)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv_line(self, name: str, limit: int) -> bytes:
        while b"\n" not in self._buf:
            if len(self._buf) > limit:
                raise DeviceTimeout(self.label, f"{name}: no line end within {limit} bytes")
            self._more(name)
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

