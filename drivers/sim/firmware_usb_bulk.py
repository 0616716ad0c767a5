"""The simulated USB families that speak text over bulk endpoints: B, Ambarella
ASCII ``@...#`` frames (``AmbaAsciiFirmware``), and D, BC+ text lines
``BC+<CMD>\\r\\n`` (``BcTextFirmware``). Both share ``_BulkText``: requests
arrive on bulk OUT, replies queue for bulk IN and are handed over one packet at a
time; a frame of another family gets no answer.
"""

from __future__ import annotations

import abc
import hashlib
from datetime import UTC, datetime

from drivers.base import DriverError
from drivers.codec import amba_ascii, bc_text
from drivers.sim.device import SimDevice
from drivers.sim.firmware_base import SimStall, UsbFirmware


class _BulkText(UsbFirmware):
    """Bulk OUT requests, replies queued for bulk IN."""

    ep_out = 0x01
    ep_in = 0x81
    #: bytes a device hands over per IN transfer (one full-speed packet)
    packet = 64

    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.out = bytearray()
        self.queue = bytearray()

    def bulk_out(self, ep: int, data: bytes) -> None:
        if ep != self.ep_out:
            raise SimStall
        with self.lock:
            self.queue += self.handle(data)

    def bulk_in(self, ep: int, size: int) -> bytes | None:
        if ep != self.ep_in:
            raise SimStall
        with self.lock:
            if not self.queue:
                return None
            n = min(size, self.packet, len(self.queue))
            chunk = bytes(self.queue[:n])
            del self.queue[:n]
            return chunk

    def pending(self) -> bool:
        return bool(self.queue)

    @abc.abstractmethod
    def handle(self, data: bytes) -> bytes: ...


# -- B: Ambarella ASCII over bulk ------------------------------------------------------

class AmbaAsciiFirmware(_BulkText):
    def handle(self, data: bytes) -> bytes:
        try:
            cmd, payload = amba_ascii.parse_frame(data)
        except DriverError:
            return b""  # not this family's frame: no answer
        self.log.append(cmd)
        if cmd == amba_ascii.VERSION:
            return b"@Ver;OK;#"
        if cmd == amba_ascii.DEVICE_ID:
            ident = self.dev.serial
            return f"@Gdv;{len(ident)};{ident};#".encode()
        if cmd in (amba_ascii.SET_DATE, amba_ascii.SET_TIME):
            now = self.clock.now_local()
            try:
                if cmd == amba_ascii.SET_DATE:
                    d = datetime.strptime(payload, "%Y%m%d")
                    new = now.replace(year=d.year, month=d.month, day=d.day)
                else:
                    t = datetime.strptime(payload[:6], "%H%M%S")
                    new = now.replace(hour=t.hour, minute=t.minute, second=t.second, microsecond=0)
            except ValueError:
                return f"@{cmd};ERROR;#".encode()
            self.clock.set_local(new)
            return f"@{cmd};OK;#".encode()
        if cmd == amba_ascii.STORAGE:
            self.enter_storage()
            return b"@ATH;OK;#"
        return f"@{cmd};ERROR;#".encode()


# -- D: BC+ text over bulk --------------------------------------------------------------------

class BcTextFirmware(_BulkText):
    def __init__(self, dev: SimDevice, interface: int = 0, ep_out: int = 0x01, ep_in: int = 0x81) -> None:
        super().__init__(dev)
        self.ep_out, self.ep_in = ep_out, ep_in
        self.interfaces = [(0xFF, ()) for _ in range(interface)] + [(0xFF, (ep_out, ep_in))]
        self.buffer = b""

    def handle(self, data: bytes) -> bytes:
        self.buffer += data
        out = b""
        while b"\r\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\r\n")
            try:
                text = bc_text.parse_command(line + b"\r\n")
            except DriverError:
                continue  # not this family's: no answer
            self.log.append(text.split("=", 1)[0])
            out += self._answer(text).encode("utf-8")
        return out

    def _answer(self, text: str) -> str:
        name, _, arg = text.partition("=")
        if name == "GBIDCODE?":
            return f"+GBIDCODE:{self.dev.idcode}\r\nOK\r\n"
        if name == "PCUDISKSTAT?":
            return "+PCUDISKSTAT:0\r\nOK\r\n"
        if name == "LOGIN":
            user, _, digest = arg.partition(":")
            want = hashlib.md5(self.dev.password.encode(), usedforsecurity=False).hexdigest().upper()
            self.logged_in = user in ("admin", "user") and digest == want
            return "+LOGIN:Sucess\r\nOK\r\n" if self.logged_in else "Error: password\r\n"
        if not self.logged_in:
            return "Error: not login\r\n"
        if name == "GBCFG?":
            r = self.record()
            return f"+GBCFG:{r.serial},{r.officer},{r.officer_name},{r.unit_no},{r.unit_name}\r\nOK\r\n"
        if name == "SYSTIME?":
            offset = 480 if self.dev.systime_offset == "east" else -480
            return f"+SYSTIME:{self.clock.now_local():%Y%m%d%H%M%S},{offset},0,Asia/Shanghai\r\nOK\r\n"
        if name == "SYSTIME":
            try:
                utc = datetime.strptime(arg.split(",")[0], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            except ValueError:
                return "Error: para is error\r\n"
            self.clock.set_utc(utc)
            return f"+SYSTIME:{utc:%Y%m%d%H%M%S}\r\nOK\r\n"
        if name == "BATVAL?":
            if not self.dev.battery_set:
                return "Error: battery\r\n"  # unset; real error texts are unknown (§4.4)
            return f"+BATVAL:{self.dev.battery_pct}\r\nOK\r\n"
        if name == "UDISKEN" and arg == "1":
            self.enter_storage()
            return "+UDISKEN:1\r\nOK\r\n"
        if name == "LOGOUT":
            self.logged_in = False
            return "+LOGOUT:Sucess\r\nOK\r\n"
        return "Error: para is error\r\n"
