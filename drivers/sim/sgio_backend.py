"""The kernel's side of ``SG_IO`` for simulated disks (``drivers/sgio.py``'s
seam): a node name per docked DV16 recorder, file descriptors that are only
numbers, and an ``ioctl`` that reads the ``sg_io_hdr`` the real code built
(CDB, direction, data-out), hands it to the simulated firmware's
``handle_cdb`` and writes status, sense, data-in and residue back into the
header as the kernel does. A node whose recorder left fails with ENODEV.

Every command that reached a simulated disk is recorded (``SIM_SG.commands``
and, for a daemon in a process of its own, one JSON line per command in
``log_path``): a test can assert what a device was sent, or that it was sent
nothing but INQUIRY.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.sgio import SG_DXFER_FROM_DEV, SG_DXFER_TO_DEV, SG_INTERFACE_ID, SG_IO, SgIoHdr

if TYPE_CHECKING:
    from drivers.sim.firmware_scsi import ScsiFirmware


@dataclass(frozen=True)
class Command:
    """One command that reached a simulated disk."""

    node: str
    serial: str
    cdb: bytes
    #: what the host sent with it (data-out); the device's answers are not recorded
    data_out: bytes
    data_in_len: int


class SimSg:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, ScsiFirmware] = {}
        self._fds: dict[int, str] = {}
        self._fd_numbers = itertools.count(1000)
        self.commands: list[Command] = []
        self.log_path: Path | None = None

    def plug(self, node: str, firmware: ScsiFirmware) -> None:
        with self._lock:
            self._nodes[node] = firmware

    def unplug(self, node: str) -> None:
        with self._lock:
            self._nodes.pop(node, None)

    def sent_to(self, node: str) -> list[Command]:
        with self._lock:
            return [c for c in self.commands if c.node == node]

    # -- what SgLink calls --------------------------------------------------------
    def open(self, node: str) -> int:
        with self._lock:
            if node not in self._nodes:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", node)
            fd = next(self._fd_numbers)
            self._fds[fd] = node
            return fd

    def close(self, fd: int) -> None:
        with self._lock:
            if self._fds.pop(fd, None) is None:
                raise OSError(errno.EBADF, "Bad file descriptor")

    def ioctl(self, fd: int, request: int, hdr: SgIoHdr) -> None:
        with self._lock:
            node = self._fds.get(fd)
            if node is None:
                raise OSError(errno.EBADF, "Bad file descriptor")
            firmware = self._nodes.get(node)
        if firmware is None:
            raise OSError(errno.ENODEV, "No such device")
        if request != SG_IO or hdr.interface_id != SG_INTERFACE_ID or not hdr.cmdp or not 6 <= hdr.cmd_len <= 16:
            raise OSError(errno.EINVAL, "Invalid argument")
        cdb = ctypes.string_at(hdr.cmdp, hdr.cmd_len)
        data_out = ctypes.string_at(hdr.dxferp, hdr.dxfer_len) \
            if hdr.dxfer_direction == SG_DXFER_TO_DEV and hdr.dxfer_len and hdr.dxferp else b""
        want = hdr.dxfer_len if hdr.dxfer_direction == SG_DXFER_FROM_DEV else 0
        self._record(Command(node, firmware.dev.serial, cdb, data_out, want))
        status, data_in, sense = firmware.handle_cdb(cdb, data_out, want)
        n = min(len(data_in), want)
        if n and hdr.dxferp:
            ctypes.memmove(hdr.dxferp, data_in, n)
        hdr.resid = want - n
        hdr.status = status
        hdr.masked_status = (status >> 1) & 0x7F
        hdr.host_status = 0
        sb = min(len(sense), hdr.mx_sb_len)
        if sb and hdr.sbp:
            ctypes.memmove(hdr.sbp, sense, sb)
        hdr.sb_len_wr = sb
        hdr.driver_status = 0x08 if sb else 0  # DRIVER_SENSE
        hdr.duration = 1

    def _record(self, cmd: Command) -> None:
        with self._lock:
            self.commands.append(cmd)
        path = self.log_path
        if path is not None:
            line = json.dumps({"node": cmd.node, "serial": cmd.serial, "cdb": cmd.cdb.hex(),
                               "data_out": cmd.data_out.hex(), "data_in_len": cmd.data_in_len})
            with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


SIM_SG = SimSg()
