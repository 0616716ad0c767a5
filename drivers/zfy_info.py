"""ZFY_INFO, the recorder identity record of the GA/T 947 command set.

Two packed layouts are in the field::

    current (94 bytes): cSerial[8] userNo[7] userName[33] unitNo[13] unitName[33]
    older   (89 bytes): cSerial[7] userNo[6] userName[32] unitNo[12] unitName[32]

Fields are NUL-padded; names are often GBK rather than UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass

LAYOUTS: dict[int, tuple[int, int, int, int, int]] = {
    94: (8, 7, 33, 13, 33),
    89: (7, 6, 32, 12, 32),
}


class ZfyInfoError(ValueError):
    pass


@dataclass(frozen=True)
class ZfyInfo:
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


def _decode(raw: bytes, encoding: str) -> str:
    raw = raw.split(b"\0", 1)[0]
    if encoding != "auto":
        return raw.decode(encoding, "replace")
    # Short GBK text can be valid UTF-8 too (GBK D2BB, "一", is UTF-8 for U+04BB), and
    # UTF-8 Chinese is often valid GBK: keep the reading that looks like
    # Chinese text; on a tie, UTF-8. A profile that knows its firmware's
    # encoding sets it and skips the guess.
    candidates = []
    for enc in ("utf-8", "gbk"):
        try:
            candidates.append((_plausible(raw.decode(enc)), enc == "utf-8", raw.decode(enc)))
        except UnicodeDecodeError:
            continue
    if not candidates:
        return raw.decode("gbk", "replace")
    return max(candidates)[2]


def _encode(value: str, width: int, name: str, encoding: str) -> bytes:
    raw = value.encode(encoding)
    if len(raw) > width:
        raise ZfyInfoError(f"{name} is {len(raw)} bytes in {encoding}; the field holds {width}")
    return raw.ljust(width, b"\0")


def unpack(data: bytes, encoding: str = "auto") -> ZfyInfo:
    """Parse either layout; *encoding* is "auto", "gbk" or "utf-8"."""
    widths = LAYOUTS.get(len(data))
    if widths is None:
        raise ZfyInfoError(f"ZFY_INFO is {len(data)} bytes; expected 94 or 89")
    fields = []
    off = 0
    for w in widths:
        fields.append(_decode(data[off:off + w], encoding))
        off += w
    info = ZfyInfo(*fields)
    if not info.serial or not info.serial.isprintable():
        raise ZfyInfoError("ZFY_INFO has no printable device serial")
    if not info.officer.isprintable():
        raise ZfyInfoError("ZFY_INFO officer number is not printable")
    return info


def pack(info: ZfyInfo, size: int = 94, encoding: str = "gbk") -> bytes:
    widths = LAYOUTS.get(size)
    if widths is None:
        raise ZfyInfoError(f"no ZFY_INFO layout of {size} bytes")
    values = (info.serial, info.officer, info.officer_name, info.unit_no, info.unit_name)
    names = ("serial", "officer", "officer_name", "unit_no", "unit_name")
    return b"".join(_encode(v, w, n, encoding) for v, w, n in zip(values, widths, names, strict=True))
