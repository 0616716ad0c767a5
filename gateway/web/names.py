"""File names as people read them.

A clip's path is kept as the bytes the recorder's volume gave (the catalog
stores them untouched: they are evidence). Showing them is another matter:
recorders of Chinese vendors write GBK names on their FAT volumes (code
page 936, what a Chinese Windows writes; FAT records no encoding), so a
name such as 执法记录.mp4 reaches us as b'\\xd6\\xb4\\xb7\\xa8...'. Decoded
as UTF-8 with escapes, a supervisor sees ``\\xd6\\xb4\\xb7\\xa8``; decoded
here, 执法记录.mp4.

Each '/'-separated part is decoded on its own (a GBK folder may hold a
UTF-8 name): UTF-8 when the bytes are valid UTF-8 (what Linux and most
newer recorders write; GBK text is almost never valid UTF-8, and plain
ASCII is both), else GB18030 (the superset of GBK and GB2312) when it
decodes with no error into assigned, non-private characters, else UTF-8
with backslash escapes, so every byte that is not text still shows (as
``\\xb7``) and nothing is dropped. Characters a screen would not
show (controls, bidirectional overrides) are written as escapes too: a name
cannot break a line or reverse the text around it."""

from __future__ import annotations

import unicodedata

#: Unicode categories that are not shown as themselves: controls, format
#: characters (bidi overrides, zero-width), surrogates, private use, unassigned
_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn")


def display_name(raw: bytes) -> str:
    """*raw* (a file name or a '/'-separated path from a recorder's volume)
    as text for people; never raises."""
    return "/".join(_part(p) for p in bytes(raw).split(b"/"))


def _part(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = _gb18030(raw) or raw.decode("utf-8", "backslashreplace")
    return "".join(_visible(c) for c in text)


def _gb18030(raw: bytes) -> str | None:
    """The GB18030 reading of *raw*, or None when it is not clean Chinese
    text: an error, or a character from a private-use or unassigned range
    (where random bytes land; no recorder writes those on purpose)."""
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(c) in ("Co", "Cn", "Cs") for c in text):
        return None
    return text


def _visible(c: str) -> str:
    if unicodedata.category(c) not in _HIDDEN:
        return c
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"
