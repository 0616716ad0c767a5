"""Family F, ZZX Android recorders: JSON lines over TCP (reference §2F).
Probe: GetIDCode (id 2, no password); every other request carries the
password, and a wrong one is answered ``{"password":"false"}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drivers.base import DockedDevice, DriverError, Identity, MalformedReply, Probe, StorageSwitch
from drivers.codec import zzx_json
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder, commands
from drivers.tcplink import open_tcp
from drivers.transport import TcpLink


class ZzxJsonRecorder(ProtocolRecorder):
    family = "zzx-json"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.commands = commands(profile, zzx_json.COMMANDS)
        self.password = ""
        self._record: dict[str, Any] | None = None
        self.link: TcpLink | None = None

    def _link(self) -> TcpLink:
        if self.link is None:
            self.link = open_tcp(self.device, self.profile, self.label, None)
        return self.link

    def _call(self, name: str, body: dict[str, str] | None = None, *, password: bool = True) -> dict[str, Any]:
        msg_id = self.commands[name]
        link = self._link()
        self._pace()
        link.send(zzx_json.request(msg_id, ({"password": self.password} if password else {}) | (body or {})), name)
        reply = zzx_json.parse_reply(link.recv_line(name, zzx_json.MAX_LINE), msg_id, name)
        if password:
            zzx_json.check_password(reply)
        return reply

    def probe(self) -> Probe:
        with self._probing():
            code = zzx_json.text(self._call("idcode", password=False), "IDCode")
        return self._confirm(Probe(self.family, idcode=code or None, detail=f"IDCode {code}"))

    def unlock(self, password: str | None) -> None:
        self._require_probe("login")
        self.password = password or ""
        with self._named():
            self._record = self._call("read_record")  # a read: wrong password -> {"password":"false"}

    def identify(self) -> Identity:
        self._require_probe("identify")
        with self._named():
            body = self._record if self._record is not None else self._call("read_record")
            serial = zzx_json.text(body, "serial")
            if not serial:
                raise MalformedReply("", "read_record", "no serial")
        battery = None
        try:
            with self._named():
                value = zzx_json.text(self._call("battery"), "battery")
            battery = int(value) if value.isdigit() and int(value) <= 100 else None
        except DriverError as e:
            if not e.permanent:  # the device went away or stopped answering
                raise
            # a refused or garbled battery reading is no reason to refuse a dock
        t = zzx_json.text
        return Identity(serial=serial, model=self.profile.model or None, officer=t(body, "policeNo") or None,
                        unit=t(body, "groupName") or t(body, "groupNo") or None,
                        officer_name=t(body, "policeName") or None, battery_pct=battery,
                        idcode=self._probe.idcode if self._probe else None)

    def read_clock(self) -> datetime | None:
        self._require_probe("read clock")
        with self._named():
            body = self._call("read_clock")
            return zzx_json.parse_epoch_s(body.get("Time"))

    def set_clock(self, utc: datetime) -> bool:
        self._require_probe("set clock")
        if not self.profile.clock.set:
            return False
        with self._named():
            zzx_json.check_result(self._call("set_clock", {"Time": zzx_json.epoch_ms(utc)}), "set_clock")
        return True

    def enter_storage(self) -> StorageSwitch | None:
        self._require_probe("enter storage")
        with self._named():
            # "false" while the recorder is recording: worth trying again later
            zzx_json.check_result(self._call("storage"), "storage", permanent=False)
        self.close()
        return self._switch()

