"""Simulated recorder firmware: what a real one enforces, nothing more.

Storage stays hidden until the admin password has been accepted (and, for
ZFY, SetMSDC called); a wrong password is refused; the device keeps its own
clock, ``clock_offset_s`` away from true time, until the station sets it.
The firmware is transport-free: the fake USB backend and the pty server feed
it frames and return its replies.
"""

from __future__ import annotations

import abc
import threading
from datetime import UTC, datetime, timedelta

from drivers import amba_proto, zfy_proto
from drivers.sim.device import SimDevice
from drivers.zfy_info import ZfyInfo, pack
from drivers.zfy_proto import Result

_LOCAL = timedelta(hours=8)  # recorders keep local (Beijing) time


class SimClock:
    def __init__(self, offset_s: float) -> None:
        self.offset = timedelta(seconds=offset_s)

    def now_utc(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def set_utc(self, t: datetime) -> None:
        self.offset = t - datetime.now(UTC)


class SimFirmware(abc.ABC):
    def __init__(self, dev: SimDevice) -> None:
        self.dev = dev
        self.clock = SimClock(dev.clock_offset_s)
        self.storage_visible = False
        self.lock = threading.Lock()
        self.log: list[str] = []  # commands seen, for tests

    @abc.abstractmethod
    def handle(self, frame: bytes) -> bytes:
        """One request frame in, one reply frame out."""


class SimZfyFirmware(SimFirmware):
    def handle(self, frame: bytes) -> bytes:
        with self.lock:
            try:
                req = zfy_proto.decode_request(frame)
            except zfy_proto.FrameError:
                return zfy_proto.encode_reply("S000", Result.CONNECT_FAILED)
            self.log.append(req.cmd)
            c = zfy_proto.COMMANDS
            if req.password != self.dev.password:
                return zfy_proto.encode_reply(req.cmd, Result.CHECK_PWD_FAILED)
            if req.cmd == c["check_password"]:
                return zfy_proto.encode_reply(req.cmd, Result.CHECK_PWD_SUCCESS)
            if req.cmd == c["get_id_code"]:
                return zfy_proto.encode_reply(req.cmd, Result.CONNECT_SUCCESS, self.dev.serial.encode())
            if req.cmd == c["get_info"]:
                info = ZfyInfo(self.dev.serial, self.dev.officer, self.dev.officer_name,
                               self.dev.unit_no, self.dev.unit)
                return zfy_proto.encode_reply(req.cmd, Result.CONNECT_SUCCESS,
                                              pack(info, self.dev.info_layout))
            if req.cmd == c["get_time"]:
                local = self.clock.now_utc() + _LOCAL
                return zfy_proto.encode_reply(req.cmd, Result.CONNECT_SUCCESS,
                                              local.strftime("%Y%m%d%H%M%S").encode())
            if req.cmd == c["sync_time"]:
                try:
                    local = datetime.strptime(req.args, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
                except ValueError:
                    return zfy_proto.encode_reply(req.cmd, Result.SET_SYSTEMTIME_FAILED)
                self.clock.set_utc(local - _LOCAL)
                return zfy_proto.encode_reply(req.cmd, Result.SET_SYSTEMTIME_SUCCESS)
            if req.cmd == c["set_msdc"]:
                self.storage_visible = True
                return zfy_proto.encode_reply(req.cmd, Result.MSDC_SUCCESS)
            if req.cmd == c["battery"]:
                return zfy_proto.encode_reply(req.cmd, Result.CONNECT_SUCCESS, b"87")
            return zfy_proto.encode_reply(req.cmd, Result.CONNECT_FAILED)


class SimAmbaFirmware(SimFirmware):
    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.logged_in = False

    def handle(self, frame: bytes) -> bytes:
        with self.lock:
            try:
                req = amba_proto.decode_request(frame)
            except amba_proto.FrameError:
                return amba_proto.encode_reply("Err", False)
            self.log.append(req.cmd)
            r = amba_proto.encode_reply
            if req.cmd == "ATH":
                self.logged_in = req.arg == self.dev.password
                self.storage_visible = self.logged_in
                return r("ATH", self.logged_in)
            if not self.logged_in:
                return r(req.cmd, False, b"login")
            local = self.clock.now_utc() + _LOCAL
            if req.cmd == "Gdv":
                return r("Gdv", True, self.dev.serial.encode())
            if req.cmd == "Gus":
                return r("Gus", True, self.dev.officer.encode())
            if req.cmd == "Gun":
                return r("Gun", True, self.dev.unit.encode("utf-8"))
            if req.cmd == "Gbt":
                return r("Gbt", True, b"64")
            if req.cmd == "Gdt":
                return r("Gdt", True, local.strftime("%Y%m%d%H%M%S").encode())
            if req.cmd in ("Sdt", "Stm"):
                try:
                    if req.cmd == "Sdt":
                        d = datetime.strptime(req.arg, "%Y%m%d")
                        new = local.replace(year=d.year, month=d.month, day=d.day)
                    else:
                        t = datetime.strptime(req.arg[:6], "%H%M%S")
                        new = local.replace(hour=t.hour, minute=t.minute, second=t.second,
                                            microsecond=0)
                except ValueError:
                    return r(req.cmd, False)
                self.clock.set_utc(new - _LOCAL)
                return r(req.cmd, True)
            return r(req.cmd, False, b"unknown")
