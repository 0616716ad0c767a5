"""Family C, the GA/T 947 SDK frames over vendor control transfers
(LibMCZFY, reference §2C): IDCode probe without login, admin login, the
100-byte officer record, battery, clock set in local time (no clock read is
known), then the switch (0x51)."""

from __future__ import annotations

from datetime import datetime

from drivers.base import (
    CommandFailed,
    DockedDevice,
    Identity,
    Probe,
    StorageSwitch,
    WrongPassword,
)
from drivers.codec import ControlSetup, record, zfy_ctrl
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder, commands
from drivers.transport import UsbLink


class ZfyCtrlRecorder(ProtocolRecorder):
    family = "zfy-ctrl"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.commands = commands(profile, zfy_ctrl.COMMANDS)
        c = profile.control
        value = c.value if c.value is not None else zfy_ctrl.OUT_SETUP.value
        self.out = ControlSetup(c.request_type_out if c.request_type_out is not None else 0x40,
                                c.request if c.request is not None else 0x55, value, c.index or 0, 0)
        # the SDK reads with wValue 0x00aa; a second tool with 0: the profile may say which
        self.inp = ControlSetup(c.request_type_in if c.request_type_in is not None else 0xC0, self.out.request,
                                c.in_value if c.in_value is not None else value, self.out.index, 0)
        r = profile.record
        d = record.ZFY_CTRL
        self.layout = record.Layout(r.size or d.size, r.offsets or d.offsets, r.widths or d.widths)
        self.link: UsbLink | None = None

    def _link(self) -> UsbLink:
        if self.link is None:
            self.link = UsbLink(self.device, self.label, configuration=self.profile.usb.configuration,
                                timeout_ms=self.profile.usb.timeout_ms or 1000)
        return self.link

    def _exchange(self, name: str, frame: bytes) -> bytes:
        """One OUT frame, one IN reply of the same length; the reply's payload."""
        link = self._link()
        self._pace()
        n = len(frame)
        link.control_out(ControlSetup(self.out.request_type, self.out.request, self.out.value, self.out.index, n),
                         frame, name)
        raw = link.control_in(ControlSetup(self.inp.request_type, self.inp.request, self.inp.value, self.inp.index,
                                           n), name)
        return zfy_ctrl.parse_reply(raw, frame[7], name)

    def probe(self) -> Probe:
        with self._probing():
            code = zfy_ctrl.parse_idcode(self._exchange("idcode", zfy_ctrl.idcode_request(self.commands["idcode"])))
        return self._confirm(Probe(self.family, idcode=code, detail=f"IDCode {code}"))

    def unlock(self, password: str | None) -> None:
        self._require_probe("login")
        p = self.profile.password
        cmd = self.commands["login_admin" if p.user == "admin" else "login_user"]
        with self._named():
            frame = zfy_ctrl.login_request(password or "", cmd, p.pad_to, "ascii" if p.encoding == "utf-8"
                                           else p.encoding)
            for _ in range(p.attempts):  # the SDK sends up to 6 back to back
                try:
                    self._exchange("login", frame)
                    return
                except CommandFailed:
                    continue
        raise WrongPassword(self.label)

    def identify(self) -> Identity:
        self._require_probe("identify")
        with self._named():
            payload = self._exchange("read_record", zfy_ctrl.record_request(self.commands["read_record"],
                                                                            self.layout.size))
            rec = record.unpack(payload, self.layout, self.profile.record.encoding)
        battery = self._optional(lambda: zfy_ctrl.parse_battery(
            self._exchange("battery", zfy_ctrl.battery_request(self.commands["battery"]))))
        return self._identity(rec, battery)

    def read_clock(self) -> datetime | None:
        return None  # no read-only clock command is known for this family

    def set_clock(self, utc: datetime) -> bool:
        self._require_probe("set clock")
        if not self.profile.clock.set:
            return False
        with self._named():
            self._exchange("set_clock", zfy_ctrl.clock_request(self._local(utc), self.commands["set_clock"]))
        return True

    def enter_storage(self) -> StorageSwitch | None:
        self._require_probe("enter storage")
        with self._named():
            self._exchange("storage", zfy_ctrl.storage_request(self.commands["storage"]))
        self.close()
        return self._switch()

