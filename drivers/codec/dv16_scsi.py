"""The JieLi "DV16" family: GA/T 947 functions as 16-byte vendor SCSI
commands through the recorder's own mass-storage device (reference §2G,
source [I]: ``USBJL.cpp``/``USBJL.h`` in jjzqp/gitskills, commit b06791d).

What the source fixes (**seen**):

* The PC finds the recorder by its SCSI INQUIRY text: vendor and product as
  Windows' ``STORAGE_DEVICE_DESCRIPTOR`` gives them, concatenated, lowercased,
  spaces removed, equal to ``dv16devicev1.00`` (``"DV16 DEVICE V1.00"``).
  The SDK reads the product at ``VendorIdOffset + 9``, i.e. after an 8-byte
  vendor and its NUL: INQUIRY bytes 8-15 and 16-31. The split of the text
  between the two fields is not fixed by the source; only the concatenation
  is compared (``inquiry_key``).
* CDB, 16 bytes, zero-filled: byte 0 the first-level command, byte 1 the
  second-level one, bytes 2-5 a 32-bit value big-endian, bytes 6-7 a data
  length big-endian (``set_wValue``/``set_BigDataLen``). The ZFY functions
  read with ``fd 81`` (ISD_TOOL_READ, USER_CMD_READ) and write with ``fb 82``
  (ISD_TOOL_WRITE, USER_CMD_WRITE); the sub-command is the value (they set
  ``cdb[5]``) and the length ``cdb[7]``. Data-in times out after 2 s,
  data-out after 10 s.
* Sub-commands (enum ``USB_CMD``): 1 init, 2 IDCode (6 bytes read), 3/4
  read/write the officer record (``sizeof(ZFY_INFO)`` = 89: 7/6/32/12/32),
  5 set the clock (write only), 6 enter storage (write, no data), 7
  resolution (two ``int``), 8 battery (one ``int``), 9 write all, 10 set
  password (16 bytes), 11 set IDCode (32 bytes), 12 SD-card status (4 bytes;
  first byte 0: no card, and the SDK refuses the storage switch), 13 the
  admin password **in clear** (16 bytes: the SDK ``strcmp``s it with the
  user's on the PC), 14 the return status of the previous command (4 bytes;
  the SDK looks at the first byte, 0 = OK).
* The clock is ``struct sys_time {u16 year; u8 month, day, hour, min, sec}``
  from ``localtime()``: little-endian (x86), host local time. ``USBJL.h``
  sets ``#pragma pack(1)`` and never restores it, so the struct is 7 bytes
  in ``USBJL.cpp`` (with default packing it would be 8: a firmware built
  against another header might expect that; ``clock_payload`` takes the size).
* The SDK reads the return status (14) after init's IDCode, IDCode, the
  record, the record write, the clock, the battery; not after resolution,
  the password, the SD status or the storage switch.

What the source leaves open (**ambiguous**, profile settings, not guesses):

* No clock *read* exists in the SDK (sub-command 5 is only written). Reading
  5 with ``fd 81`` is an inference a profile may opt into (``[scsi]
  clock_read``), never the default.
* A 16-character password has no NUL in the 16 bytes; ``strcmp`` would run
  past the buffer. Here the password is the bytes before the first NUL, or
  all 16.
* Whether the disk shows the card before sub-command 6 is not in the source
  (the SDK always sends it after a non-zero SD status): ``[scsi]
  storage_switch``.
* The record's text encoding (GBK inferred, as §1.4) and what a failed
  vendor command looks like on the wire (the SDK never looks at the SCSI
  status, only at sub-command 14).
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from datetime import datetime

from drivers import commands
from drivers.base import CommandFailed, MalformedReply
from drivers.codec import record
from drivers.ids import inquiry_key

__all__ = ["inquiry_key"]

CDB_LEN = 16
#: ISD_TOOL_READ / USER_CMD_READ, ISD_TOOL_WRITE / USER_CMD_WRITE
READ = (0xFD, 0x81)
WRITE = (0xFB, 0x82)
#: the first-level commands that are the family's (a non-matching device must never see them)
VENDOR_OPCODES = frozenset({0xF9, 0xFA, 0xFB, 0xFC, 0xFD})

#: sub-command name -> number (USB_CMD in USBJL.h); a profile may override
SUB = commands.DV16_SCSI
#: data bytes each sub-command moves (as the SDK sets cdb[7])
LENGTH: dict[str, int] = {
    "init": 0, "idcode": 6, "read_record": 89, "write_record": 89, "set_clock": 7, "storage": 0,
    "resolution": 8, "battery": 4, "set_password": 16, "set_idcode": 32, "sd_status": 4,
    "admin_password": 16, "return_status": 4,
}
#: ZFY_INFO under pack(1): serial 7, officer 6, name 32, unit no 12, unit name 32
RECORD = record.Layout(89, (0, 7, 13, 45, 57), (7, 6, 32, 12, 32))
PASSWORD_LEN = 16
#: what the SDK compares the INQUIRY text with (lowercase, no spaces)
DV16_KEY = inquiry_key("DV16", "DEVICE V1.00")
#: SDK timeouts (SCSI_PASS_THROUGH TimeOutValue, seconds)
TIMEOUT_IN_S = 2
TIMEOUT_OUT_S = 10

# standard SCSI, for the probe and the simulator's disk
INQUIRY = 0x12
TEST_UNIT_READY = 0x00
READ_CAPACITY_10 = 0x25
INQUIRY_LEN = 36
GOOD = 0x00
CHECK_CONDITION = 0x02
#: sense keys
NOT_READY, MEDIUM_ERROR, HARDWARE_ERROR, ILLEGAL_REQUEST, UNIT_ATTENTION = 0x2, 0x3, 0x4, 0x5, 0x6


def cdb(first: int, second: int, value: int = 0, length: int = 0) -> bytes:
    """``USB_WriteToData``'s CDB: 16 bytes, value big-endian in 2-5, length in 6-7."""
    if not (0 <= first <= 0xFF and 0 <= second <= 0xFF and 0 <= value <= 0xFFFFFFFF and 0 <= length <= 0xFFFF):
        raise ValueError("CDB field out of range")
    return struct.pack(">BBIH", first, second, value, length) + bytes(8)


def read_cdb(name: str, length: int | None = None, sub: int | None = None) -> bytes:
    return cdb(*READ, SUB[name] if sub is None else sub, LENGTH[name] if length is None else length)


def write_cdb(name: str, length: int | None = None, sub: int | None = None) -> bytes:
    return cdb(*WRITE, SUB[name] if sub is None else sub, LENGTH[name] if length is None else length)


@dataclass(frozen=True)
class Cdb:
    first: int
    second: int
    value: int
    length: int

    @property
    def is_read(self) -> bool:
        return (self.first, self.second) == READ

    @property
    def is_write(self) -> bool:
        return (self.first, self.second) == WRITE


def parse_cdb(raw: bytes) -> Cdb:
    """The simulator's side."""
    if len(raw) != CDB_LEN:
        raise MalformedReply("", "cdb", f"{len(raw)} bytes; a vendor CDB has 16", raw)
    first, second, value, length = struct.unpack(">BBIH", raw[:8])
    return Cdb(first, second, value, length)


def _exact(data: bytes, n: int, command: str) -> bytes:
    if len(data) != n:
        raise MalformedReply("", command, f"{len(data)} bytes; expected {n}", data)
    return data


# -- replies ------------------------------------------------------------------------

def parse_idcode(data: bytes) -> str:
    """6 bytes ("6位有效"): the 5-character code and a NUL, as [E]/[G] show."""
    code = _exact(data, LENGTH["idcode"], "idcode").split(b"\0", 1)[0]
    try:
        text = code.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedReply("", "idcode", "IDCode is not ASCII", data) from None
    if not text or not text.isprintable():
        raise MalformedReply("", "idcode", "no printable IDCode", data)
    return text


def parse_record(data: bytes, encoding: str = "auto") -> record.OfficerRecord:
    return record.unpack(data, RECORD, encoding, "read_record")


def clock_payload(local: datetime, size: int = LENGTH["set_clock"]) -> bytes:
    """``struct sys_time`` for the recorder's local (naive) time; *size* 8 is
    the same struct without pack(1) (one pad byte)."""
    raw = struct.pack("<HBBBBB", local.year, local.month, local.day, local.hour, local.minute, local.second)
    return raw.ljust(size, b"\0")


def parse_clock(data: bytes) -> datetime:
    if len(data) not in (7, 8):
        raise MalformedReply("", "clock", f"{len(data)} bytes; sys_time has 7 (8 unpacked)", data)
    try:
        return datetime(*struct.unpack("<HBBBBB", data[:7]))
    except ValueError as e:
        raise MalformedReply("", "clock", f"not a time: {e}", data) from None


def parse_battery(data: bytes) -> int:
    """One little-endian ``int``, a percentage."""
    value = int.from_bytes(_exact(data, LENGTH["battery"], "battery"), "little", signed=True)
    if not 0 <= value <= 100:
        raise MalformedReply("", "battery", f"{value} is not a percentage", data)
    return value


def parse_resolution(data: bytes) -> tuple[int, int]:
    """``struct Res_t {int width; int height;}``, little-endian."""
    w, h = struct.unpack("<ii", _exact(data, LENGTH["resolution"], "resolution"))
    if not (0 < w <= 16384 and 0 < h <= 16384):
        raise MalformedReply("", "resolution", f"{w}x{h} is not a picture size", data)
    return w, h


def parse_status(data: bytes, command: str = "return_status") -> int:
    """Sub-command 14's answer: the SDK reads 4 bytes and looks at the first."""
    return _exact(data, LENGTH["return_status"], command)[0]


def check_status(data: bytes, command: str) -> None:
    """``CommandFailed`` (permanent) when the return status after *command* is not 0."""
    status = parse_status(data)
    if status != 0:
        raise CommandFailed("", command, f"return status {status}")


def parse_sd_status(data: bytes) -> bool:
    """Sub-command 12: True when a card is in (first byte non-zero)."""
    return _exact(data, LENGTH["sd_status"], "sd_status")[0] != 0


def password_payload(password: str, encoding: str = "ascii") -> bytes:
    """16 bytes, NUL-padded (set password, and the simulator's answer to 13)."""
    raw = password.encode(encoding)
    if len(raw) > PASSWORD_LEN or b"\0" in raw:
        raise ValueError(f"a DV16 password is at most {PASSWORD_LEN} bytes without NUL")
    return raw.ljust(PASSWORD_LEN, b"\0")


def parse_password(data: bytes) -> bytes:
    """Sub-command 13: the admin password, the bytes before the first NUL."""
    return _exact(data, PASSWORD_LEN, "admin_password").split(b"\0", 1)[0]


def password_matches(device: bytes, given: str, encoding: str = "ascii") -> bool:
    """The station's comparison, in constant time (the SDK's ``strcmp``)."""
    try:
        want = given.encode(encoding)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(device, want)


# -- standard SCSI ------------------------------------------------------------------

def inquiry_cdb(length: int = INQUIRY_LEN) -> bytes:
    return bytes([INQUIRY, 0, 0, (length >> 8) & 0xFF, length & 0xFF, 0])


@dataclass(frozen=True)
class Inquiry:
    peripheral: int
    removable: bool
    vendor: str
    product: str
    revision: str

    @property
    def key(self) -> str:
        return inquiry_key(self.vendor, self.product)


def _ascii(raw: bytes, what: str, data: bytes) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedReply("", "inquiry", f"{what} is not ASCII", data) from None
    if not text.isprintable():
        raise MalformedReply("", "inquiry", f"{what} is not printable", data)
    return text.rstrip(" ")


def parse_inquiry(data: bytes) -> Inquiry:
    """Standard INQUIRY data: vendor 8-15, product 16-31, revision 32-35."""
    if len(data) < 32:
        raise MalformedReply("", "inquiry", f"{len(data)} bytes; vendor and product need 32", data)
    return Inquiry(data[0], bool(data[1] & 0x80), _ascii(data[8:16].rstrip(b"\0"), "vendor", data),
                   _ascii(data[16:32].rstrip(b"\0"), "product", data),
                   _ascii(data[32:36].rstrip(b"\0"), "revision", data))


def inquiry_data(vendor: str, product: str, revision: str = "1.00", removable: bool = True) -> bytes:
    """What a disk answers (the simulator's side): direct access, SPC-2."""
    head = bytes([0x00, 0x80 if removable else 0x00, 0x04, 0x02, INQUIRY_LEN - 5, 0, 0, 0])
    return head + vendor.encode("ascii")[:8].ljust(8) + product.encode("ascii")[:16].ljust(16) \
        + revision.encode("ascii")[:4].ljust(4)


def read_capacity_data(blocks: int, block_size: int = 512) -> bytes:
    """READ CAPACITY(10): the last block's address and the block size."""
    return struct.pack(">II", max(0, min(blocks - 1, 0xFFFFFFFF)), block_size)


def parse_read_capacity(data: bytes) -> tuple[int, int]:
    last, size = struct.unpack(">II", _exact(data, 8, "read_capacity"))
    return last + 1, size


# -- sense ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Sense:
    key: int
    asc: int
    ascq: int

    def __str__(self) -> str:
        return f"sense {self.key:x}/{self.asc:02x}/{self.ascq:02x}"


def sense_data(key: int, asc: int = 0, ascq: int = 0) -> bytes:
    """Fixed-format sense (the simulator's side): 18 bytes."""
    return bytes([0x70, 0, key & 0x0F, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0])


def parse_sense(data: bytes) -> Sense | None:
    """Fixed (70/71) or descriptor (72/73) sense; None when there is none."""
    if not data:
        return None
    code = data[0] & 0x7F
    if code in (0x70, 0x71) and len(data) >= 14:
        return Sense(data[2] & 0x0F, data[12], data[13])
    if code in (0x70, 0x71) and len(data) >= 3:
        return Sense(data[2] & 0x0F, 0, 0)
    if code in (0x72, 0x73) and len(data) >= 4:
        return Sense(data[1] & 0x0F, data[2], data[3])
    raise MalformedReply("", "sense", f"response code {data[0]:02x} is not sense data", data)
