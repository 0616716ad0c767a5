"""Family B, Ambarella ASCII commands over bulk (reference §2B).

A frame is ``@`` + 3-letter command + ``;`` + declared length + ``;`` +
payload + ``;#``: no CR/LF, no checksum. The reply is read as ASCII and
trimmed; only substrings of it are checked by the one known tool.
"""

from __future__ import annotations

from datetime import datetime

from drivers.base import MalformedReply

VERSION = "Ver"
DEVICE_ID = "Gdv"
SET_DATE = "Sdt"
SET_TIME = "Stm"
STORAGE = "ATH"
#: fixed payloads sent by [B]; their meaning is unknown
VERSION_PAYLOAD = "00000000"
DUMMY_PAYLOAD = "12345678"


def frame(cmd: str, payload: str, declared: int | None = None) -> bytes:
    n = len(payload) if declared is None else declared
    return f"@{cmd};{n};{payload};#".encode("ascii")


def version() -> bytes:
    return frame(VERSION, VERSION_PAYLOAD)


def device_id() -> bytes:
    return frame(DEVICE_ID, DUMMY_PAYLOAD)


def set_date(local: datetime) -> bytes:
    return frame(SET_DATE, f"{local:%Y%m%d}")


def set_time(local: datetime) -> bytes:
    # [B] declares 6 and sends 8: HHmmss and a literal "00"
    return frame(SET_TIME, f"{local:%H%M%S}00", declared=6)


def storage() -> bytes:
    return frame(STORAGE, DUMMY_PAYLOAD)


def text(reply: bytes, command: str) -> str:
    try:
        return reply.rstrip(b"\0").decode("ascii").strip()
    except UnicodeDecodeError:
        raise MalformedReply("", command, "reply is not ASCII", reply) from None


def version_ok(reply: bytes) -> bool:
    return "Ver;OK" in text(reply, VERSION)


def parse_device_id(reply: bytes) -> str:
    """``@Gdv;<n>;<ID>;#`` -> ID: the third ``;`` field, ``#`` trimmed."""
    t = text(reply, DEVICE_ID)
    fields = t.split(";")
    if not t.startswith("@" + DEVICE_ID) or len(fields) < 3:
        raise MalformedReply("", DEVICE_ID, "not @Gdv;<n>;<id>;#", reply)
    ident = fields[2].strip("#").strip()
    if not ident or "ERROR" in t.upper():
        raise MalformedReply("", DEVICE_ID, "no device id", reply)
    return ident


def parse_frame(data: bytes) -> tuple[str, str]:
    """(command, payload): the simulator's side."""
    try:
        t = data.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedReply("", "frame", "not ASCII", data) from None
    if not (t.startswith("@") and t.endswith(";#")) or t.count(";") < 3:
        raise MalformedReply("", "frame", "not @Cmd;len;payload;#", data)
    cmd, _declared, rest = t[1:-2].split(";", 2)
    return cmd, rest
