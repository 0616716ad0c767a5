"""A fixed-layout PDF writer for the chain-of-custody report: A4 pages of
headings, paragraphs and tables with set column widths, drawn row by row
and streamed to the file page by page.

Contract:

- Text is set in CID-keyed OpenType/CFF fonts (Noto Sans CJK SC and Noto
  Sans Mono CJK SC from Debian's ``fonts-noto-cjk``, found by fontconfig),
  each embedded once per document as a subset of the glyphs it used
  (``FontFile3``/``CIDFontType0C``, Identity-H, with a ToUnicode map so the
  text can be searched and copied). A character the font lacks is drawn as
  its ``.notdef`` box, never dropped.
- Lines are broken at spaces and between CJK characters; a word wider than
  its cell, and any text in a ``break_all`` style (hashes), is broken
  between any two characters. No shaping, kerning or ligatures: the
  report's scripts (Chinese, Latin, digits) need none.
- A table row is never split across pages (a row taller than a page runs
  over the bottom margin); a table's header row is drawn again at the top of
  every page it continues on. A heading keeps at least three lines below it
  on its page.
- Memory does not grow with the document: a page's content is written when
  the page ends; what remains until the end is one object offset per object
  and the set of glyphs used.
- Page furniture (running header, "page n of m") is drawn by a callback
  that is told the page's number and the total. The total is known because
  the caller lays the document out twice (``Layout(None, ...)`` counts,
  then a second ``Layout`` writes): layout is cheap next to the writing,
  and the result is exactly the same twice.

Why not WeasyPrint (which rendered this report until 2026-12): its layout
is a browser's (CSS cascade, Pango line breaking of every text box, automatic
page fragmentation), some 0.15 CPU-s and 1.6 MiB a clip, held whole until
the document is written; a 1 000-clip case took 157 CPU-s in 20 volumes.
ReportLab (in Debian) cannot embed OpenType fonts with CFF outlines, which
is what Debian's CJK fonts are.
"""

from __future__ import annotations

import array
import bisect
import functools
import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

MM = 72 / 25.4
A4 = (595.28, 841.89)


class FontMissing(Exception):
    """fontconfig has no file for a family the report needs."""


@dataclass(frozen=True)
class _Metrics:
    """What layout needs of a font, read from the file's tables (cmap format
    12, hmtx): a few hundred KiB, where fontTools' objects for the whole
    font would be some 45 MiB a face that the allocator does not give back."""

    path: str
    index: int
    starts: list[int]  # cmap groups: first code point, last, first glyph
    ends: list[int]
    first: list[int]
    advances: array.array[int]  # glyph id -> advance in font units (the last one repeats)
    k: float  # font units to 1/1000 em
    ascent: float
    descent: float
    bbox: tuple[int, ...]
    cap_height: int

    def glyph(self, cp: int) -> tuple[int, float]:
        i = bisect.bisect_right(self.starts, cp) - 1
        gid = self.first[i] + cp - self.starts[i] if i >= 0 and cp <= self.ends[i] else 0
        adv = self.advances[min(gid, len(self.advances) - 1)]
        return gid, round(adv * self.k, 1)


def _table_dir(f: BinaryIO, index: int) -> dict[bytes, tuple[int, int]]:
    head = f.read(12)
    if head[:4] == b"ttcf":
        f.seek(12 + 4 * index)
        (offset,) = struct.unpack(">I", f.read(4))
        f.seek(offset)
        head = f.read(12)
    (n,) = struct.unpack(">H", head[4:6])
    out = {}
    for _ in range(n):
        tag, _sum, off, length = struct.unpack(">4sIII", f.read(16))
        out[tag] = (off, length)
    return out


@functools.lru_cache(maxsize=4)
def _load(family: str) -> _Metrics:
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}\n%{index}\n%{family}", family], capture_output=True,
                             text=True, check=False).stdout.split("\n")
    except FileNotFoundError as e:
        raise FontMissing("fc-match not found (Debian: fontconfig)") from e
    if len(out) < 3 or family not in out[2].split(","):
        raise FontMissing(f"font {family!r} not found (Debian: fonts-noto-cjk)")
    path, index = out[0], int(out[1])
    with open(path, "rb") as f:
        tables = _table_dir(f, index)

        def table(tag: bytes) -> bytes:
            off, length = tables[tag]
            f.seek(off)
            return f.read(length)

        if b"CFF " not in tables:
            raise FontMissing(f"font {family!r} has no CFF outlines")
        head, hhea, os2, cmap = table(b"head"), table(b"hhea"), table(b"OS/2"), table(b"cmap")
        (upem,) = struct.unpack(">H", head[18:20])
        bbox = struct.unpack(">4h", head[36:44])
        ascent, descent = struct.unpack(">hh", hhea[4:8])
        (n_metrics,) = struct.unpack(">H", hhea[34:36])
        cap = struct.unpack(">h", os2[88:90])[0] if len(os2) >= 90 else ascent
        hmtx = table(b"hmtx")[:4 * n_metrics]
        advances = array.array("H", hmtx)
        if sys.byteorder == "little":
            advances.byteswap()
        advances = advances[::2]  # (advance, left side bearing) pairs
        starts, ends, first = [], [], []
        (n_sub,) = struct.unpack(">H", cmap[2:4])
        for k in range(n_sub):
            pid, eid, off = struct.unpack(">HHI", cmap[4 + 8 * k:12 + 8 * k])
            if (pid, eid) in ((3, 10), (0, 4), (0, 6)) and struct.unpack(">H", cmap[off:off + 2])[0] == 12:
                (groups,) = struct.unpack(">I", cmap[off + 12:off + 16])
                for g in range(groups):
                    a, b, c = struct.unpack(">III", cmap[off + 16 + 12 * g:off + 28 + 12 * g])
                    starts.append(a)
                    ends.append(b)
                    first.append(c)
                break
        else:
            raise FontMissing(f"font {family!r} has no Unicode cmap of format 12")
    k = 1000 / upem
    return _Metrics(path, index, starts, ends, first, advances, k, ascent * k, descent * k,
                    tuple(round(v * k) for v in bbox), round(cap * k))


class Face:
    """One font of one document: its metrics, and the glyphs the document
    used (embedded by ``PdfWriter.finish``)."""

    def __init__(self, family: str, tag: str) -> None:
        self.family, self.tag = family, tag
        m = self._m = _load(family)
        self.path, self.index = m.path, m.index
        self.ascent, self.descent, self.bbox, self.cap_height = m.ascent, m.descent, m.bbox, m.cap_height
        self._glyph: dict[str, tuple[int, float]] = {}  # char -> (CID, advance in 1/1000 em)
        self.used: dict[int, str] = {}  # CID -> the character it was drawn for
        self.widths: dict[int, float] = {}

    def glyph(self, ch: str) -> tuple[int, float]:
        """*ch*'s CID (its glyph id: Noto CJK's CIDs are its glyph ids, which
        ``subset`` checks) and advance; CID 0, .notdef, for a missing one."""
        g = self._glyph.get(ch)
        if g is None:
            g = self._glyph[ch] = self._m.glyph(ord(ch))
        return g

    def width(self, text: str, size: float) -> float:
        glyph = self.glyph
        return sum(glyph(ch)[1] for ch in text) * size / 1000

    def hex(self, text: str) -> str:
        out = []
        for ch in text:
            cid, adv = self.glyph(ch)
            if cid not in self.used:
                self.used[cid] = ch if cid else ""
                self.widths[cid] = adv
            out.append(f"{cid:04x}")
        return "".join(out)

    def subset_apart(self) -> bytes:
        """``subset`` in a child process: fontTools reads the whole font to
        subset it (some 50 MiB a face, which the allocator would keep for the
        rest of an export); the child ends with it."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(r)
                if tracemalloc.is_tracing():  # a parent measuring its heap (a test) has no use for the child's,
                    tracemalloc.stop()  # and tracing fontTools' allocations makes the subset ten times slower
                try:
                    out = b"K" + self.subset()
                except BaseException as e:  # whatever it is goes back to the parent, in words
                    out = b"E" + str(e).encode()
                with os.fdopen(w, "wb") as f:
                    f.write(out)
            finally:
                os._exit(0)  # never back into the parent's code (pytest, the exporter's cleanup)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            out = f.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not out.startswith(b"K"):
            raise FontMissing(f"subsetting {self.family!r} failed: {out[1:].decode(errors='replace') or status}")
        return out[1:]

    def subset(self) -> bytes:
        """The CFF table of the glyphs used, original CIDs kept (the
        charset maps them), subroutines kept, hinting dropped."""
        from fontTools import subset  # type: ignore[import-untyped]  # no type information
        from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

        tt = TTFont(self.path, fontNumber=self.index, lazy=True)
        opts = subset.Options(hinting=False, notdef_outline=True, layout_features=[], name_IDs=[],
                              drop_tables=["GSUB", "GPOS", "GDEF", "BASE", "VORG", "vhea", "vmtx", "DSIG"])
        sub = subset.Subsetter(opts)
        sub.populate(unicodes=[ord(c) for c in self.used.values() if c])
        sub.subset(tt)
        cff = tt["CFF "].cff
        if not hasattr(cff.topDictIndex[0], "ROS"):
            raise FontMissing(f"font {self.family!r} is not a CID-keyed CFF font")
        cmap = tt.getBestCmap()
        for cid, ch in self.used.items():  # the text was drawn with glyph ids as CIDs: the charset must agree
            if ch and cmap.get(ord(ch)) != f"cid{cid:05d}":
                raise FontMissing(f"font {self.family!r}: CID of {ch!r} is {cmap.get(ord(ch))}, not glyph {cid}")
        buf = io.BytesIO()
        cff.compile(buf, tt)
        return buf.getvalue()


@dataclass(frozen=True)
class Style:
    face: Face
    size: float
    color: tuple[float, float, float] = (0, 0, 0)
    break_all: bool = False  # break between any two characters (hashes, keys)


#: text spans of one cell or paragraph; "\n" in a span's text breaks the line
Spans = list[tuple[str, Style]]
#: a laid-out line: (x offset, text, style) runs
Line = list[tuple[float, str, Style]]

_TOKEN = re.compile(r"\s+|[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]|[^\s\u2e80-\u9fff\uf900-\ufaff"
                    r"\uff00-\uffef\u3000-\u303f]+")


def wrap(spans: Spans, width: float) -> list[Line]:
    """*spans* broken into lines no wider than *width* (see the contract)."""
    lines: list[Line] = [[]]
    x = 0.0

    def put(text: str, st: Style, w: float) -> None:
        nonlocal x
        line = lines[-1]
        if line and line[-1][2] is st:  # runs of a line are contiguous: one run per style change
            line[-1] = (line[-1][0], line[-1][1] + text, st)
        else:
            line.append((x, text, st))
        x += w

    def newline() -> None:
        nonlocal x
        lines.append([])
        x = 0.0

    for text, st in spans:
        for n, part in enumerate(text.split("\n")):
            if n:
                newline()
            tokens = list(part) if st.break_all else _TOKEN.findall(part)
            for tok in tokens:
                w = st.face.width(tok, st.size)
                if tok.isspace():
                    if lines[-1]:  # tabs and the like as spaces: the font has no glyph for them
                        put(" " * len(tok), st, st.face.width(" " * len(tok), st.size))
                    continue
                if x + w > width and lines[-1]:
                    newline()
                if w > width:  # a word wider than the column: break it anywhere
                    for ch in tok:
                        cw = st.face.width(ch, st.size)
                        if x + cw > width and lines[-1]:
                            newline()
                        put(ch, st, cw)
                    continue
                put(tok, st, w)
    while len(lines) > 1 and not lines[-1]:  # a closing "\n" ends the last line, it does not add one
        lines.pop()
    return lines


@dataclass
class Cell:
    spans: Spans
    head: bool = False  # a header cell: grey background
    span: int = 1  # columns it covers


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


class PdfWriter:
    """PDF objects written to *f* as they come; the cross-reference table
    and the fonts at ``finish``."""

    def __init__(self, f: BinaryIO, faces: Iterable[Face]) -> None:
        self.f = f
        self.pos = 0
        self.offsets: list[int] = [0]
        self.faces = list(faces)
        self.pages_num = self.new()
        self.font_nums = {face.tag: self.new() for face in self.faces}
        self.kids: list[int] = []
        self._write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.pos += len(data)

    def new(self) -> int:
        self.offsets.append(0)
        return len(self.offsets) - 1

    def obj(self, num: int, body: bytes | str) -> None:
        self.offsets[num] = self.pos
        self._write(f"{num} 0 obj\n".encode() + (body.encode() if isinstance(body, str) else body)
                    + b"\nendobj\n")

    def stream(self, num: int, data: bytes, extra: str = "") -> None:
        z = zlib.compress(data, 6)
        self.obj(num, f"<< {extra} /Length {len(z)} /Filter /FlateDecode >>\nstream\n".encode() + z
                 + b"\nendstream")

    def page(self, content: bytes, size: tuple[float, float]) -> None:
        c, p = self.new(), self.new()
        self.stream(c, content)
        fonts = " ".join(f"/{tag} {num} 0 R" for tag, num in self.font_nums.items())
        self.obj(p, f"<< /Type /Page /Parent {self.pages_num} 0 R /MediaBox [0 0 {_num(size[0])} {_num(size[1])}] "
                    f"/Resources << /Font << {fonts} >> >> /Contents {c} 0 R >>")
        self.kids.append(p)

    def _font(self, face: Face) -> None:
        cff = face.subset_apart()
        tag = "".join(chr(65 + b % 26) for b in hashlib.sha256(cff).digest()[:6])
        name = f"/{tag}+{face.family.replace(' ', '-')}"
        file_n, desc_n, cid_n, uni_n = self.new(), self.new(), self.new(), self.new()
        self.stream(file_n, cff, "/Subtype /CIDFontType0C")
        bbox = " ".join(map(str, face.bbox))
        self.obj(desc_n, f"<< /Type /FontDescriptor /FontName {name} /Flags 4 /FontBBox [{bbox}]"
                         f" /ItalicAngle 0 /Ascent {round(face.ascent)} /Descent {round(face.descent)}"
                         f" /CapHeight {face.cap_height} /StemV 80 /FontFile3 {file_n} 0 R >>")
        widths = " ".join(f"{cid} [{_num(w)}]" for cid, w in sorted(face.widths.items()))
        self.obj(cid_n, f"<< /Type /Font /Subtype /CIDFontType0 /BaseFont {name} /CIDSystemInfo << /Registry "
                        f"(Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor {desc_n} 0 R /DW 1000 "
                        f"/W [{widths}] >>")
        pairs = [(cid, ch) for cid, ch in sorted(face.used.items()) if ch]
        chunks = []
        for i in range(0, len(pairs), 100):
            part = pairs[i:i + 100]
            chunks.append(f"{len(part)} beginbfchar\n" + "\n".join(
                f"<{cid:04x}> <{ch.encode('utf-16-be').hex()}>" for cid, ch in part) + "\nendbfchar")
        self.stream(uni_n, ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CIDSystemInfo << "
                            "/Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def /CMapName /Adobe-Identity-UCS "
                            "def /CMapType 2 def 1 begincodespacerange <0000> <ffff> endcodespacerange\n"
                            + "\n".join(chunks) + "\nendcmap CMapName currentdict /CMap defineresource pop end end")
                    .encode())
        self.obj(self.font_nums[face.tag], f"<< /Type /Font /Subtype /Type0 /BaseFont {name} /Encoding /Identity-H "
                                           f"/DescendantFonts [{cid_n} 0 R] /ToUnicode {uni_n} 0 R >>")

    def finish(self, title: str) -> None:
        for face in self.faces:
            self._font(face)
        self.obj(self.pages_num, f"<< /Type /Pages /Count {len(self.kids)} /Kids ["
                 + " ".join(f"{k} 0 R" for k in self.kids) + "] >>")
        info, root = self.new(), self.new()
        self.obj(info, f"<< /Title <feff{title.encode('utf-16-be').hex()}> /Producer (dockgate) >>")
        self.obj(root, f"<< /Type /Catalog /Pages {self.pages_num} 0 R >>")
        xref = self.pos
        rows = "".join(f"{off:010d} 00000 n \n" for off in self.offsets[1:])
        self._write(f"xref\n0 {len(self.offsets)}\n0000000000 65535 f \n{rows}trailer\n<< /Size {len(self.offsets)} "
                    f"/Root {root} 0 R /Info {info} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())


class Layout:
    """The flow of one document over A4 pages. With *out* None nothing is
    drawn and only pages are counted (the first of the two passes)."""

    LEADING = 1.3  # line height, in font sizes
    PAD = (2.0, 3.0)  # cell padding, vertical and horizontal (pt)

    def __init__(self, out: PdfWriter | None, furniture: Callable[[Layout, int], None],
                 margins: tuple[float, float, float, float] = (18 * MM, 12 * MM, 16 * MM, 12 * MM)) -> None:
        self.out = out
        self.furniture = furniture
        self.size = A4
        self.top, self.right, self.bottom, self.left = margins
        self.width = self.size[0] - self.left - self.right
        self.pages = 0
        self.ops: list[str] = []
        self.y = 0.0  # distance from the top of the page to the cursor
        self._page()

    # -- drawing (no-ops when only counting) ---------------------------------------------------------
    def text(self, x: float, y: float, text: str, st: Style) -> None:
        """*text* with its baseline at *y* from the top of the page."""
        if self.out is None or not text:
            return
        r, g, b = st.color
        self.ops.append(f"BT /{st.face.tag} {_num(st.size)} Tf {_num(r)} {_num(g)} {_num(b)} rg "
                        f"{_num(x)} {_num(self.size[1] - y)} Td <{st.face.hex(text)}> Tj ET")

    def rect(self, x: float, y: float, w: float, h: float, fill: float | None = None) -> None:
        """A box whose top left corner is *y* from the page's top: outlined,
        or filled with the grey *fill*."""
        if self.out is None:
            return
        box = f"{_num(x)} {_num(self.size[1] - y - h)} {_num(w)} {_num(h)} re"
        self.ops.append(f"{_num(fill)} g {box} f" if fill is not None else f"0.5 w 0.533 G {box} S")

    def _page(self) -> None:
        if self.pages and self.out is not None:
            self.out.page("\n".join(self.ops).encode(), self.size)
        self.ops = []
        self.pages += 1
        self.y = self.top
        self.furniture(self, self.pages)

    def finish(self) -> None:
        if self.out is not None:
            self.out.page("\n".join(self.ops).encode(), self.size)

    def room(self, h: float) -> None:
        """A new page unless *h* more points fit on this one."""
        if self.y + h > self.size[1] - self.bottom and self.y > self.top:
            self._page()

    def _lines(self, lines: list[Line], x: float, y: float) -> float:
        for line in lines:
            size = max((st.size for _, _, st in line), default=0) or 9
            lead = size * self.LEADING
            base = y + (lead - (line[0][2].face.ascent - line[0][2].face.descent) * size / 1000) / 2 \
                + line[0][2].face.ascent * size / 1000 if line else y
            for dx, text, st in line:
                self.text(x + dx, base, text, st)
            y += lead
        return y

    @staticmethod
    def height(lines: list[Line], default: float) -> float:
        return sum(max((st.size for _, _, st in line), default=default) * Layout.LEADING for line in lines)

    # -- flow ----------------------------------------------------------------------------------------------
    def heading(self, text: str, st: Style, before: float, keep: float = 40) -> None:
        lines = wrap([(text, st)], self.width)
        h = self.height(lines, st.size)
        self.y += before if self.y > self.top else 0
        self.room(h + keep)
        self.y = self._lines(lines, self.left, self.y) + 3

    def paragraph(self, spans: Spans, size: float, background: float | None = None, pad: float = 0) -> None:
        for line in wrap(spans, self.width - 2 * pad):
            h = self.height([line], size)
            self.room(h)
            if background is not None:
                self.rect(self.left, self.y, self.width, h, fill=background)
            self.y = self._lines([line], self.left + pad, self.y)
        self.y += 4

    def table(self, rows: Iterable[list[Cell]], widths: list[float], header: list[Cell] | None = None,
              size: float = 9) -> None:
        """*widths* as fractions of the text width; *header* repeated on
        every page the table runs on. Rows are laid out one at a time."""
        cols = [w * self.width for w in widths]
        self.y += 4
        if header is not None:
            self._row(header, cols, size, None)
        for row in rows:
            self._row(row, cols, size, header)
        self.y += 4

    def _row(self, row: list[Cell], cols: list[float], size: float, header: list[Cell] | None) -> None:
        pv, ph = self.PAD
        laid = []
        k = 0
        for cell in row:
            w = sum(cols[k:k + cell.span])
            laid.append((cell, w, wrap(cell.spans, w - 2 * ph)))
            k += cell.span
        h = max(self.height(lines, size) for _, _, lines in laid) + 2 * pv
        if self.y + h > self.size[1] - self.bottom and self.y > self.top:
            self._page()
            if header is not None:
                self._row(header, cols, size, None)
        x = self.left
        for cell, w, lines in laid:
            if cell.head:
                self.rect(x, self.y, w, h, fill=0.933)
            self.rect(x, self.y, w, h)
            self._lines(lines, x + ph, self.y + pv)
            x += w
        self.y += h
