"""Simulated recorder firmware, one class per real protocol family: what the
reference says a real one puts on the wire and enforces, nothing more.

* The read-only probe (IDCode, ``@Ver``, ``GBIDCODE?``, ping) answers
  without a login; everything else that needs one is refused until the
  password was accepted, with the family's documented error reply (A: byte 2
  != 01; C: status 00; D: an ``Error:`` line; F: ``{"password":"false"}``; E
  checks no password at all).
* The recorder keeps its own clock, ``clock_offset_s`` away from true time,
  in local time (UTC+8) where the family speaks local time.
* "Enter storage" is the last thing it answers: the command interface then
  leaves (the USB device drops off the bus once its reply was read; the TCP
  server closes), and ``on_switch`` tells the dock to bring up the storage
  device after the settle time.
* Frames of another family are not answered (silence: the caller times out)
  or stalled (control transfers), never guessed at.

The firmware is transport-free: the simulated USB backend and the TCP server
feed it transfers and return its replies.
"""

from __future__ import annotations

import abc
import hashlib
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from drivers.base import DriverError
from drivers.codec import ControlSetup, amba_ascii, amba_ctrl, bc_text, e12_tcp, record, zfy_ctrl, zzx_json
from drivers.sim.device import SimDevice

LOCAL = timezone(timedelta(hours=8))  # recorders keep local (Beijing) time
#: a simulated recorder leaves the bus at the latest this long after the switch
LEAVE_AFTER_S = 1.0


class SimStall(Exception):
    """The device stalls the request (EPIPE on the host)."""


class SimClock:
    def __init__(self, offset_s: float) -> None:
        self.offset = timedelta(seconds=offset_s)

    def now_utc(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def now_local(self) -> datetime:
        return self.now_utc().astimezone(LOCAL).replace(tzinfo=None)

    def set_utc(self, t: datetime) -> None:
        self.offset = t - datetime.now(UTC)

    def set_local(self, local: datetime) -> None:
        self.set_utc(local.replace(tzinfo=LOCAL))


class SimFirmware:
    def __init__(self, dev: SimDevice) -> None:
        self.dev = dev
        self.clock = SimClock(dev.clock_offset_s)
        self.logged_in = False
        self.switched = threading.Event()
        self.lock = threading.Lock()
        self.log: list[str] = []  # commands seen, for tests
        #: called once when the firmware accepted the storage switch
        self.on_switch: Callable[[], None] | None = None

    def enter_storage(self) -> None:
        if not self.switched.is_set():
            self.switched.set()
            if self.on_switch is not None:
                self.on_switch()

    def record(self) -> record.OfficerRecord:
        d = self.dev
        return record.OfficerRecord(d.serial, d.officer, d.officer_name, d.unit_no, d.unit)


class UsbFirmware(SimFirmware):
    #: per interface number: (class, endpoint addresses)
    interfaces: list[tuple[int, tuple[int, ...]]] = [(0xFF, (0x01, 0x81))]

    def control_out(self, setup: ControlSetup, data: bytes) -> None:
        raise SimStall

    def control_in(self, setup: ControlSetup) -> bytes:
        raise SimStall

    def bulk_out(self, ep: int, data: bytes) -> None:
        raise SimStall

    def bulk_in(self, ep: int, size: int) -> bytes | None:
        """Pending reply bytes, or None: the read times out."""
        return None

    def pending(self) -> bool:
        return False


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


# -- A: Ambarella control transfers ----------------------------------------------

class AmbaCtrlFirmware(UsbFirmware):
    interfaces = [(0xFF, (0x01, 0x81))]

    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.reply = b""

    def control_out(self, setup: ControlSetup, data: bytes) -> None:
        if setup.request_type != 0x40 or setup.request not in (0x55, 0x50) or setup.value != 0x0080:
            raise SimStall
        try:
            cmd, rest = amba_ctrl.parse_packet(data)
        except DriverError:
            raise SimStall from None
        with self.lock:
            self.log.append(f"{cmd:02x}")
            if cmd == amba_ctrl.LOGIN:
                self.logged_in = rest.rstrip(b"\0").decode("utf-8", "replace") == self.dev.password
                self.reply = bytes([0, 0, 1 if self.logged_in else 0]) + bytes(7)
            elif cmd == amba_ctrl.STORAGE and self.logged_in:
                self.reply = bytes(10)
                self.enter_storage()
            else:
                self.reply = bytes(10)

    def control_in(self, setup: ControlSetup) -> bytes:
        if setup.request_type != 0xC0 or setup.request != 0x55:
            raise SimStall
        with self.lock:
            out, self.reply = self.reply or bytes(10), b""
            return out[:setup.length]

    def pending(self) -> bool:
        return bool(self.reply)


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


# -- C: GA/T 947 frames over control transfers -------------------------------------------

class ZfyCtrlFirmware(UsbFirmware):
    interfaces = [(0xFF, (0x01, 0x81))]

    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.reply = b""

    def control_out(self, setup: ControlSetup, data: bytes) -> None:
        if setup.request_type != 0x40 or setup.request != 0x55 or setup.value != 0x00AA:
            raise SimStall
        try:
            req = zfy_ctrl.parse_request(data)
        except DriverError:
            raise SimStall from None
        with self.lock:
            self.log.append(f"{req.cmd:02x}")
            ok, payload = self._handle(req)
            # a reply is as long as its request; a refused read carries zeros
            body = payload if ok else bytes(len(req.payload))
            self.reply = zfy_ctrl.reply(req.cmd, body.ljust(len(req.payload), b"\0")[:len(req.payload)], ok,
                                        req.cls)

    def _handle(self, req: zfy_ctrl.Request) -> tuple[bool, bytes]:
        c = zfy_ctrl.COMMANDS
        if req.cls != zfy_ctrl.CORE:
            return False, b""
        if req.cmd == c["idcode"]:
            return True, self.dev.idcode.encode("ascii")
        if req.cmd in (c["login_admin"], c["login_user"]):
            self.logged_in = req.payload.rstrip(b"\0").decode("ascii", "replace") == self.dev.password
            return self.logged_in, b""
        if not self.logged_in:
            return False, b""
        if req.cmd == c["read_record"]:
            return True, record.pack(self.record(), record.ZFY_CTRL, "gbk")
        if req.cmd == c["set_clock"]:
            try:
                local = zfy_ctrl.parse_clock(req.payload)
            except DriverError:
                return False, b""
            self.clock.set_local(local)
            return True, zfy_ctrl.clock_payload(self.clock.now_local())
        if req.cmd == c["battery"]:
            return True, bytes([self.dev.battery_pct])
        if req.cmd == c["resolution"]:
            return True, b"\x01"
        if req.cmd == c["storage"]:
            self.enter_storage()
            return True, b""
        return False, b""

    def control_in(self, setup: ControlSetup) -> bytes:
        # the SDK reads with wValue 0x00aa, another tool with 0: both answered
        if setup.request_type != 0xC0 or setup.request != 0x55 or setup.value not in (0x00AA, 0):
            raise SimStall
        with self.lock:
            out, self.reply = self.reply, b""
            return out[:setup.length]

    def pending(self) -> bool:
        return bool(self.reply)


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
            return f"+SYSTIME:{self.clock.now_local():%Y%m%d%H%M%S},480,0,Asia/Shanghai\r\nOK\r\n"
        if name == "SYSTIME":
            try:
                utc = datetime.strptime(arg.split(",")[0], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            except ValueError:
                return "Error: para is error\r\n"
            self.clock.set_utc(utc)
            return f"+SYSTIME:{utc:%Y%m%d%H%M%S}\r\nOK\r\n"
        if name == "BATVAL?":
            return f"+BATVAL:{self.dev.battery_pct}\r\nOK\r\n"
        if name == "UDISKEN" and arg == "1":
            self.enter_storage()
            return "+UDISKEN:1\r\nOK\r\n"
        if name == "LOGOUT":
            self.logged_in = False
            return "+LOGOUT:Sucess\r\nOK\r\n"
        return "Error: para is error\r\n"


# -- TCP families ----------------------------------------------------------------------------

class TcpFirmware(SimFirmware):
    @abc.abstractmethod
    def serve(self, conn: socket.socket) -> None:
        """Answer one connection until it closes or the switch happened."""


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class E12Firmware(TcpFirmware):
    def _send(self, conn: socket.socket, payload: bytes) -> None:
        conn.sendall(e12_tcp.frame(payload, self.dev.length_order))

    def _recv(self, conn: socket.socket) -> bytes | None:
        head = _recv_exact(conn, 4)
        if head is None:
            return None
        n = int.from_bytes(head, self.dev.length_order)
        if n > e12_tcp.MAX_MESSAGE:
            return None
        return _recv_exact(conn, n)

    def serve(self, conn: socket.socket) -> None:
        data = e12_tcp.DATA_FOLLOWS
        while not self.switched.is_set():
            msg = self._recv(conn)
            if msg is None or not msg.startswith(b"E12"):
                return  # the recorder closes a connection that does not speak E12
            code = msg.decode("gbk", "replace")[6:]
            self.log.append(code)
            if code == "F808":
                self._send(conn, e12_tcp.PONG)
            elif code in ("S001", "S002"):
                self._send(conn, b"NULL")
            elif code == "S009":
                self._send(conn, data)
                self._send(conn, self.dev.idcode.encode("gbk"))
            elif code == "S004":
                self._send(conn, data)
                self._send(conn, record.pack(self.record(), record.E12, "gbk"))
            elif code == "S003":
                self._send(conn, data)
                text = self._recv(conn)
                try:
                    self.clock.set_local(e12_tcp.parse_time(text or b""))
                    self._send(conn, e12_tcp.SET_CLOCK_OK)
                except DriverError:
                    self._send(conn, e12_tcp.SET_CLOCK_FAILED)
            elif code == "N030":
                self._send(conn, data)
                self._send(conn, f"{self.clock.now_local():%Y-%m-%d %H:%M:%S}".encode())
            elif code == "S007":
                self._send(conn, data)
                self._send(conn, str(self.dev.battery_pct).encode())
            elif code == "S006":
                self._send(conn, data)
                self._send(conn, b"1920*1080")
            elif code in ("S010", "S011"):
                self._send(conn, data)
                self._send(conn, self.dev.password.encode("gbk"))
            elif code == "S008":
                self._send(conn, data)
                self._send(conn, e12_tcp.STORAGE_OK)
                self.enter_storage()
                return


class ZzxFirmware(TcpFirmware):
    def serve(self, conn: socket.socket) -> None:
        buf = b""
        while not self.switched.is_set():
            while b"\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                if len(buf) > zzx_json.MAX_LINE:
                    return
            line, _, buf = buf.partition(b"\n")
            try:
                msg_id, body = zzx_json.parse_request(line)
            except DriverError:
                continue
            self.log.append(str(msg_id))
            answer = self._answer(msg_id, body)
            if answer is not None:
                conn.sendall(zzx_json.reply(msg_id, answer))
            if self.switched.is_set():
                return

    def _answer(self, msg_id: int, body: dict[str, object]) -> dict[str, str] | None:
        c = zzx_json.COMMANDS
        if msg_id in (c["init"], c["idcode"]):
            return {"IDCode": self.dev.idcode}
        if msg_id not in c.values():
            return None  # an unknown id gets no reply
        if body.get("password") != self.dev.password:
            return {"password": "false"}
        ok = {"password": "true"}
        if msg_id == c["read_record"]:
            r = self.record()
            return ok | {"policeNo": r.officer, "serial": r.serial, "policeName": r.officer_name,
                         "groupNo": r.unit_no, "groupName": r.unit_name}
        if msg_id == c["set_clock"]:
            try:
                self.clock.set_utc(datetime.fromtimestamp(int(str(body.get("Time"))) / 1000, UTC))
            except (ValueError, OverflowError, OSError):
                return ok | {"Result": "false"}
            return ok | {"Result": "true"}
        if msg_id == c["read_clock"]:
            return ok | {"Time": str(int(self.clock.now_utc().timestamp())), "Result": "true"}
        if msg_id == c["battery"]:
            return ok | {"battery": str(self.dev.battery_pct)}
        if msg_id == c["resolution"]:
            return ok | {"VideoWidth": "1920", "VideoHeight": "1080"}
        if msg_id == c["disk"]:
            return ok | {"free": "1024", "total": "32768"}
        if msg_id == c["storage"]:
            if self.dev.recording:
                return {"Result": "false"}
            self.enter_storage()
            return {"Result": "true"}
        return ok


#: protocol -> firmware class (every family but plain storage)
FIRMWARE: dict[str, type[SimFirmware]] = {
    "amba-ctrl": AmbaCtrlFirmware,
    "amba-ascii": AmbaAsciiFirmware,
    "zfy-ctrl": ZfyCtrlFirmware,
    "bc-text": BcTextFirmware,
    "e12-tcp": E12Firmware,
    "zzx-json": ZzxFirmware,
}
