"""The ZFY command set on the wire (USB bulk or a serial/CDC port).

The vendor DLL calls (GA/T 947) map onto ASCII frames, the form Android-based
recorders use (``E12CMDS001`` ... standard, ``E12CMDN...`` vendor)::

    request  E12CMD<k><nnn>;<admin password>;<args>;<cs>#
    reply    E12RSP<k><nnn>;<result code>;<hex payload>;<cs>#

``<cs>`` is two hex digits: the sum of every byte before it, modulo 256.
Result codes are the DLL's: CONNECT_SUCCESS=1 ... MSDC_FAILED=8.
Command numbers below are the defaults; a firmware profile may remap them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum


class Result(IntEnum):
    CONNECT_SUCCESS = 1
    CONNECT_FAILED = 2
    CHECK_PWD_SUCCESS = 3
    CHECK_PWD_FAILED = 4
    SET_SYSTEMTIME_SUCCESS = 5
    SET_SYSTEMTIME_FAILED = 6
    MSDC_SUCCESS = 7
    MSDC_FAILED = 8


#: default command numbers, after the DLL's functions
COMMANDS = {
    "get_id_code": "S001",      # GetIDCode
    "get_info": "S002",         # GetZFYInfo
    "write_info": "S003",       # WriteZFYInfo
    "sync_time": "S004",        # SyncDevTime, args YYYYMMDDhhmmss
    "set_msdc": "S005",         # SetMSDC: mass-storage mode until unplugged
    "battery": "S006",          # ReadDeviceBatteryDumpEnergy
    "resolution": "S007",       # ReadDeviceResolution
    "check_password": "S008",   # Init_Device / admin password check
    "set_admin_password": "S009",
    "set_user_password": "S010",
    "get_time": "N001",         # vendor: read the device clock, YYYYMMDDhhmmss
}

MAX_FRAME = 4096
_REQ = re.compile(rb"^E12CMD([SN]\d{3});([^;]*);([^;]*);([0-9A-Fa-f]{2})#$")
_RSP = re.compile(rb"^E12RSP([SN]\d{3});(\d{1,3});([0-9A-Fa-f]*);([0-9A-Fa-f]{2})#$")


class FrameError(ValueError):
    pass


def checksum(body: bytes) -> bytes:
    return f"{sum(body) % 256:02X}".encode()


def _check(frame: bytes, cs: bytes) -> None:
    body = frame[: frame.rindex(b";") + 1]
    if checksum(body) != cs.upper():
        raise FrameError(f"checksum {cs.decode()} does not match {checksum(body).decode()}")


def encode_request(cmd: str, password: str, args: str = "") -> bytes:
    if ";" in password or "#" in password or ";" in args or "#" in args:
        raise FrameError("';' and '#' cannot be sent in a ZFY frame")
    body = f"E12CMD{cmd};{password};{args};".encode()
    return body + checksum(body) + b"#"


@dataclass(frozen=True)
class Request:
    cmd: str
    password: str
    args: str


def decode_request(frame: bytes) -> Request:
    m = _REQ.match(frame)
    if not m:
        raise FrameError(f"not a ZFY request: {frame[:64]!r}")
    _check(frame, m.group(4))
    return Request(m.group(1).decode(), m.group(2).decode("utf-8", "replace"),
                   m.group(3).decode("utf-8", "replace"))


def encode_reply(cmd: str, code: int, payload: bytes = b"") -> bytes:
    body = f"E12RSP{cmd};{code};".encode() + payload.hex().upper().encode() + b";"
    return body + checksum(body) + b"#"


@dataclass(frozen=True)
class Reply:
    cmd: str
    code: int
    payload: bytes


def decode_reply(frame: bytes) -> Reply:
    if len(frame) > MAX_FRAME:
        raise FrameError(f"reply of {len(frame)} bytes is longer than any ZFY frame")
    m = _RSP.match(frame)
    if not m:
        raise FrameError(f"not a ZFY reply: {frame[:64]!r}")
    _check(frame, m.group(4))
    hexdata = m.group(3)
    if len(hexdata) % 2:
        raise FrameError("odd-length hex payload")
    return Reply(m.group(1).decode(), int(m.group(2)), bytes.fromhex(hexdata.decode()))
