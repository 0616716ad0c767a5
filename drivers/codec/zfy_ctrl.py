"""Family C, the GA/T 947 SDK frames over vendor control transfers
(LibMCZFY, reference §2C).

Frame (request and reply alike, same total length)::

    a1 b2 c3 d4 | 00 | class (e1 core) | status (00 out, 80 ok) | cmd | 00 | payload

No checksum, no length field: the length is implied by the command, and the
reply is read with wLength equal to the request's length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from drivers import commands
from drivers.base import CommandFailed, MalformedReply
from drivers.codec import ControlSetup

MAGIC = bytes.fromhex("a1b2c3d4")
CORE = 0xE1
OK = 0x80
HEADER = 9

#: command name -> command byte (class e1); a profile may override
COMMANDS = commands.ZFY_CTRL
#: payload bytes each request carries (the reply carries as many)
PAYLOAD = {"idcode": 5, "read_record": 100, "write_record": 100, "set_clock": 7, "storage": 0,
           "resolution": 1, "battery": 1, "set_user_password": 6, "set_admin_password": 6}
RECORD_SIZE = 100

OUT_SETUP = ControlSetup(0x40, 0x55, 0x00AA, 0x0000, 0)
IN_SETUP = ControlSetup(0xC0, 0x55, 0x00AA, 0x0000, 0)

#: reply byte of "resolution" -> (width, height), [C] zfyMC table
RESOLUTIONS = {0: (2304, 1296), 1: (1920, 1080), 2: (1440, 1080), 3: (1280, 720), 4: (1280, 720),
               5: (848, 480), 6: (848, 480), 7: (720, 480)}


def frame(cmd: int, payload: bytes = b"", status: int = 0x00, cls: int = CORE) -> bytes:
    return MAGIC + bytes([0x00, cls, status, cmd, 0x00]) + payload


def request(cmd: int, payload: bytes = b"", cls: int = CORE) -> bytes:
    return frame(cmd, payload, 0x00, cls)


def reply(cmd: int, payload: bytes = b"", ok: bool = True, cls: int = CORE) -> bytes:
    """A device's answer: the simulator's side. The failure status was never
    seen on a real device; 00 is the reference's choice."""
    return frame(cmd, payload, OK if ok else 0x00, cls)


def parse_reply(raw: bytes, cmd: int, name: str, cls: int = CORE) -> bytes:
    """The reply's payload; ``CommandFailed`` when the status is not 80."""
    if len(raw) < 5:
        raise CommandFailed("", name, f"reply of {len(raw)} bytes")
    if raw[:4] != MAGIC:
        raise MalformedReply("", name, "no a1 b2 c3 d4 magic", raw)
    if len(raw) < HEADER:
        raise MalformedReply("", name, f"reply of {len(raw)} bytes has no full header", raw)
    if raw[5] != cls:
        raise MalformedReply("", name, f"class {raw[5]:02x}, expected {cls:02x}", raw)
    if raw[7] != cmd:
        raise MalformedReply("", name, f"reply is for command {raw[7]:02x}, expected {cmd:02x}", raw)
    if raw[6] != OK:
        raise CommandFailed("", name, f"status {raw[6]:02x}")
    return raw[HEADER:]


@dataclass(frozen=True)
class Request:
    cls: int
    cmd: int
    payload: bytes


def parse_request(raw: bytes) -> Request:
    """The simulator's side."""
    if len(raw) < HEADER or raw[:4] != MAGIC:
        raise MalformedReply("", "request", "no a1 b2 c3 d4 frame", raw)
    return Request(raw[5], raw[7], raw[HEADER:])


def idcode_request(cmd: int = COMMANDS["idcode"]) -> bytes:
    return request(cmd, bytes(PAYLOAD["idcode"]))


def parse_idcode(payload: bytes) -> str:
    code = payload.split(b"\0", 1)[0]
    try:
        text = code.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedReply("", "idcode", "IDCode is not ASCII", payload) from None
    if not text or not text.isprintable():
        raise MalformedReply("", "idcode", "no IDCode", payload)
    return text


def login_request(password: str, cmd: int = COMMANDS["login_admin"], pad_to: int = 0,
                  encoding: str = "ascii") -> bytes:
    """The password as bytes, no terminator ([G] zero-pads it to 6: *pad_to*)."""
    return request(cmd, password.encode(encoding).ljust(pad_to, b"\0"))


def record_request(cmd: int = COMMANDS["read_record"], size: int = RECORD_SIZE) -> bytes:
    return request(cmd, bytes(size))


def clock_payload(local: datetime) -> bytes:
    return struct.pack(">HBBBBB", local.year, local.month, local.day, local.hour, local.minute, local.second)


def clock_request(local: datetime, cmd: int = COMMANDS["set_clock"]) -> bytes:
    """Set the clock to *local*, the recorder's local (naive) time."""
    return request(cmd, clock_payload(local))


def parse_clock(payload: bytes) -> datetime:
    if len(payload) < 7:
        raise MalformedReply("", "set_clock", f"{len(payload)} bytes of time", payload)
    try:
        return datetime(*struct.unpack(">HBBBBB", payload[:7]))
    except ValueError as e:
        raise MalformedReply("", "set_clock", f"not a time: {e}", payload) from None


def storage_request(cmd: int = COMMANDS["storage"]) -> bytes:
    return request(cmd)


def resolution_request(cmd: int = COMMANDS["resolution"]) -> bytes:
    return request(cmd, b"\0")


def parse_resolution(payload: bytes) -> tuple[int, int]:
    if not payload:
        raise MalformedReply("", "resolution", "no index", payload)
    return RESOLUTIONS.get(payload[0], (0, 0))


def battery_request(cmd: int = COMMANDS["battery"]) -> bytes:
    return request(cmd, b"\0")


def parse_battery(payload: bytes) -> int | None:
    if not payload:
        raise MalformedReply("", "battery", "no battery byte", payload)
    return payload[0] if payload[0] <= 100 else None


def set_password_request(password: str, admin: bool = True) -> bytes:
    cmd = COMMANDS["set_admin_password" if admin else "set_user_password"]
    raw = password.encode("ascii")
    if len(raw) != 6:
        raise CommandFailed("", "set password", "the device takes exactly 6 characters")
    return request(cmd, raw)
