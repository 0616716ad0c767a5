"""Family B, Ambarella recorders speaking ``@Cmd;len;payload;#`` over bulk
(reference §2B). No authentication is known; ``@Ver`` is the read-only
probe; ``@Gdv`` gives the device id, which is also the storage volume's
label; the clock can be set (local time) but not read."""

from __future__ import annotations

import contextlib
from datetime import datetime

from drivers.base import DockedDevice, DriverError, Identity, NotRecognised, Probe, StorageSwitch
from drivers.codec import amba_ascii
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder
from drivers.transport import UsbLink


class AmbaAsciiRecorder(ProtocolRecorder):
    family = "amba-ascii"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.link: UsbLink | None = None
        self.read_size = profile.usb.read_size or 64

    def _link(self) -> UsbLink:
        if self.link is None:
            u = self.profile.usb
            self.link = UsbLink(self.device, self.label, configuration=u.configuration, interface=u.interface,
                                ep_out=u.ep_out or 0x01, ep_in=u.ep_in or 0x81, timeout_ms=u.timeout_ms or 3000)
        return self.link

    def _exchange(self, frame: bytes, name: str) -> bytes:
        link = self._link()
        self._pace()
        link.write(frame, name)
        return link.read(self.read_size, name)

    def probe(self) -> Probe:
        with self._probing():
            reply = self._exchange(amba_ascii.version(), "version")
            if not amba_ascii.version_ok(reply):
                raise NotRecognised(self.label, f"@Ver answered {reply[:32]!r}, not Ver;OK")
        return self._confirm(Probe(self.family, detail=amba_ascii.text(reply, "version")))

    def unlock(self, password: str | None) -> None:
        self._require_probe("login")  # no authentication is known for this family

    def identify(self) -> Identity:
        self._require_probe("identify")
        with self._named():
            ident = amba_ascii.parse_device_id(self._exchange(amba_ascii.device_id(), "device id"))
        self._device_id = ident
        return Identity(serial=ident, model=self.profile.model or None)

    def read_clock(self) -> datetime | None:
        return None

    def set_clock(self, utc: datetime) -> bool:
        self._require_probe("set clock")
        if not self.profile.clock.set:
            return False
        local = self._local(utc)
        with self._named():  # replies are not checked by the only known tool
            self._exchange(amba_ascii.set_date(local), "set date")
            self._exchange(amba_ascii.set_time(local), "set time")
        return True

    def enter_storage(self) -> StorageSwitch | None:
        self._require_probe("enter storage")
        with self._named():
            self._pace()
            self._link().write(amba_ascii.storage(), "storage")
        with contextlib.suppress(DriverError):  # reply not checked; the device may be leaving
            self._link().read(self.read_size, "storage")
        self.close()
        return self._switch()

