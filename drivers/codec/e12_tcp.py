"""Family E, Guobao E12 Android recorders over TCP (reference §2E).

Every message in either direction is a 4-byte length and that many payload
bytes. The length's byte order is not known from any source (``MyUtil`` was
not found): it is a profile setting, big-endian (Java's own order) by default.

Text the recorder sends back (IDCode, passwords, battery) is Java's
``String.getBytes()``, UTF-8 on Android; only the 89-byte officer record is
GBK. When a value is unset (battery, admin password) the app throws after
``E12DATR880`` and sends nothing more on that command, yet keeps reading the
connection (its read loop catches the exception): silence, not a refusal
(reference §5).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from drivers import commands
from drivers.base import CommandFailed, MalformedReply

ByteOrder = Literal["big", "little"]
PREFIX = 4
MAX_MESSAGE = 1 << 16

#: command name -> code after "E12CMD"; a profile may override
COMMANDS = commands.E12_TCP
PONG = b"E12CMDF809"
DATA_FOLLOWS = b"E12DATR880"
#: result codes after "E12DATR"
SET_CLOCK_OK, SET_CLOCK_FAILED = b"E12DATR001", b"E12DATR000"
STORAGE_OK, STORAGE_FAILED = b"E12DATR011", b"E12DATR010"
WRITE_RECORD_OK, WRITE_RECORD_FAILED = b"E12DATR021", b"E12DATR020"
#: the refusal each read command answers instead of DATA_FOLLOWS
REFUSALS = {"idcode": b"E12DATR150", "read_record": b"E12DATR120", "read_clock": b"E12DATR050",
            "resolution": b"E12DATR130", "battery": b"E12DATR140", "admin_password": b"E12DATR030",
            "user_password": b"E12DATR040"}


def frame(payload: bytes, order: ByteOrder = "big") -> bytes:
    return len(payload).to_bytes(PREFIX, order) + payload


def length(prefix: bytes, order: ByteOrder = "big") -> int:
    if len(prefix) != PREFIX:
        raise MalformedReply("", "frame", f"length prefix of {len(prefix)} bytes", prefix)
    n = int.from_bytes(prefix, order)
    if n > MAX_MESSAGE:
        raise MalformedReply("", "frame", f"message of {n} bytes announced (byte order?)", prefix)
    return n


def command(code: str) -> bytes:
    return f"E12CMD{code}".encode("ascii")


def time_text(local: datetime) -> bytes:
    """``yyyy-MM-dd H:mm:ss``: the hour is not zero-padded (``2017-05-15 8:00:00``)."""
    return f"{local:%Y-%m-%d} {local.hour}:{local:%M:%S}".encode("ascii")


def parse_time(raw: bytes, name: str = "read_clock") -> datetime:
    """Local time text; fields split on space, ``-`` and ``:`` as the recorder does."""
    try:
        parts = [int(p) for p in raw.decode("ascii").strip().replace("-", " ").replace(":", " ").split()]
        if len(parts) != 6:
            raise ValueError("six fields")
        y, mo, d, hh, mm, ss = parts
        return datetime(y, mo, d, hh, mm, ss)
    except (UnicodeDecodeError, ValueError):
        raise MalformedReply("", name, f"not a time: {raw[:32]!r}", raw) from None


def expect_data(reply: bytes, name: str) -> None:
    """A read command's first answer must announce the data."""
    if reply == DATA_FOLLOWS:
        return
    if reply == REFUSALS.get(name) or reply.startswith(b"E12DATR"):
        raise CommandFailed("", name, reply.decode("ascii", "replace"))
    raise MalformedReply("", name, "expected E12DATR880", reply)


def expect_result(reply: bytes, ok: bytes, failed: bytes, name: str) -> None:
    if reply == ok:
        return
    if reply == failed:
        raise CommandFailed("", name, reply.decode("ascii", "replace"))
    raise MalformedReply("", name, f"expected {ok.decode()} or {failed.decode()}", reply)


def parse_int(raw: bytes, name: str) -> int:
    text = raw.decode("ascii", "replace").strip()
    if not text.isdigit():
        raise MalformedReply("", name, f"{text[:16]!r} is not a number", raw)
    return int(text)


def parse_text(raw: bytes, name: str, encoding: str = "utf-8") -> str:
    try:
        return raw.decode(encoding).strip("\0").strip()
    except UnicodeDecodeError:
        raise MalformedReply("", name, f"not {encoding} text", raw) from None
