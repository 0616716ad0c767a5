"""Family F, ZZX Android recorders: JSON lines over TCP (reference §2F, §5).

The app listens only after the ``com.zzx.sdk`` broadcast with int extra
``port``: the station sends it through adb (``drivers.adb``, F profiles
only), forwards a station port to it and talks JSON lines there. Probe:
GetIDCode (id 2, no password); every other request carries the password, and
a wrong one is answered ``{"password":"false"}``. SetMSDC answers false while
the current recording is longer than the app's cut time or video cut is on:
``StorageRefused`` names that reason. The app build that moves record fields
around is ``[zzx] build``."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

from drivers.adb import Adb
from drivers.base import (
    CommandFailed,
    DeviceGone,
    DockedDevice,
    DriverError,
    Identity,
    Probe,
    StorageRefused,
    StorageSwitch,
)
from drivers.codec import zzx_json
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder, commands
from drivers.tcplink import open_tcp
from drivers.transport import TcpLink

#: the port the station asks the app to listen on when the profile names none (any free port on the phone)
DEFAULT_PORT = 8888
#: why SetMSDC answers false (PcSocketNewUtils.SetMSDC): the reply does not say which
REFUSAL = ("the recorder refuses storage mode while its current recording is longer than its cut time "
           "(mRecordTime > CUT_VIDEO_RECORD_TIME) or video cut is on (VIDEO_CUT != 0): stop recording, then dock again")


class ZzxJsonRecorder(ProtocolRecorder):
    family = "zzx-json"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.commands = commands(profile, zzx_json.COMMANDS)
        self.password = ""
        self._record: dict[str, Any] | None = None
        self.link: TcpLink | None = None
        #: the adb forward this dock made (removed on close)
        self.adb: Adb | None = None
        self._forwarded: int | None = None

    def _link(self) -> TcpLink:
        if self.link is None:
            z = self.profile.zzx
            if z.broadcast and not self.device.hints.get("tcp_port"):
                self.link = self._through_adb()
            else:
                self.link = open_tcp(self.device, self.profile, self.label, DEFAULT_PORT)
        return self.link

    def _through_adb(self) -> TcpLink:
        """Broadcast the port, forward a station port to it, connect; the
        app binds its server in a thread of its own, so a forward the phone
        still refuses is retried until the connect timeout."""
        t, z = self.profile.tcp, self.profile.zzx
        port = t.port or DEFAULT_PORT
        self.adb = adb = Adb(self.device.hints.get("adb_serial") or self.device.ids.serial, self.label)
        adb.connect()
        adb.broadcast(z.action, {z.extra: port})
        self._forwarded = local = adb.forward(port)
        deadline = time.monotonic() + t.connect_timeout_ms / 1000
        while True:
            link = TcpLink("127.0.0.1", local, self.label, connect_timeout_ms=t.connect_timeout_ms,
                           send_timeout_ms=t.send_timeout_ms, read_timeout_ms=t.read_timeout_ms)
            if link.alive(0.2):
                return link
            link.close()
            if time.monotonic() > deadline:
                raise DeviceGone(self.label, f"the app does not listen on port {port} after the {z.action} broadcast")
            time.sleep(0.1)

    def close(self) -> None:
        super().close()
        if self.adb is not None and self._forwarded is not None:
            forwarded, self._forwarded = self._forwarded, None
            with contextlib.suppress(DriverError):  # the adb server went with the device: so did the forward
                self.adb.remove_forward(forwarded)

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
            rec = zzx_json.record(body, self.profile.zzx.build)
        battery = None
        try:
            with self._named():
                value = zzx_json.text(self._call("battery"), "battery")
            battery = int(value) if value.isdigit() and int(value) <= 100 else None
        except DriverError as e:
            if not e.permanent:  # the device went away or stopped answering
                raise
            # a refused or garbled battery reading is no reason to refuse a dock
        return Identity(serial=rec.serial, model=self.profile.model or None, officer=rec.officer or None,
                        unit=rec.unit_name or rec.unit_no or None, officer_name=rec.officer_name or None,
                        battery_pct=battery, idcode=self._probe.idcode if self._probe else None)

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
            try:
                zzx_json.check_result(self._call("storage"), "storage", permanent=False)
            except CommandFailed as e:  # "false": recording too long or cut on; worth trying again later
                raise StorageRefused("", "storage", f"{e.detail.split(': ', 1)[-1]}; {REFUSAL}") from None
        self.close()
        return self._switch()

