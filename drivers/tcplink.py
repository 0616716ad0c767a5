"""Opening the TCP link of an Android recorder (families E and F): host and
port from the dock's hints first (the simulator, a station that knows where
its adb forwards point), then the profile; optionally through ``adb forward``."""

from __future__ import annotations

from drivers.adb import Adb
from drivers.base import DeviceGone, DockedDevice
from drivers.profiles import Profile
from drivers.transport import TcpLink


def open_tcp(device: DockedDevice, profile: Profile, label: str, default_port: int | None) -> TcpLink:
    t = profile.tcp
    host = device.hints.get("tcp_host") or t.host
    hinted = device.hints.get("tcp_port")
    port = int(hinted) if hinted and hinted.isdigit() else (t.port or default_port)
    if port is None:
        raise DeviceGone(label, "no TCP port: set tcp.port in the profile (the recorder app chooses it)")
    if t.adb_forward and not hinted:
        adb = Adb(device.hints.get("adb_serial") or device.ids.serial, label)
        adb.connect()
        port = adb.forward(port)
        host = "127.0.0.1"
    return TcpLink(host, port, label, connect_timeout_ms=t.connect_timeout_ms, send_timeout_ms=t.send_timeout_ms,
                   read_timeout_ms=t.read_timeout_ms)
