"""Ambarella-style recorders: ASCII commands over USB bulk.

``@ATH`` with the admin password logs in and switches to storage mode;
``@Gdv``/``@Gus``/``@Gun`` read device id, officer and unit; ``@Gdt`` reads
the clock and ``@Sdt``/``@Stm`` set date and time.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from drivers import amba_proto
from drivers.base import DockedDevice, DriverError, Identity, MalformedReply, WrongPassword
from drivers.massstorage import VolumeRecorder
from drivers.profiles import Profile
from drivers.transport import UsbTransport


class AmbaRecorder(VolumeRecorder):
    family = "amba"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.tz = ZoneInfo(profile.clock.timezone)
        self.transport = UsbTransport(device, self.label, b";#", amba_proto.MAX_FRAME)

    def call(self, cmd: str, arg: str = "") -> amba_proto.Reply:
        raw = self.transport.exchange(cmd, amba_proto.encode_request(cmd, arg))
        try:
            reply = amba_proto.decode_reply(raw)
        except amba_proto.FrameError as e:
            raise MalformedReply(self.label, cmd, str(e), raw) from None
        if reply.cmd != cmd:
            raise MalformedReply(self.label, cmd, f"reply is for {reply.cmd}", raw)
        return reply

    def _get(self, cmd: str) -> str:
        r = self.call(cmd)
        if not r.ok:
            raise DriverError(self.label, f"{cmd} refused ({r.data.decode('utf-8', 'replace')})")
        try:
            return r.data.decode("utf-8")
        except UnicodeDecodeError:
            return r.data.decode("gbk", "replace")

    def unlock(self, password: str | None) -> None:
        if not self.call("ATH", password or "").ok:
            raise WrongPassword(self.label)
        self._attach_volume()

    def identify(self) -> Identity:
        serial = self._get("Gdv")
        if not serial or not serial.isprintable():
            raise MalformedReply(self.label, "Gdv", "empty or unprintable device id")
        battery = None
        with contextlib.suppress(DriverError):  # nice to have, no reason to refuse a dock
            b = self._get("Gbt")
            battery = int(b) if b.isdigit() and int(b) <= 100 else None
        return Identity(serial=serial, model=self.profile.model or None, officer=self._get("Gus") or None,
                        unit=self._get("Gun") or None, battery_pct=battery)

    def read_clock(self) -> datetime | None:
        text = self._get("Gdt")
        try:
            local = datetime.strptime(text, "%Y%m%d%H%M%S")
        except ValueError:
            raise MalformedReply(self.label, "Gdt", f"not a time: {text[:32]!r}") from None
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    def set_clock(self, utc: datetime) -> bool:
        local = utc.astimezone(self.tz)
        for cmd, arg in (("Sdt", local.strftime("%Y%m%d")), ("Stm", local.strftime("%H%M%S00"))):
            if not self.call(cmd, arg).ok:
                raise DriverError(self.label, f"{cmd} refused")
        return True

    def close(self) -> None:
        self.transport.close()
