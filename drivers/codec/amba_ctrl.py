"""Family A, Ambarella control transfers on EP0 (reference §2A).

Every packet is a 4-byte header ``a1 <cmd> 00 <cmd>`` plus data, zero-padded
to 64 bytes; the reply is read back with an IN transfer of 10 bytes, of
which only byte 2 is known: 01 = login accepted.
"""

from __future__ import annotations

from drivers import commands
from drivers.base import CommandFailed, MalformedReply
from drivers.codec import ControlSetup

LOGIN = commands.AMBA_CTRL["login"]
STORAGE = commands.AMBA_CTRL["storage"]
COMMANDS = commands.AMBA_CTRL
PACKET = 64
REPLY = 10

#: the setups of [A] (bRequest 85 and 80 decimal in its source)
LOGIN_SETUP = ControlSetup(0x40, 0x55, 0x0080, 0x0000, PACKET)
REPLY_SETUP = ControlSetup(0xC0, 0x55, 0x0080, 0x0000, REPLY)
STORAGE_SETUP = ControlSetup(0x40, 0x50, 0x0080, 0x0000, PACKET)


def header(cmd: int) -> bytes:
    return bytes([0xA1, cmd, 0x00, cmd])


def packet(cmd: int, data: bytes = b"", size: int = PACKET) -> bytes:
    body = header(cmd) + data
    if len(body) > size:
        raise CommandFailed("", f"command {cmd:#04x}", f"{len(body)} bytes do not fit the {size}-byte packet")
    return body.ljust(size, b"\0")


def login_packet(password: str, cmd: int = LOGIN, size: int = PACKET, encoding: str = "utf-8") -> bytes:
    """Header, the password as plain text, zeros: no terminator, no hashing."""
    return packet(cmd, password.encode(encoding), size)


def storage_packet(cmd: int = STORAGE, size: int = PACKET) -> bytes:
    return packet(cmd, b"", size)


def login_accepted(reply: bytes, byte: int = 2, value: int = 0x01) -> bool:
    if len(reply) <= byte:
        raise MalformedReply("", "login", f"{len(reply)} bytes; the verdict is byte {byte}", reply)
    return reply[byte] == value


def parse_packet(data: bytes) -> tuple[int, bytes]:
    """(command, data after the header): the simulator's side."""
    if len(data) < 4 or data[0] != 0xA1 or data[1] != data[3] or data[2] != 0:
        raise MalformedReply("", "packet", "no a1 <cmd> 00 <cmd> header", data)
    return data[1], data[4:]
