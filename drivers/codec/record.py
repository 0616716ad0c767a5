"""The GA/T 947 officer record (ZFY_INFO) as recorders put it on the wire.

Two layouts are seen: the ZFY control-transfer SDK's 100-byte payload
(slots 9/8/35/16/32 at 0/9/17/52/68, of which the SDK copies 7/6/32/12/32)
and the Guobao E12 89-byte record (7/6/32/12/32 at 0/7/13/45/57). Fields are
NUL-padded; names are GBK on most firmware, UTF-8 on some.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.base import MalformedReply


@dataclass(frozen=True)
class Layout:
    size: int
    #: serial, officer number, officer name, unit number, unit name
    offsets: tuple[int, int, int, int, int]
    #: bytes read from each slot
    widths: tuple[int, int, int, int, int]

    def slot(self, i: int) -> int:
        """The room a field has when written: up to the next field."""
        end = self.offsets[i + 1] if i + 1 < len(self.offsets) else self.size
        return end - self.offsets[i]


ZFY_CTRL = Layout(100, (0, 9, 17, 52, 68), (7, 6, 32, 12, 32))
E12 = Layout(89, (0, 7, 13, 45, 57), (7, 6, 32, 12, 32))
_NAMES = ("serial", "officer", "officer_name", "unit_no", "unit_name")


@dataclass(frozen=True)
class OfficerRecord:
    serial: str
    officer: str
    officer_name: str = ""
    unit_no: str = ""
    unit_name: str = ""


def _plausible(text: str) -> float:
    """Share of characters a Chinese name, unit or number plausibly holds."""
    if not text:
        return 1.0
    good = sum(1 for c in text if (c.isascii() and c.isprintable()) or "\u4e00" <= c <= "\u9fff"
               or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef")
    return good / len(text)


def decode_text(raw: bytes, encoding: str) -> str:
    """A NUL-terminated field; *encoding* "auto" picks GBK or UTF-8."""
    raw = raw.split(b"\0", 1)[0]
    if encoding != "auto":
        return raw.decode(encoding, "replace")
    # Short GBK text can be valid UTF-8 too (GBK D2BB, "一", is UTF-8 for U+04BB),
    # and UTF-8 Chinese is often valid GBK: keep the reading that looks like
    # Chinese text; on a tie, UTF-8. A profile that knows its firmware's
    # encoding sets it and skips the guess.
    candidates = []
    for enc in ("utf-8", "gbk"):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        candidates.append((_plausible(text), enc == "utf-8", text))
    if not candidates:
        return raw.decode("gbk", "replace")
    return max(candidates)[2]


def unpack(data: bytes, layout: Layout, encoding: str = "auto", command: str = "read record") -> OfficerRecord:
    if len(data) != layout.size:
        raise MalformedReply("", command, f"officer record is {len(data)} bytes; expected {layout.size}", data)
    fields = [decode_text(data[o:o + w], encoding) for o, w in zip(layout.offsets, layout.widths, strict=True)]
    rec = OfficerRecord(*fields)
    if not rec.serial or not rec.serial.isprintable():
        raise MalformedReply("", command, "officer record has no printable device serial", data)
    if not rec.officer.isprintable():
        raise MalformedReply("", command, "officer number is not printable", data)
    return rec


def fits(rec: OfficerRecord, layout: Layout, encoding: str) -> list[str]:
    """Why *rec* cannot be packed (empty: it can)."""
    out = []
    values = (rec.serial, rec.officer, rec.officer_name, rec.unit_no, rec.unit_name)
    for name, value, width in zip(_NAMES, values, layout.widths, strict=True):
        n = len(value.encode(encoding, "replace"))
        if n > width:
            out.append(f"{name} {value!r} is {n} bytes in {encoding}; the field holds {width}")
    return out


def pack(rec: OfficerRecord, layout: Layout, encoding: str = "gbk") -> bytes:
    problems = fits(rec, layout, encoding)
    if problems:
        raise ValueError("; ".join(problems))
    out = bytearray(layout.size)
    values = (rec.serial, rec.officer, rec.officer_name, rec.unit_no, rec.unit_name)
    for value, off in zip(values, layout.offsets, strict=True):
        raw = value.encode(encoding)
        out[off:off + len(raw)] = raw
    return bytes(out)
