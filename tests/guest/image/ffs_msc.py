#!/usr/bin/python3
"""A USB mass-storage disk in user space, run INSIDE the guest: the bulk-only
transport (CBW, data, CSW) and the SCSI commands Linux's usb-storage and sd send,
over a backing file, behind a FunctionFS gadget on dummy_hcd. Unlike the kernel's
usb_f_mass_storage it can hand the CDBs it does not know to a callable: a
recorder that takes vendor commands through its own disk (the JieLi "DV16"
family, reference §2G) is this disk plus the simulator's
``handle_cdb(cdb, data_out, data_in_len) -> (status, data_in, sense)``.

    ffs_msc.py NAME IMG [--slot N] [--vid V] [--pid P] [--serial S] [--vendor V] [--product P]
               [--revision R] [--sim SIMDIR]

Answers TEST UNIT READY, REQUEST SENSE, INQUIRY (the vendor/product/revision
text given: what a station matches a DV16 by), MODE SENSE(6)/(10) (write
protected), READ CAPACITY(10), READ(10), PREVENT ALLOW MEDIUM REMOVAL, START
STOP UNIT, SYNCHRONIZE CACHE and VERIFY(10); WRITE(10) is refused (data protect:
a dock reads). Every other CDB goes to the vendor handler; without one (a plain
disk) it is ILLEGAL REQUEST / invalid opcode. Every CDB is logged as a ``cdb``
line, vendor ones (opcode 0xC0-0xFF, and any CDB handed to the handler) also as
``request vendor``: a test sees that no vendor command reached a disk the
station must leave alone.

--sim SIMDIR: a `dockgate sim make` folder whose family's simulator has a
``handle_cdb`` (FIRMWARE[protocol](device).handle_cdb); it answers the CDBs this
disk does not. Stdlib + the package's Python only.
"""

from __future__ import annotations

import argparse
import errno
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

# the package's libraries as /usr/bin/dockgate finds them: pure ones shared, compiled ones per Python ABI
sys.path.insert(0, f"/usr/lib/dockgate/python-{sys.version_info[0]}.{sys.version_info[1]}")
sys.path.insert(0, "/usr/lib/dockgate/python")

G = "/sys/kernel/config/usb_gadget"
DESCRIPTORS_MAGIC_V2, STRINGS_MAGIC = 3, 2
HAS_FS_DESC, HAS_HS_DESC, ALL_CTRL_RECIP = 1, 2, 64
EV_SETUP = 4
BLOCK = 512
CBW_SIG, CSW_SIG = 0x43425355, 0x53425355
GOOD, FAILED, PHASE_ERROR = 0, 1, 2
#: class requests on EP0 (bulk-only transport 3.1, 3.2)
BOT_RESET, GET_MAX_LUN = 0xFF, 0xFE

#: (cdb, data_out, data_in_len) -> (SCSI status, data in, sense): the DV16 simulator's handle_cdb
VendorHandler = Callable[[bytes, bytes, int], tuple[int, bytes, bytes]]

NO_SENSE = (0, 0, 0)
INVALID_OPCODE = (0x05, 0x20, 0x00)
INVALID_FIELD = (0x05, 0x24, 0x00)
LBA_OUT_OF_RANGE = (0x05, 0x21, 0x00)
WRITE_PROTECTED = (0x07, 0x27, 0x00)


def log(*a: object) -> None:
    print(f"[msc {time.monotonic():9.3f}]", *a, flush=True)


def w(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def descriptors() -> bytes:
    def speed(mps: int) -> bytes:
        intf = struct.pack("<BBBBBBBBB", 9, 4, 0, 0, 2, 0x08, 0x06, 0x50, 1)  # mass storage, SCSI, bulk-only
        ep = b"".join(struct.pack("<BBBBHB", 7, 5, addr, 2, mps, 0) for addr in (0x01, 0x81))
        return intf + ep

    body = struct.pack("<II", 3, 3) + speed(64) + speed(512)
    return struct.pack("<III", DESCRIPTORS_MAGIC_V2, 12 + len(body), HAS_FS_DESC | HAS_HS_DESC | ALL_CTRL_RECIP) + body


def strings() -> bytes:
    body = struct.pack("<H", 0x0409) + b"mass storage\0"
    return struct.pack("<IIII", STRINGS_MAGIC, 16 + len(body), 1, 1) + body


def fixed_sense(key: int, asc: int, ascq: int) -> bytes:
    """Fixed-format sense data, 18 bytes (SPC-4 4.5.3)."""
    return bytes([0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0])


class Disk:
    """The SCSI side: a read-only block device over IMG, vendor CDBs to *vendor*."""

    def __init__(self, img: str, inquiry: tuple[str, str, str], vendor: VendorHandler | None) -> None:
        self.f = open(img, "rb")  # noqa: SIM115 - open for the gadget's life
        self.blocks = os.fstat(self.f.fileno()).st_size // BLOCK
        self.inquiry_text = inquiry
        self.vendor = vendor
        self.sense = fixed_sense(*NO_SENSE)

    def inquiry(self, cdb: bytes) -> tuple[int, bytes, bytes]:
        if cdb[1] & 1:  # EVPD: only the list of pages, which is empty but for itself
            if cdb[2] != 0:
                return self.fail(INVALID_FIELD)
            return GOOD, bytes([0, 0, 0, 1, 0]), b""
        v, p, r = self.inquiry_text
        text = f"{v:<8.8}{p:<16.16}{r:<4.4}".encode("ascii", "replace")
        # direct access, removable, SPC-4, response format 2, 31 more bytes
        return GOOD, bytes([0x00, 0x80, 0x06, 0x02, 31, 0, 0, 0]) + text, b""

    def fail(self, sense: tuple[int, int, int]) -> tuple[int, bytes, bytes]:
        return 2, b"", fixed_sense(*sense)  # CHECK CONDITION

    def command(self, cdb: bytes, data_out: bytes, want_in: int) -> tuple[int, bytes, bytes]:
        """SCSI status, data in, sense (empty: none)."""
        op = cdb[0]
        if op == 0x00 or op in (0x1E, 0x1B, 0x35, 0x2F):  # TEST UNIT READY, PREVENT ALLOW, START STOP, SYNC, VERIFY
            return GOOD, b"", b""
        if op == 0x03:  # REQUEST SENSE: the last command's, then cleared
            out, self.sense = self.sense, fixed_sense(*NO_SENSE)
            return GOOD, out, b""
        if op == 0x12:
            return self.inquiry(cdb)
        if op == 0x25:  # READ CAPACITY(10): last LBA, block length
            return GOOD, struct.pack(">II", self.blocks - 1, BLOCK), b""
        if op in (0x1A, 0x5A):  # MODE SENSE(6)/(10): header only, write protected, no block descriptors
            if op == 0x1A:
                return GOOD, bytes([3, 0, 0x80, 0]), b""
            return GOOD, bytes([0, 6, 0, 0x80, 0, 0, 0, 0]), b""
        if op == 0x28:  # READ(10)
            lba, count = struct.unpack(">I", cdb[2:6])[0], struct.unpack(">H", cdb[7:9])[0]
            if lba + count > self.blocks:
                return self.fail(LBA_OUT_OF_RANGE)
            self.f.seek(lba * BLOCK)
            return GOOD, self.f.read(count * BLOCK), b""
        if op in (0x2A, 0x0A):  # WRITE(10)/(6): a dock reads
            return self.fail(WRITE_PROTECTED)
        if self.vendor is not None:
            log(f"request vendor cdb={cdb.hex()} out={data_out[:64].hex()} in={want_in}")
            status, data, sense = self.vendor(cdb, data_out, want_in)
            return status, data[:want_in], sense
        if op >= 0xC0:
            log(f"request vendor cdb={cdb.hex()} (no handler: invalid opcode)")
        return self.fail(INVALID_OPCODE)


class Gadget:
    def __init__(self, a: argparse.Namespace, disk: Disk) -> None:
        self.a, self.disk = a, disk
        self.d = f"{G}/{a.name}"
        self.mnt = f"/run/ffs-{a.name}"

    def create(self) -> None:
        d, a = self.d, self.a
        os.makedirs(f"{d}/strings/0x409")
        for k, v in (("idVendor", a.vid), ("idProduct", a.pid), ("bcdDevice", "0x0100"), ("bcdUSB", "0x0200")):
            w(f"{d}/{k}", v)
        w(f"{d}/strings/0x409/serialnumber", a.serial)
        w(f"{d}/strings/0x409/manufacturer", a.manufacturer)
        w(f"{d}/strings/0x409/product", a.usb_product)
        os.makedirs(f"{d}/configs/c.1")
        w(f"{d}/configs/c.1/MaxPower", "100")
        os.makedirs(f"{d}/functions/ffs.{a.name}")
        os.symlink(f"{d}/functions/ffs.{a.name}", f"{d}/configs/c.1/ffs.{a.name}")
        os.makedirs(self.mnt, exist_ok=True)
        subprocess.run(["mount", "-t", "functionfs", a.name, self.mnt], check=True)

    def run(self) -> None:
        self.create()
        self.ep0 = os.open(f"{self.mnt}/ep0", os.O_RDWR)
        os.write(self.ep0, descriptors())
        os.write(self.ep0, strings())
        self.ep_out = os.open(f"{self.mnt}/ep1", os.O_RDWR)
        self.ep_in = os.open(f"{self.mnt}/ep2", os.O_RDWR)
        w(f"{self.d}/UDC", f"dummy_udc.{self.a.slot}")
        log(f"disk {self.disk.inquiry_text} of {self.disk.blocks} blocks bound to dummy_udc.{self.a.slot}")
        with open(f"/run/ffs-{self.a.name}.pid", "w") as f:
            f.write(f"{os.getpid()}\n")
        threading.Thread(target=self.ep0_loop, daemon=True).start()
        self.bulk_loop()

    def ep0_loop(self) -> None:
        while True:
            try:
                ev = os.read(self.ep0, 12)
            except OSError:
                return
            rt, req, val, _idx, _length, etype = struct.unpack("<BBHHHB3x", ev)
            if etype != EV_SETUP:
                continue
            try:
                if (rt, req) == (0xA1, GET_MAX_LUN):
                    os.write(self.ep0, b"\0")  # one LUN
                elif (rt, req) == (0x21, BOT_RESET):
                    os.read(self.ep0, 0)
                    log("bulk-only mass storage reset")
                else:
                    log(f"request ep0 bmRequestType={rt:#04x} bRequest={req:#04x} wValue={val:#06x} (stalled)")
                    self.stall_ep0(rt)
            except OSError as e:
                log("ep0", e)

    def stall_ep0(self, rt: int) -> None:
        try:
            if rt & 0x80:
                os.read(self.ep0, 0)
            else:
                os.write(self.ep0, b"")
        except OSError as e:
            if e.errno != errno.EL2HLT:
                raise

    def halt(self, fd: int) -> None:
        """Stall a bulk endpoint: FunctionFS halts it on I/O in the wrong direction."""
        try:
            if fd == self.ep_in:
                os.read(fd, 1)
            else:
                os.write(fd, b"\0")
        except OSError as e:
            if e.errno != errno.EBADMSG:
                raise

    def bulk_loop(self) -> None:
        while True:
            try:
                cbw = os.read(self.ep_out, 512)
            except OSError:
                time.sleep(0.05)  # not configured yet, or between a reset and the next SET_CONFIGURATION
                continue
            if len(cbw) != 31 or struct.unpack_from("<I", cbw)[0] != CBW_SIG:
                log(f"invalid CBW ({len(cbw)} bytes): stalling both bulk endpoints")
                self.halt(self.ep_in)
                self.halt(self.ep_out)
                continue
            _, tag, length, flags, _lun, cb_len = struct.unpack_from("<IIIBBB", cbw)
            cdb = cbw[15:15 + max(1, min(cb_len, 16))]
            to_host = bool(flags & 0x80)
            data_out = b""
            if length and not to_host:
                while len(data_out) < length:
                    data_out += os.read(self.ep_out, min(length - len(data_out), 1 << 16))
            status, data_in, sense = self.disk.command(cdb, data_out, length if to_host else 0)
            if cdb[0] != 0x28:  # reads are many; the rest shows what the host asked
                log(f"cdb {cdb.hex()} len={length}{' in' if to_host else ''} status={status}")
            self.disk.sense = sense or fixed_sense(*NO_SENSE)
            residue = length
            if to_host and length:
                data_in = data_in[:length]
                if data_in:
                    os.write(self.ep_in, data_in)
                    residue = length - len(data_in)
                if residue and len(data_in) % 64 == 0:
                    self.halt(self.ep_in)  # short but a whole packet: only a stall ends the data stage
            elif not to_host:
                residue = 0 if status == GOOD else length
            csw_status = GOOD if status == GOOD else FAILED
            os.write(self.ep_in, struct.pack("<IIIB", CSW_SIG, tag, residue, csw_status))


def vendor_from_sim(simdir: Path) -> VendorHandler:
    from drivers.sim.device import load_sim_device
    from drivers.sim.firmware import FIRMWARE

    dev = load_sim_device(simdir)
    handler: VendorHandler = FIRMWARE[dev.protocol](dev).handle_cdb  # type: ignore[attr-defined]
    return handler


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("img")
    p.add_argument("--slot", type=int, default=0)
    p.add_argument("--vid", default="0x1209")
    p.add_argument("--pid", default="0x0001")
    p.add_argument("--serial", default="MSC0001")
    p.add_argument("--manufacturer", default="dockgate test bed")
    p.add_argument("--usb-product", default="userspace disk")
    p.add_argument("--vendor", default="TESTBED", help="INQUIRY vendor (8)")
    p.add_argument("--product", default="PLAIN DISK", help="INQUIRY product (16)")
    p.add_argument("--revision", default="0100", help="INQUIRY revision (4)")
    p.add_argument("--sim", type=Path, help="a sim folder whose family's simulator has handle_cdb")
    a = p.parse_args()
    disk = Disk(a.img, (a.vendor, a.product, a.revision), vendor_from_sim(a.sim) if a.sim else None)
    Gadget(a, disk).run()


if __name__ == "__main__":
    main()
