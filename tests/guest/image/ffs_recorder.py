#!/usr/bin/python3
"""A vendor-protocol recorder on real USB, run INSIDE the guest: dockgate's own
simulated firmware (drivers/sim/firmware.py, one class per protocol family of the
recorder protocol reference) behind a FunctionFS gadget on dummy_hcd.

    ffs_recorder.py NAME SIMDIR IMG [--slot N] [--product P] [--manufacturer M] [--vid V] [--pid P] [--tcp]

SIMDIR is a `dockgate sim make --protocol <family>` folder (serial, password, clock);
IMG the FAT image the recorder becomes after "enter storage". The gadget has
4255:0001 unless told otherwise, presents one vendor interface (ff/ff/ff, bulk OUT + bulk IN), hands EP0
vendor requests and bulk transfers to the firmware byte for byte, stalls what the
firmware stalls, and on the storage switch does what a real one does: drops off the
bus after its last reply and comes back on the same port as a mass-storage disk.
Every vendor request it gets (EP0 vendor/class setup, bulk OUT) is logged as a
``request`` line with the bytes of its data stage (``data=<hex>``): a test sees that
nothing was sent to a device the station must not open, and what a login carried.

--tcp plays the USB side of an Android recorder of a TCP family (E, F): the
command server runs elsewhere (the test host's simulator, reached over the
guest's network), the phone only shows an adb-like vendor interface (ff/42/01)
that the station must never talk to (every request to it is logged and stalled),
and becomes the mass-storage disk when told (SIGUSR1: the simulator accepted
the storage switch). Its pid is in /run/ffs-NAME.pid.

Stock dummy_hcd gives the first bulk OUT endpoint address 0x02 (IN stays 0x81): the
station's site profile says so (ep_out = 0x02), as a real site would for a model whose
endpoints differ from the shipped profile's. Stdlib + the package's Python only.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

# the package's libraries as /usr/bin/dockgate finds them: pure ones shared, compiled ones per Python ABI
sys.path.insert(0, f"/usr/lib/dockgate/python-{sys.version_info[0]}.{sys.version_info[1]}")
sys.path.insert(0, "/usr/lib/dockgate/python")

from drivers.codec import ControlSetup
from drivers.sim.bus import DEFAULT_IDCODE
from drivers.sim.device import load_sim_device
from drivers.sim.firmware import FIRMWARE, SimStall, UsbFirmware

G = "/sys/kernel/config/usb_gadget"
DESCRIPTORS_MAGIC_V2, STRINGS_MAGIC = 3, 2
HAS_FS_DESC, HAS_HS_DESC, ALL_CTRL_RECIP = 1, 2, 64
EV_UNBIND, EV_SETUP = 1, 4


def log(*a: object) -> None:
    print(f"[ffs {time.monotonic():9.3f}]", *a, flush=True)


def w(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def descriptors(subclass: int = 0xFF, protocol: int = 0xFF) -> bytes:
    def speed(mps: int) -> bytes:
        intf = struct.pack("<BBBBBBBBB", 9, 4, 0, 0, 2, 0xFF, subclass, protocol, 1)
        ep = b"".join(struct.pack("<BBBBHB", 7, 5, addr, 2, mps, 0) for addr in (0x01, 0x81))
        return intf + ep

    body = struct.pack("<II", 3, 3) + speed(64) + speed(512)
    flags = HAS_FS_DESC | HAS_HS_DESC | ALL_CTRL_RECIP  # device-recipient vendor requests too
    return struct.pack("<III", DESCRIPTORS_MAGIC_V2, 12 + len(body), flags) + body


def strings() -> bytes:
    body = struct.pack("<H", 0x0409) + b"vendor interface\0"
    return struct.pack("<IIII", STRINGS_MAGIC, 16 + len(body), 1, 1) + body


def hexdata(data: bytes) -> str:
    return data[:256].hex() + ("..." if len(data) > 256 else "")


class Recorder:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        dev = load_sim_device(a.simdir)
        # the IDCode the simulated dock gives a recorder whose device.toml names none (drivers/sim/bus.py)
        self.dev = dev.model_copy(update={"idcode": dev.idcode or DEFAULT_IDCODE.get(dev.protocol, "ABCDE")})
        self.switch_now = threading.Event()
        if a.tcp:
            # the phone's USB side only: the simulator elsewhere answers the commands; nothing here may be asked
            self.fw = UsbFirmware(self.dev)
            signal.signal(signal.SIGUSR1, lambda *_: self.switch_now.set())
        else:
            fw = FIRMWARE[self.dev.protocol](self.dev)
            assert isinstance(fw, UsbFirmware), f"{self.dev.protocol} is not a USB family (use --tcp)"
            self.fw = fw
            fw.on_switch = self.switch_now.set
        self.d = f"{G}/{a.name}"
        self.mnt = f"/run/ffs-{a.name}"
        self.lock = threading.Lock()  # firmware calls from EP0 and bulk threads

    def create(self) -> None:
        d = self.d
        os.makedirs(f"{d}/strings/0x409")
        for k, v in (("idVendor", self.a.vid), ("idProduct", self.a.pid), ("bcdDevice", "0x0100"),
                     ("bcdUSB", "0x0200")):
            w(f"{d}/{k}", v)
        w(f"{d}/strings/0x409/serialnumber", self.dev.serial)
        w(f"{d}/strings/0x409/manufacturer", self.a.manufacturer)
        w(f"{d}/strings/0x409/product", self.a.product)
        os.makedirs(f"{d}/configs/c.1")
        w(f"{d}/configs/c.1/MaxPower", "100")
        os.makedirs(f"{d}/functions/ffs.{self.a.name}")
        os.symlink(f"{d}/functions/ffs.{self.a.name}", f"{d}/configs/c.1/ffs.{self.a.name}")
        os.makedirs(self.mnt, exist_ok=True)
        subprocess.run(["mount", "-t", "functionfs", self.a.name, self.mnt], check=True)

    def bind(self) -> None:
        w(f"{self.d}/UDC", f"dummy_udc.{self.a.slot}")

    def switch_to_storage(self) -> None:
        """Off the bus after the last reply, back on the same port as a disk."""
        log("switching to mass storage")
        w(f"{self.d}/UDC", "\n")
        os.unlink(f"{self.d}/configs/c.1/ffs.{self.a.name}")
        f = f"{self.d}/functions/mass_storage.0"
        os.makedirs(f, exist_ok=True)
        w(f"{f}/stall", "1")
        w(f"{f}/lun.0/removable", "1")
        w(f"{f}/lun.0/ro", "0")
        w(f"{f}/lun.0/file", self.a.img)
        os.symlink(f, f"{self.d}/configs/c.1/mass_storage.0")
        time.sleep(1.0)  # the real devices take about a second to come back (firmware.LEAVE_AFTER_S)
        self.bind()
        log("re-enumerated as mass storage")

    def run(self) -> None:
        self.create()
        self.ep0 = os.open(f"{self.mnt}/ep0", os.O_RDWR)
        # --tcp: the interface adbd presents (ff/42/01), as an Android recorder with USB debugging shows
        os.write(self.ep0, descriptors(0x42, 0x01) if self.a.tcp else descriptors())
        os.write(self.ep0, strings())
        self.ep_out = os.open(f"{self.mnt}/ep1", os.O_RDWR)
        self.ep_in = os.open(f"{self.mnt}/ep2", os.O_RDWR)
        self.bind()
        log(f"{self.dev.protocol} recorder {self.dev.serial} bound to dummy_udc.{self.a.slot}")
        with open(f"/run/ffs-{self.a.name}.pid", "w") as f:
            f.write(f"{os.getpid()}\n")
        threading.Thread(target=self.bulk_loop, daemon=True).start()
        threading.Thread(target=self.ep0_loop, daemon=True).start()
        while not self.switch_now.wait(0.5):  # a timeout: SIGUSR1's handler runs between waits
            pass
        time.sleep(0.2)  # the status stage / last bulk IN of the switch reply
        self.switch_to_storage()
        log("commands:", " ".join(self.fw.log))  # what the station sent (SYSTIME= sets the clock)
        for fd in (self.ep_out, self.ep_in, self.ep0):
            os.close(fd)
        subprocess.run(["umount", "-l", self.mnt], check=False)
        log("done; the storage function stays bound")

    def ep0_loop(self) -> None:
        while True:
            try:
                ev = os.read(self.ep0, 12)
            except OSError:
                return
            rt, req, val, idx, length, etype = struct.unpack("<BBHHHB3x", ev)
            if etype != EV_SETUP:
                continue
            setup = ControlSetup(rt, req, val, idx, length)
            head = (f"request ep0 bmRequestType={rt:#04x} bRequest={req:#04x} wValue={val:#06x} wIndex={idx:#06x} "
                    f"wLength={length}")
            try:
                if rt & 0x80:
                    log(head)
                    with self.lock:
                        reply = self.fw.control_in(setup)
                    os.write(self.ep0, reply[:length])
                else:
                    data = os.read(self.ep0, length) if length else b""
                    log(f"{head} data={hexdata(data)}")
                    with self.lock:
                        self.fw.control_out(setup, data)
                    if not length:
                        os.read(self.ep0, 0)  # status stage of a no-data request
            except SimStall:
                self.stall(rt)
            except OSError as e:
                log("ep0", e)

    def stall(self, rt: int) -> None:
        # FunctionFS stalls EP0 when user space does the other direction's call (EL2HLT)
        try:
            if rt & 0x80:
                os.read(self.ep0, 0)
            else:
                os.write(self.ep0, b"")
        except OSError as e:
            if e.errno != errno.EL2HLT:
                raise

    def bulk_loop(self) -> None:
        fw = self.fw
        ep_out, ep_in = getattr(fw, "ep_out", 0x01), getattr(fw, "ep_in", 0x81)
        while not self.switch_now.is_set() or fw.pending():
            try:
                data = os.read(self.ep_out, 4096)
            except OSError:
                if self.switch_now.is_set():
                    return
                time.sleep(0.05)  # not enabled yet (before SET_CONFIGURATION)
                continue
            log(f"request bulk OUT {len(data)} bytes data={hexdata(data)}")
            try:
                with self.lock:
                    fw.bulk_out(ep_out, data)
            except SimStall:
                log("bulk OUT stalled")
                continue
            while True:
                with self.lock:
                    chunk = fw.bulk_in(ep_in, 512)
                if not chunk:
                    break
                os.write(self.ep_in, chunk)  # blocks until the station reads it


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("simdir", type=Path)
    p.add_argument("img")
    p.add_argument("--slot", type=int, default=0)
    p.add_argument("--product", default="guest amba-ascii")
    p.add_argument("--manufacturer", default="dockgate test bed")
    p.add_argument("--vid", default="0x4255")
    p.add_argument("--pid", default="0x0001")
    p.add_argument("--tcp", action="store_true", help="the USB side of a TCP-family recorder (E, F)")
    Recorder(p.parse_args()).run()


if __name__ == "__main__":
    main()
