"""Clip bytes for the browser's video element: HTTP range requests (RFC
9110 §14) over a staged file or an archive object, read in worker threads
so a slow archive never stalls the event loop; and the clip page's content
check, hashed once per object identity (``ContentChecks``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one satisfiable range; None for the whole
    body; raises HTTPRequestRangeNotSatisfiable for a range outside it."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or a unit we do not serve: the whole body (allowed by the RFC)
    if m.group(1):
        first = int(m.group(1))
        last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:  # the last N bytes
        n = int(m.group(2))
        first, last = max(size - n, 0), size - 1
    if first >= size or last < first:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return first, last


def range_start(header: str | None, size: int) -> int | None:
    """Where a request starts reading: 0 without a range, the first byte
    of its range, None for a range that cannot be served."""
    try:
        span = parse_range(header, size)
    except web.HTTPRequestRangeNotSatisfiable:
        return None
    return 0 if span is None else span[0]


def _skip_to(stream: BinaryIO, offset: int) -> None:
    if stream.seekable():
        stream.seek(offset)
        return
    left = offset
    while left > 0:  # a streaming archive body: read up to the range
        got = stream.read(min(left, CHUNK))
        if not got:
            break
        left -= len(got)


async def send(request: web.Request, opener: Callable[[], BinaryIO], size: int, content_type: str,
               filename: str | None = None) -> web.StreamResponse:
    span = parse_range(request.headers.get("Range"), size)
    first, last = span if span is not None else (0, size - 1)
    resp = web.StreamResponse(status=206 if span is not None else 200)
    resp.content_type = content_type
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["Cache-Control"] = "no-store"
    resp.content_length = max(last - first + 1, 0)
    if span is not None:
        resp.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if filename is not None:
        resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(filename)}"
    await resp.prepare(request)
    if request.method == "HEAD" or size == 0:
        return resp
    stream = await asyncio.to_thread(opener)
    try:
        await asyncio.to_thread(_skip_to, stream, first)
        left = last - first + 1
        while left > 0:
            data = await asyncio.to_thread(stream.read, min(CHUNK, left))
            if not data:
                break
            await resp.write(data)
            left -= len(data)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    finally:
        await asyncio.to_thread(stream.close)
    return resp


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def content_type(name: str) -> str:
    lower = name.lower()
    if lower.endswith((".mp4", ".m4v", ".mov")):
        return "video/mp4"
    if lower.endswith(".avi"):
        return "video/x-msvideo"
    if lower.endswith((".jpg", ".jpeg")):
        return "image/jpeg"
    if lower.endswith(".wav"):
        return "audio/wav"
    return "application/octet-stream"


def file_identity(path: Path) -> str:
    """A staged file's identity, as a directory archive gives its objects'
    (device, inode, size, mtime and ctime in ns): any rewrite changes it."""
    st = os.stat(path)
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


class ContentChecks:
    """The clip page's content check without hashing the whole clip on
    every view: a clip is hashed once per identity (a staged file's device,
    inode, size and times; the archive's ``identity``), and the page says
    which it did: "hashed now", or when it was hashed and that the object is
    unchanged since by its identity. A changed, or unknown, identity is
    hashed again; the comparison with the recorded hash is made every time.
    Bounded: the oldest entries are forgotten first."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, tuple[str, str, float]] = OrderedDict()
        #: objects read and hashed (the tests count them)
        self.hashed = 0

    def check(self, where: str, name: str, identity: str | None, expected: str,
              hash_now: Callable[[], str | None]) -> dict[str, Any]:
        seen = self._seen.get(name)
        got: str | None
        if identity is not None and seen is not None and seen[0] == identity:
            got, at, how = seen[1], seen[2], "unchanged since by its identity (inode, size, times; ETag, version)"
        else:
            got = hash_now()
            self.hashed += 1
            at, how = time.time(), "hashed now"
            if identity is not None and got is not None:
                self._seen[name] = (identity, got, at)
                self._seen.move_to_end(name)
                while len(self._seen) > self.limit:
                    self._seen.popitem(last=False)
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        ok = got == expected
        stamp = f"hashed now ({when})" if how == "hashed now" else f"hashed {when}, {how}"
        detail = f"matches: SHA-256 of the whole {where} copy, {stamp}" if ok else f"found {got} ({stamp})"
        return {"check": "content SHA-256", "where": where, "ok": ok, "detail": detail}
