"""Family A, Ambarella recorders driven by vendor control transfers on EP0
(reference §2A). Only two commands are known: password login and the switch
to mass storage. No identity, clock or battery command exists, so the probe
is descriptors only, the serial is the USB serial string and the officer
comes from file names (profile patterns)."""

from __future__ import annotations

import contextlib
from datetime import datetime

from drivers.base import DockedDevice, DriverError, Identity, NotRecognised, Probe, StorageSwitch, WrongPassword
from drivers.codec import ControlSetup, amba_ctrl
from drivers.ids import UsbIds
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder, commands
from drivers.transport import UsbLink


class AmbaCtrlRecorder(ProtocolRecorder):
    family = "amba-ctrl"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.commands = commands(profile, amba_ctrl.COMMANDS)
        c = profile.control
        packet = c.packet or amba_ctrl.PACKET
        out = ControlSetup(c.request_type_out if c.request_type_out is not None else 0x40,
                           c.request if c.request is not None else 0x55,
                           c.value if c.value is not None else 0x0080, c.index or 0, packet)
        self.login_setup = out
        self.storage_setup = ControlSetup(out.request_type, c.storage_request if c.storage_request is not None
                                          else amba_ctrl.STORAGE_SETUP.request, out.value, out.index, packet)
        self.reply_setup = ControlSetup(c.request_type_in if c.request_type_in is not None else 0xC0, out.request,
                                        c.in_value if c.in_value is not None else out.value, out.index,
                                        c.reply_length or amba_ctrl.REPLY)
        self.link: UsbLink | None = None

    def _link(self) -> UsbLink:
        if self.link is None:
            self.link = UsbLink(self.device, self.label, configuration=self.profile.usb.configuration,
                                timeout_ms=self.profile.usb.timeout_ms or 1000)
        return self.link

    def probe(self) -> Probe:
        link = self._link()
        manufacturer, product, serial = link.strings()
        ids = UsbIds(self.device.ids.vid, self.device.ids.pid, serial, product, manufacturer)
        if not self.profile.matches(ids):
            raise NotRecognised(self.label, f"descriptors (product {product!r}) are not the profile's")
        # [A] checks that interface 0 has an OUT endpoint before it sends anything
        intf = next((i for i in link.interfaces() if i.number == self.profile.usb.interface), None)
        if intf is None or not any(not ep & 0x80 for ep in intf.endpoints):
            raise NotRecognised(self.label, f"interface {self.profile.usb.interface} has no OUT endpoint")
        self._device_id = serial
        return self._confirm(Probe(self.family, product=product, manufacturer=manufacturer, usb_serial=serial,
                                   detail="descriptors"))

    def unlock(self, password: str | None) -> None:
        self._require_probe("login")
        link = self._link()
        with self._named():
            packet = amba_ctrl.login_packet(password or "", self.commands["login"], self.login_setup.length,
                                            self.profile.password.encoding)
            for _ in range(self.profile.password.attempts):
                self._pace()
                link.control_out(self.login_setup, packet, "login")
                if amba_ctrl.login_accepted(link.control_in(self.reply_setup, "login")):
                    return
        raise WrongPassword(self.label)

    def identify(self) -> Identity:
        serial = (self._probe.usb_serial if self._probe else None) or self.device.ids.serial \
            or self.device.hints.get("serial") or "unknown"
        return Identity(serial=serial, model=self.profile.model or None)

    def read_clock(self) -> datetime | None:
        return None

    def set_clock(self, utc: datetime) -> bool:
        self._require_probe("set clock")
        return False  # no clock command is known for this family

    def enter_storage(self) -> StorageSwitch | None:
        self._require_probe("enter storage")
        link = self._link()
        with self._named():
            self._pace()
            link.control_out(self.storage_setup, amba_ctrl.storage_packet(self.commands["storage"],
                                                                          self.storage_setup.length), "storage")
        # [A] reads the 10-byte reply and ignores it; the device may already be leaving
        with contextlib.suppress(DriverError):
            link.control_in(self.reply_setup, "storage")
        self.close()
        return self._switch()

