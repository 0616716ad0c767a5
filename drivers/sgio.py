"""SCSI pass-through on Linux: the ``SG_IO`` ioctl on a disk's sg (or block)
node, with nothing but the kernel and the standard library (``fcntl``,
``ctypes``). The JieLi DV16 family (reference §2G) talks its vendor CDBs this
way, as its Windows SDK does with ``IOCTL_SCSI_PASS_THROUGH_DIRECT``.

The node: ``/dev/sgN`` opened read-write lets its owner send any CDB; the
block node (``/dev/sdX``) passes vendor opcodes only with CAP_SYS_RAWIO (the
kernel's command filter), so detection hands the sg node where there is one.

Blocking, one command at a time; the driver runs in a worker thread like the
USB drivers. The ioctl sits behind a small seam (``SgBackend``: open, ioctl,
close) so the simulator stands in at the ioctl level: the real code path
builds the ``sg_io_hdr``, the simulator reads the CDB and data-out from it
and writes status, sense, data-in and residue back into it, as the kernel
does (``drivers/sim/sgio_backend.py``), the way ``drivers/sim/usb_backend.py``
stands in for libusb under pyusb.

Failures, per the driver contract (``drivers/base.py``):

=========================================  =====================================
what                                       error
=========================================  =====================================
node missing, device gone (ENODEV, ENXIO,  ``DeviceGone`` (transient)
EIO, ENOENT), host DID_NO_CONNECT/BAD_TARGET
no permission to open the node (EACCES,    ``DeviceGone`` with errno (transient:
EPERM)                                     udev may not have set the group yet)
EPERM on a command (a block node filters   ``CommandFailed`` permanent, naming
vendor opcodes without CAP_SYS_RAWIO)      the sg module
timeout (DID_TIME_OUT, ETIMEDOUT)          ``DeviceTimeout`` (transient)
CHECK CONDITION, NOT READY / UNIT          ``CommandFailed`` transient
ATTENTION / ABORTED COMMAND, BUSY status
CHECK CONDITION, any other sense key       ``CommandFailed`` permanent
(ILLEGAL REQUEST: the firmware does not
know the command), other host errors
=========================================  =====================================
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import threading
from dataclasses import dataclass
from typing import Protocol

from drivers.base import CommandFailed, DeviceGone, DeviceTimeout, DriverError, MalformedReply
from drivers.codec import dv16_scsi

SG_IO = 0x2285
SG_INTERFACE_ID = ord("S")
SG_DXFER_NONE = -1
SG_DXFER_TO_DEV = -2
SG_DXFER_FROM_DEV = -3
SENSE_LEN = 32
#: host_status values (DID_*)
DID_OK, DID_NO_CONNECT, DID_BUS_BUSY, DID_TIME_OUT, DID_BAD_TARGET = 0x00, 0x01, 0x02, 0x03, 0x04
DRIVER_SENSE = 0x08
#: SCSI status: BUSY, TASK SET FULL
_BUSY = {0x08, 0x28}
_TRANSIENT_SENSE = {dv16_scsi.NOT_READY, dv16_scsi.UNIT_ATTENTION, 0xB}  # 0xB: ABORTED COMMAND
_GONE = {errno.ENODEV, errno.ENXIO, errno.EIO, errno.ENOENT, errno.ESHUTDOWN}


class SgIoHdr(ctypes.Structure):
    """``struct sg_io_hdr`` (include/scsi/sg.h), native alignment."""

    _fields_ = [
        ("interface_id", ctypes.c_int),
        ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte),
        ("mx_sb_len", ctypes.c_ubyte),
        ("iovec_count", ctypes.c_ushort),
        ("dxfer_len", ctypes.c_uint),
        ("dxferp", ctypes.c_void_p),
        ("cmdp", ctypes.c_void_p),
        ("sbp", ctypes.c_void_p),
        ("timeout", ctypes.c_uint),
        ("flags", ctypes.c_uint),
        ("pack_id", ctypes.c_int),
        ("usr_ptr", ctypes.c_void_p),
        ("status", ctypes.c_ubyte),
        ("masked_status", ctypes.c_ubyte),
        ("msg_status", ctypes.c_ubyte),
        ("sb_len_wr", ctypes.c_ubyte),
        ("host_status", ctypes.c_ushort),
        ("driver_status", ctypes.c_ushort),
        ("resid", ctypes.c_int),
        ("duration", ctypes.c_uint),
        ("info", ctypes.c_uint),
    ]


class SgBackend(Protocol):
    """The seam: what the kernel does for ``SgLink``."""

    def open(self, node: str) -> int: ...

    def ioctl(self, fd: int, request: int, hdr: SgIoHdr) -> None: ...

    def close(self, fd: int) -> None: ...


class KernelSg:
    """The real thing: ``os.open`` and ``fcntl.ioctl`` (the header is
    written back in place by the kernel)."""

    def open(self, node: str) -> int:
        return os.open(node, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def ioctl(self, fd: int, request: int, hdr: SgIoHdr) -> None:
        fcntl.ioctl(fd, request, hdr, True)

    def close(self, fd: int) -> None:
        os.close(fd)


KERNEL = KernelSg()


@dataclass(frozen=True)
class Reply:
    """What one command gave back."""

    status: int
    data: bytes
    sense: dv16_scsi.Sense | None


class SgLink:
    """One disk's pass-through; opened on first use, one command at a time."""

    def __init__(self, node: str, label: str, backend: SgBackend = KERNEL, timeout_in_ms: int = 2000,
                 timeout_out_ms: int = 10_000) -> None:
        self.node = node
        self.label = label
        self.backend = backend
        self.timeout_in_ms = timeout_in_ms
        self.timeout_out_ms = timeout_out_ms
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = self.backend.open(self.node)
            except OSError as e:
                raise self._os_error(e, "open") from None
        return self._fd

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # a node whose device left: nothing to release
                self.backend.close(fd)

    def _os_error(self, e: OSError, what: str) -> DriverError:
        if e.errno == errno.ETIMEDOUT:
            return DeviceTimeout(self.label, f"{what} on {self.node}: timed out")
        if e.errno == errno.EPERM and what != "open":
            # the kernel filters vendor opcodes on a block node without CAP_SYS_RAWIO: trying again cannot
            # help; the sg node (module sg, group set by the station's udev rules) is the way in
            return CommandFailed(self.label, what, f"{self.node} refuses vendor commands (EPERM): load the sg "
                                 "module so the recorder's /dev/sg node is used")
        if e.errno not in _GONE | {errno.EACCES, errno.EPERM}:
            # EINVAL, ENOTTY: not a node that takes SG_IO at all
            return CommandFailed(self.label, what, f"{self.node}: {e.strerror or e}")
        gone = DeviceGone(self.label, f"{what} on {self.node}: {e.strerror or e}")
        gone.errno = e.errno
        return gone

    def read(self, cdb: bytes, length: int, name: str) -> bytes:
        """A data-in command; the bytes the device sent (at most *length*)."""
        return self.execute(cdb, name, data_in=length).data

    def write(self, cdb: bytes, data: bytes, name: str) -> None:
        self.execute(cdb, name, data_out=data)

    def execute(self, cdb: bytes, name: str, *, data_in: int = 0, data_out: bytes = b"") -> Reply:
        if data_in and data_out:
            raise ValueError("a command moves data one way")
        cmd = ctypes.create_string_buffer(cdb, len(cdb))
        sense = ctypes.create_string_buffer(SENSE_LEN)
        hdr = SgIoHdr()
        hdr.interface_id = SG_INTERFACE_ID
        hdr.cmd_len = len(cdb)
        hdr.cmdp = ctypes.addressof(cmd)
        hdr.mx_sb_len = SENSE_LEN
        hdr.sbp = ctypes.addressof(sense)
        buf = None
        if data_in:
            buf = ctypes.create_string_buffer(data_in)
            hdr.dxfer_direction, hdr.dxfer_len, hdr.timeout = SG_DXFER_FROM_DEV, data_in, self.timeout_in_ms
        elif data_out:
            buf = ctypes.create_string_buffer(data_out, len(data_out))
            hdr.dxfer_direction, hdr.dxfer_len, hdr.timeout = SG_DXFER_TO_DEV, len(data_out), self.timeout_out_ms
        else:
            hdr.dxfer_direction, hdr.timeout = SG_DXFER_NONE, self.timeout_out_ms
        if buf is not None:
            hdr.dxferp = ctypes.addressof(buf)
        with self._lock:
            fd = self._open()
            try:
                self.backend.ioctl(fd, SG_IO, hdr)
            except OSError as e:
                raise self._os_error(e, name) from None
        return self._verdict(hdr, buf, sense, name, data_in)

    def _verdict(self, hdr: SgIoHdr, buf: ctypes.Array[ctypes.c_char] | None,
                 sense_buf: ctypes.Array[ctypes.c_char], name: str, data_in: int) -> Reply:
        if hdr.host_status in (DID_NO_CONNECT, DID_BAD_TARGET):
            raise DeviceGone(self.label, f"{name}: the disk left (host status {hdr.host_status:#x})")
        if hdr.host_status == DID_TIME_OUT:
            raise DeviceTimeout(self.label, f"{name}: no answer within {hdr.timeout} ms")
        if hdr.host_status == DID_BUS_BUSY:
            raise CommandFailed(self.label, name, "bus busy", permanent=False)
        if hdr.host_status != DID_OK:
            raise CommandFailed(self.label, name, f"host status {hdr.host_status:#x}")
        raw_sense = sense_buf.raw[:min(hdr.sb_len_wr, SENSE_LEN)]
        try:
            sense = dv16_scsi.parse_sense(raw_sense)
        except MalformedReply as e:
            raise e.at(self.label) from None
        if hdr.status in _BUSY:
            raise CommandFailed(self.label, name, f"device busy (status {hdr.status:#x})", permanent=False)
        if hdr.status != dv16_scsi.GOOD or (sense is not None and sense.key not in (0, 1)):
            key = sense.key if sense is not None else None
            why = f"status {hdr.status:#x}" + (f", {sense}" if sense is not None else "")
            raise CommandFailed(self.label, name, why, permanent=key not in _TRANSIENT_SENSE)
        got = 0
        if data_in:
            resid = hdr.resid if 0 <= hdr.resid <= data_in else 0
            got = data_in - resid
        data = buf.raw[:got] if buf is not None and data_in else b""
        return Reply(hdr.status, data, sense)
