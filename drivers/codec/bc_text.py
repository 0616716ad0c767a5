"""Family D, the "BC+" text commands over bulk (LibBodycam, reference §2D).

Requests are ``BC+<CMD>\\r\\n``. A reply is complete when the text read so
far, taken as a C string, is longer than 6 characters and holds ``OK\\r\\n``
or ``Error:`` with a later ``\\r\\n`` (so a bare ``OK\\r\\n`` never
completes: real replies carry a ``+CMD:`` line first).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from drivers import commands
from drivers.base import CommandFailed, MalformedReply, WrongPassword
from drivers.codec.record import OfficerRecord, decode_text

#: command name -> the text after "BC+"; a profile may override
COMMANDS = commands.BC_TEXT
MIN_REPLY = 6
#: which way +SYSTIME:'s offset counts (no source says; "east" is the common reading)
OffsetSign = Literal["east", "west"]


def command(text: str) -> bytes:
    return f"BC+{text}\r\n".encode("ascii")


def password_hash(password: str) -> str:
    """MD5 as 32 uppercase hex digits; a 32-character value is taken as
    already hashed, as the SDK does."""
    if len(password) == 32:
        return password
    return hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def login(password: str, user: str = "admin", name: str = COMMANDS["login"]) -> bytes:
    return command(f"{name}={user}:{password_hash(password)}")


def set_clock(utc: datetime, name: str = COMMANDS["set_clock"]) -> bytes:
    return command(f"{name}={utc.astimezone(UTC):%Y%m%d%H%M%S}")


def _cstring(buf: bytes) -> bytes:
    return buf.split(b"\0", 1)[0]


def complete(buf: bytes) -> bool:
    """The SDK's read-until rule."""
    s = _cstring(buf)
    if len(s) <= MIN_REPLY:
        return False
    if b"OK\r\n" in s:
        return True
    at = s.find(b"Error:")
    return at >= 0 and b"\r\n" in s[at:]


def check(reply: bytes, name: str) -> str:
    """The reply as text, judged in the SDK's order (reference §5, VA
    0x1000f5b0): ``OK\r\n`` anywhere is success, even beside an ``Error:``
    line; otherwise an ``Error:`` line is ``CommandFailed``; neither is
    malformed."""
    text = _cstring(reply).decode("utf-8", "replace")
    if "OK\r\n" in text:
        return text
    at = text.find("Error:")
    if at >= 0:
        raise CommandFailed("", name, text[at:].split("\r\n", 1)[0].strip())
    raise MalformedReply("", name, "no OK", reply)


def field(text: str, key: str, name: str, reply: bytes = b"") -> str:
    """The value after ``+KEY:`` up to the line end."""
    at = text.find(f"+{key}:")
    if at < 0:
        raise MalformedReply("", name, f"no +{key}:", reply or text.encode())
    return text[at + len(key) + 2:].split("\r\n", 1)[0].strip()


def parse_idcode(reply: bytes) -> str:
    code = field(check(reply, "idcode"), "GBIDCODE", "idcode", reply)
    if len(code) < 5:
        raise MalformedReply("", "idcode", f"IDCode {code!r} is shorter than 5 characters", reply)
    return code


def parse_login(reply: bytes) -> None:
    """Accepted, or ``WrongPassword``."""
    text = _cstring(reply).decode("utf-8", "replace")
    if "+LOGIN:Sucess" not in text:  # sic, as the firmware spells it
        raise WrongPassword("")


def parse_record(reply: bytes, encoding: str = "auto") -> OfficerRecord:
    check(reply, "read_record")
    raw = _cstring(reply)
    at = raw.find(b"+GBCFG:")
    if at < 0:
        raise MalformedReply("", "read_record", "no +GBCFG:", reply)
    line = raw[at + 7:].split(b"\r\n", 1)[0]
    parts = line.split(b",")
    if len(parts) != 5:
        raise MalformedReply("", "read_record", f"{len(parts)} fields, expected 5", reply)
    rec = OfficerRecord(*(decode_text(p.strip(), encoding) for p in parts))
    if not rec.serial:
        raise MalformedReply("", "read_record", "no device serial", reply)
    return rec


def parse_clock(reply: bytes, offset_sign: OffsetSign = "east") -> datetime:
    """``+SYSTIME:<local YYYYMMDDhhmmss>,<offset minutes>,<dst>,<zone>`` -> UTC.

    No source says which way the offset counts (reference §5): ``east``
    (minutes east of UTC, 480 at UTC+8) is the common reading and the
    default, **unverified**; ``west`` (JavaScript's getTimezoneOffset, -480 at
    UTC+8) is the other, a profile setting (``[clock] systime_offset``)."""
    value = field(check(reply, "read_clock"), "SYSTIME", "read_clock", reply)
    parts = value.split(",")
    try:
        local = datetime.strptime(parts[0], "%Y%m%d%H%M%S")
        offset = int(parts[1]) if len(parts) > 1 else 0
        zone = timezone(timedelta(minutes=offset if offset_sign == "east" else -offset))
        return local.replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise MalformedReply("", "read_clock", f"not a time: {e}", reply) from None


def parse_battery(reply: bytes) -> int | None:
    value = field(check(reply, "battery"), "BATVAL", "battery", reply)
    if not value.isdigit():
        raise MalformedReply("", "battery", f"{value!r} is not a number", reply)
    return int(value) if int(value) <= 100 else None


def parse_serial_string(serial: str) -> tuple[str, bool | None]:
    """iSerialNumber ``<sn>_<n>``: the serial and the U-disk-formed flag."""
    sn, sep, flag = serial.partition("_")
    if not sep or not flag.isdigit():
        return serial, None
    return sn, int(flag) == 1


def parse_command(data: bytes) -> str:
    """The text after ``BC+``: the simulator's side."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedReply("", "command", "not ASCII", data) from None
    if not text.startswith("BC+") or not text.endswith("\r\n"):
        raise MalformedReply("", "command", "not BC+...\\r\\n", data)
    return text[3:-2]
