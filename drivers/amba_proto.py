"""The Ambarella-style vendor protocol (USB 0x4255:0x0001 and kin).

ASCII bulk commands, one per frame::

    request  @<Cmd>;<len>;<arg>;#        e.g. @Sdt;8;20240301;#   @ATH;6;000000;#
    reply    @<Cmd>;<OK|ER>;<len>;<data>;#

``<len>`` is the byte length of ``<arg>``/``<data>`` and must match.
Commands: ATH (log in with the admin password and enter storage mode),
Gdv (device id), Gus (officer number), Gun (unit), Gdt (clock,
YYYYMMDDhhmmss), Sdt (date YYYYMMDD), Stm (time HHMMSS00), Gbt (battery %).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REQ = re.compile(rb"^@([A-Za-z]{3});(\d{1,3});([^;#]*);#$")
_RSP = re.compile(rb"^@([A-Za-z]{3});(OK|ER);(\d{1,3});([^;#]*);#$")
MAX_FRAME = 512


class FrameError(ValueError):
    pass


def encode_request(cmd: str, arg: str = "") -> bytes:
    raw = arg.encode()
    if b";" in raw or b"#" in raw:
        raise FrameError("';' and '#' cannot be sent in an Ambarella frame")
    return b"@" + cmd.encode() + b";" + str(len(raw)).encode() + b";" + raw + b";#"


@dataclass(frozen=True)
class Request:
    cmd: str
    arg: str


def decode_request(frame: bytes) -> Request:
    m = _REQ.match(frame)
    if not m or int(m.group(2)) != len(m.group(3)):
        raise FrameError(f"not an Ambarella request: {frame[:64]!r}")
    return Request(m.group(1).decode(), m.group(3).decode("utf-8", "replace"))


def encode_reply(cmd: str, ok: bool, data: bytes = b"") -> bytes:
    return (b"@" + cmd.encode() + b";" + (b"OK" if ok else b"ER") + b";" + str(len(data)).encode()
            + b";" + data + b";#")


@dataclass(frozen=True)
class Reply:
    cmd: str
    ok: bool
    data: bytes


def decode_reply(frame: bytes) -> Reply:
    if len(frame) > MAX_FRAME:
        raise FrameError(f"reply of {len(frame)} bytes is longer than any Ambarella frame")
    m = _RSP.match(frame)
    if not m:
        raise FrameError(f"not an Ambarella reply: {frame[:64]!r}")
    if int(m.group(3)) != len(m.group(4)):
        raise FrameError(f"length field {int(m.group(3))} but {len(m.group(4))} bytes of data")
    return Reply(m.group(1).decode(), m.group(2) == b"OK", m.group(4))
