"""The simulated families that speak over TCP rather than USB: E, E12
length-prefixed messages (``E12Firmware``), and F, ZZX JSON lines
(``ZzxFirmware``), both on ``TcpFirmware``, whose ``serve`` answers one
connection until it closes or the storage switch happened. The TCP server in
``drivers/sim/tcp.py`` hands them their connections.
"""

from __future__ import annotations

import abc
import socket
from datetime import UTC, datetime

from drivers.base import DriverError
from drivers.codec import e12_tcp, record, zzx_json
from drivers.sim.firmware_base import SimFirmware


class TcpFirmware(SimFirmware):
    @abc.abstractmethod
    def serve(self, conn: socket.socket) -> None:
        """Answer one connection until it closes or the switch happened."""


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class E12Firmware(TcpFirmware):
    def _send(self, conn: socket.socket, payload: bytes) -> None:
        conn.sendall(e12_tcp.frame(payload, self.dev.length_order))

    def _recv(self, conn: socket.socket) -> bytes | None:
        head = _recv_exact(conn, 4)
        if head is None:
            return None
        n = int.from_bytes(head, self.dev.length_order)
        if n > e12_tcp.MAX_MESSAGE:
            return None
        return _recv_exact(conn, n)

    def serve(self, conn: socket.socket) -> None:
        data = e12_tcp.DATA_FOLLOWS
        while not self.switched.is_set():
            msg = self._recv(conn)
            if msg is None or not msg.startswith(b"E12"):
                return  # the recorder closes a connection that does not speak E12
            code = msg.decode("gbk", "replace")[6:]
            self.log.append(code)
            if code == "F808":
                self._send(conn, e12_tcp.PONG)
            elif code in ("S001", "S002"):
                self._send(conn, b"NULL")
            elif code == "S009":
                self._send(conn, data)
                self._send(conn, self.dev.idcode.encode())  # String.getBytes(): UTF-8 on Android
            elif code == "S004":
                self._send(conn, data)
                self._send(conn, record.pack(self.record(), record.E12, "gbk"))
            elif code == "S003":
                self._send(conn, data)
                text = self._recv(conn)
                try:
                    self.clock.set_local(e12_tcp.parse_time(text or b""))
                    self._send(conn, e12_tcp.SET_CLOCK_OK)
                except DriverError:
                    self._send(conn, e12_tcp.SET_CLOCK_FAILED)
            elif code == "N030":
                self._send(conn, data)
                self._send(conn, f"{self.clock.now_local():%Y-%m-%d %H:%M:%S}".encode())
            elif code == "S007":
                self._send(conn, data)
                if not self.dev.battery_set:
                    continue  # unset: the app throws after E12DATR880 and says nothing more (§5)
                self._send(conn, str(self.dev.battery_pct).encode())
            elif code == "S006":
                self._send(conn, data)
                self._send(conn, b"1920*1080")
            elif code in ("S010", "S011"):
                self._send(conn, data)
                if not self.dev.password:
                    continue  # unset: silence after E12DATR880, as for the battery
                self._send(conn, self.dev.password.encode())  # UTF-8, as the IDCode
            elif code == "S008":
                self._send(conn, data)
                self._send(conn, e12_tcp.STORAGE_OK)
                self.enter_storage()
                return


class ZzxFirmware(TcpFirmware):
    def serve(self, conn: socket.socket) -> None:
        buf = b""
        while not self.switched.is_set():
            while b"\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                if len(buf) > zzx_json.MAX_LINE:
                    return
            line, _, buf = buf.partition(b"\n")
            try:
                msg_id, body = zzx_json.parse_request(line)
            except DriverError:
                continue
            self.log.append(str(msg_id))
            answer = self._answer(msg_id, body)
            if answer is not None:
                conn.sendall(zzx_json.reply(msg_id, answer))
            if self.switched.is_set():
                return

    def _answer(self, msg_id: int, body: dict[str, object]) -> dict[str, str] | None:
        c = zzx_json.COMMANDS
        if msg_id in (c["init"], c["idcode"]):
            return {"IDCode": self.dev.idcode}
        if msg_id not in c.values():
            return None  # an unknown id gets no reply
        if body.get("password") != self.dev.password:
            return {"password": "false"}
        ok = {"password": "true"}
        if msg_id == c["read_record"]:
            r = self.record()
            if self.dev.zzx_build == "p5x_szlj":  # the device number's last 5, the user number, the model number
                return ok | {"policeNo": r.officer, "serial": r.serial[-5:], "policeName": "00000000000",
                             "groupNo": "00000", "groupName": r.unit_name}
            return ok | {"policeNo": r.officer, "serial": r.serial, "policeName": r.officer_name,
                         "groupNo": r.unit_no, "groupName": r.unit_name}
        if msg_id == c["set_clock"]:
            try:
                self.clock.set_utc(datetime.fromtimestamp(int(str(body.get("Time"))) / 1000, UTC))
            except (ValueError, OverflowError, OSError):
                return ok | {"Result": "false"}
            return ok | {"Result": "true"}
        if msg_id == c["read_clock"]:
            return ok | {"Time": str(int(self.clock.now_utc().timestamp())), "Result": "true"}
        if msg_id == c["battery"]:
            return ok | ({} if not self.dev.battery_set else {"battery": str(self.dev.battery_pct)})
        if msg_id == c["resolution"]:
            return ok | {"VideoWidth": "1920", "VideoHeight": "1080"}
        if msg_id == c["disk"]:
            return ok | {"free": "1024", "total": "32768"}
        if msg_id == c["storage"]:
            if self.dev.recording:
                return {"Result": "false"}
            self.enter_storage()
            return {"Result": "true"}
        return ok
