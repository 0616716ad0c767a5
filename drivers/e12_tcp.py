"""Family E, Guobao E12 Android recorders over TCP (reference §2E).

The recorder checks no password: its vendor SDK reads the admin password in
clear (``S010``) and compares it on the PC side, and so does this driver,
before it sends anything that changes state. Probe: ping (``F808``) and
IDCode (``S009``), both read-only.

An unset value makes the app go silent after ``E12DATR880`` (reference §5):
an optional read (the battery) that stays silent is recorded as unknown and
the dock goes on, on the same connection, which the app keeps reading; a
required read (IDCode, officer record, password, clock) that stays silent
fails typed (``DeviceTimeout``, naming the likely cause)."""

from __future__ import annotations

import hmac
from datetime import datetime

from drivers.base import (
    DeviceTimeout,
    DockedDevice,
    Identity,
    NotRecognised,
    Probe,
    StorageSwitch,
    WrongPassword,
)
from drivers.codec import e12_tcp, record
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder, commands
from drivers.tcplink import open_tcp
from drivers.transport import TcpLink

DEFAULT_PORT = 10086


class E12TcpRecorder(ProtocolRecorder):
    family = "e12-tcp"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.commands = commands(profile, e12_tcp.COMMANDS)
        self.order: e12_tcp.ByteOrder = profile.tcp.length_order
        r = profile.record
        d = record.E12
        self.layout = record.Layout(r.size or d.size, r.offsets or d.offsets, r.widths or d.widths)
        self.link: TcpLink | None = None

    def _link(self) -> TcpLink:
        if self.link is None:
            self.link = open_tcp(self.device, self.profile, self.label, DEFAULT_PORT)
        return self.link

    def _send(self, payload: bytes, name: str) -> None:
        self._link().send(e12_tcp.frame(payload, self.order), name)

    def _recv(self, name: str, timeout: float | None = None) -> bytes:
        link = self._link()
        n = e12_tcp.length(link.recv_exact(e12_tcp.PREFIX, name, timeout), self.order)
        return link.recv_exact(n, name)

    def _command(self, name: str) -> bytes:
        self._pace()
        self._send(e12_tcp.command(self.commands[name]), name)
        return self._recv(name)

    def _read(self, name: str) -> bytes:
        """A read command: E12DATR880, then the data. Silence after
        E12DATR880 is how the app answers an unset value: a typed timeout."""
        e12_tcp.expect_data(self._command(name), name)
        try:
            return self._recv(name)
        except DeviceTimeout as e:
            raise DeviceTimeout(self.label, f"{e.detail} after E12DATR880 (the recorder goes silent when "
                                            "the value is unset)") from None

    def _read_optional(self, name: str) -> bytes | None:
        """An optional read: None when the app goes silent after E12DATR880
        (the value is unset). Silence before E12DATR880, or a message cut
        off half-way, still fails: the stream is no longer trustworthy."""
        e12_tcp.expect_data(self._command(name), name)
        t = self.profile.tcp
        wait = (t.optional_timeout_ms or t.read_timeout_ms) / 1000
        try:
            return self._recv(name, wait)
        except DeviceTimeout:
            if self._link().buffered:
                raise
            return None

    def probe(self) -> Probe:
        with self._probing():
            pong = self._command("ping")
            if pong != e12_tcp.PONG:
                raise NotRecognised(self.label, f"ping answered {pong[:32]!r}")
            code = e12_tcp.parse_text(self._read("idcode"), "idcode")
        return self._confirm(Probe(self.family, idcode=code, detail=f"IDCode {code}"))

    def unlock(self, password: str | None) -> None:
        self._require_probe("login")
        if password is None:
            return
        with self._named():
            actual = e12_tcp.parse_text(self._read("admin_password"), "admin_password")
        if not hmac.compare_digest(actual.encode(), password.encode()):
            raise WrongPassword(self.label)

    def identify(self) -> Identity:
        self._require_probe("identify")
        with self._named():
            rec = record.unpack(self._read("read_record"), self.layout, self.profile.record.encoding)
        value = self._optional(self._battery)
        return self._identity(rec, value if value is not None and value <= 100 else None)

    def _battery(self) -> int | None:
        raw = self._read_optional("battery")
        return None if raw is None else e12_tcp.parse_int(raw, "battery")

    def read_clock(self) -> datetime | None:
        self._require_probe("read clock")
        with self._named():
            return self._utc(e12_tcp.parse_time(self._read("read_clock")))

    def set_clock(self, utc: datetime) -> bool:
        self._require_probe("set clock")
        if not self.profile.clock.set:
            return False
        with self._named():
            e12_tcp.expect_data(self._command("set_clock"), "set_clock")
            self._send(e12_tcp.time_text(self._local(utc)), "set_clock")
            e12_tcp.expect_result(self._recv("set_clock"), e12_tcp.SET_CLOCK_OK, e12_tcp.SET_CLOCK_FAILED,
                                  "set_clock")
        return True

    def enter_storage(self) -> StorageSwitch | None:
        self._require_probe("enter storage")
        with self._named():
            e12_tcp.expect_result(self._read("storage"), e12_tcp.STORAGE_OK, e12_tcp.STORAGE_FAILED, "storage")
        self.close()
        return self._switch()

