"""Family D, ``BC+`` text commands over bulk (LibBodycam, reference §2D):
``GBIDCODE?`` probe without login, MD5 login, ``GBCFG?`` officer record,
``BATVAL?``, ``SYSTIME?`` (local time with its offset) and ``SYSTIME=`` (UTC),
then ``UDISKEN=1``. Bulk IN is drained before every command, and a reply is
read until the SDK's rule says it is complete."""

from __future__ import annotations

from datetime import datetime

from drivers.base import (
    DockedDevice,
    Identity,
    MalformedReply,
    Probe,
    StorageSwitch,
    WrongPassword,
)
from drivers.codec import bc_text
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder, commands
from drivers.transport import UsbLink

MAX_REPLY = 64 * 1024


class BcTextRecorder(ProtocolRecorder):
    family = "bc-text"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.commands = commands(profile, bc_text.COMMANDS)
        u = profile.usb
        self.read_size = u.read_size or 1024
        self.drain = True if u.drain is None else u.drain
        self.link: UsbLink | None = None

    def _link(self) -> UsbLink:
        if self.link is None:
            u = self.profile.usb
            self.link = UsbLink(self.device, self.label, configuration=u.configuration, interface=u.interface,
                                ep_out=u.ep_out or 0x01, ep_in=u.ep_in or 0x81, timeout_ms=u.timeout_ms or 1000)
        return self.link

    def _exchange(self, name: str, request: bytes) -> bytes:
        link = self._link()
        self._pace()
        if self.drain:
            u = self.profile.usb
            link.drain(u.drain_size, u.drain_timeout_ms)
        link.write(request, name)
        buf = b""
        while not bc_text.complete(buf):
            if len(buf) > MAX_REPLY:
                raise MalformedReply(self.label, name, "no end of reply", buf[:256])
            buf += link.read(self.read_size, name)
        return buf

    def probe(self) -> Probe:
        link = self._link()
        _manufacturer, product, serial = link.strings()
        ready = None
        if serial:
            serial, ready = bc_text.parse_serial_string(serial)
        with self._probing():
            code = bc_text.parse_idcode(self._exchange("idcode", bc_text.command(self.commands["idcode"])))
        return self._confirm(Probe(self.family, idcode=code, product=product, usb_serial=serial,
                                   storage_ready=ready, detail=f"IDCode {code}"))

    def unlock(self, password: str | None) -> None:
        self._require_probe("login")
        p = self.profile.password
        request = bc_text.login(password or "", p.user, self.commands["login"])
        with self._named():
            for _ in range(p.attempts):  # the SDK tries up to 10 times
                reply = self._exchange("login", request)
                try:
                    bc_text.parse_login(reply)
                    return
                except WrongPassword:
                    if b"para is error" in reply:
                        break
        raise WrongPassword(self.label)

    def identify(self) -> Identity:
        self._require_probe("identify")
        with self._named():
            rec = bc_text.parse_record(self._exchange("read_record", bc_text.command(self.commands["read_record"])),
                                       self.profile.record.encoding)
        battery = self._optional(lambda: bc_text.parse_battery(
            self._exchange("battery", bc_text.command(self.commands["battery"]))))
        return self._identity(rec, battery)

    def read_clock(self) -> datetime | None:
        self._require_probe("read clock")
        with self._named():
            return bc_text.parse_clock(self._exchange("read_clock", bc_text.command(self.commands["read_clock"])),
                                       self.profile.clock.systime_offset)

    def set_clock(self, utc: datetime) -> bool:
        self._require_probe("set clock")
        if not self.profile.clock.set:
            return False
        with self._named():
            bc_text.check(self._exchange("set_clock", bc_text.set_clock(utc, self.commands["set_clock"])),
                          "set_clock")
        return True

    def enter_storage(self) -> StorageSwitch | None:
        self._require_probe("enter storage")
        with self._named():
            bc_text.check(self._exchange("storage", bc_text.command(self.commands["storage"])), "storage")
        self.close()
        return self._switch()

