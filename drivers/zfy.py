"""The ZFY (GA/T 947) command set, over USB bulk or a serial/CDC port.

Unlock = admin password check, then SetMSDC (mass-storage mode for this
plug-in only); identity from GetZFYInfo; clock read and SyncDevTime. Clips
are then read from the volume the recorder exposes.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from drivers import zfy_info, zfy_proto
from drivers.base import DockedDevice, DriverError, Identity, MalformedReply, WrongPassword
from drivers.massstorage import VolumeRecorder
from drivers.profiles import Profile
from drivers.transport import SerialTransport, Transport, UsbTransport
from drivers.zfy_proto import Result


class ZfyRecorder(VolumeRecorder):
    family = "zfy"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.password = ""
        self.commands = {**zfy_proto.COMMANDS, **profile.commands}
        self.tz = ZoneInfo(profile.clock.timezone)
        self.transport: Transport = self._open_transport()

    def _open_transport(self) -> Transport:
        return UsbTransport(self.device, self.label, b"#", zfy_proto.MAX_FRAME)

    def call(self, name: str, args: str = "", ok: tuple[int, ...] = (Result.CONNECT_SUCCESS,)) -> bytes:
        cmd = self.commands[name]
        raw = self.transport.exchange(name, zfy_proto.encode_request(cmd, self.password, args))
        try:
            reply = zfy_proto.decode_reply(raw)
        except zfy_proto.FrameError as e:
            raise MalformedReply(self.label, name, str(e), raw) from None
        if reply.cmd != cmd:
            raise MalformedReply(self.label, name, f"reply is for {reply.cmd}", raw)
        if reply.code == Result.CHECK_PWD_FAILED:
            raise WrongPassword(self.label)
        if reply.code not in ok:
            try:
                meaning = Result(reply.code).name
            except ValueError:
                raise MalformedReply(self.label, name, f"unknown result code {reply.code}", raw) from None
            raise DriverError(self.label, f"{name} answered {meaning}")
        return reply.payload

    def unlock(self, password: str | None) -> None:
        self.password = password or ""
        self.call("check_password", ok=(Result.CHECK_PWD_SUCCESS, Result.CONNECT_SUCCESS))
        self.call("set_msdc", ok=(Result.MSDC_SUCCESS,))
        self._attach_volume()

    def identify(self) -> Identity:
        raw = self.call("get_info")
        try:
            info = zfy_info.unpack(raw, self.profile.zfy.info_encoding)
        except zfy_info.ZfyInfoError as e:
            raise MalformedReply(self.label, "get_info", str(e), raw) from None
        battery = None
        with contextlib.suppress(DriverError):  # nice to have, no reason to refuse a dock
            text = self.call("battery").decode("ascii", "replace").strip()
            battery = int(text) if text.isdigit() and int(text) <= 100 else None
        return Identity(serial=info.serial, model=self.profile.model or None, officer=info.officer or None,
                        unit=info.unit_name or info.unit_no or None,
                        officer_name=info.officer_name or None, battery_pct=battery)

    def read_clock(self) -> datetime | None:
        raw = self.call("get_time")
        try:
            local = datetime.strptime(raw.decode("ascii"), "%Y%m%d%H%M%S")
        except (UnicodeDecodeError, ValueError):
            raise MalformedReply(self.label, "get_time", f"not a time: {raw[:32]!r}", raw) from None
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    def set_clock(self, utc: datetime) -> bool:
        local = utc.astimezone(self.tz).strftime("%Y%m%d%H%M%S")
        self.call("sync_time", local, ok=(Result.SET_SYSTEMTIME_SUCCESS,))
        return True

    def close(self) -> None:
        self.transport.close()


class ZfySerialRecorder(ZfyRecorder):
    family = "zfy-serial"

    def _open_transport(self) -> Transport:
        port = self.device.hints.get("tty")
        if not port:
            raise DriverError(self.label, "no serial port for this device")
        return SerialTransport(port, self.profile.serial.baudrate, self.label, b"#", zfy_proto.MAX_FRAME)
