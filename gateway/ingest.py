"""Pull one clip: copy and SHA-256 in a single pass, durably.

Runs in a worker thread. The loop reads into one reused buffer, hashes the
bytes (hashlib drops the GIL for large updates, so slots pull in parallel),
and writes them out; nothing touches the event loop per chunk. Progress is a
plain counter the status writer samples.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from drivers.base import ClipRef
from gateway.errors import ClipInterrupted

_FADV = hasattr(os, "posix_fadvise")


@dataclass(frozen=True)
class Pulled:
    sha256: str
    size: int
    temp: Path


def copy_and_hash(src: BinaryIO, dst_fd: int, buf: bytearray, cancel: threading.Event,
                  progress: Callable[[int], None] | None, label: str, limit: int) -> tuple[str, int]:
    """Copy at most *limit* bytes; one byte more means the clip is still
    growing (the recorder is writing it), which must not loop forever."""
    h = hashlib.sha256()
    view = memoryview(buf)
    total = 0
    while True:
        if cancel.is_set():
            raise ClipInterrupted(label, "undocked or stopping")
        want = min(len(view), limit - total + 1)
        try:
            n = src.readinto(view[:want])  # type: ignore[attr-defined]
        except OSError as e:
            raise ClipInterrupted(label, f"read error: {e.strerror or e}") from None
        if not n:
            break
        chunk = view[:n]
        h.update(chunk)
        off = 0
        while off < n:
            off += os.write(dst_fd, chunk[off:])
        total += n
        if total > limit:
            raise ClipInterrupted(label, "grew while it was being copied")
        if progress is not None:
            progress(n)
    return h.hexdigest(), total


def pull(open_clip: Callable[[ClipRef], BinaryIO], ref: ClipRef, temp: Path, buf: bytearray,
         cancel: threading.Event, progress: Callable[[int], None] | None = None) -> Pulled:
    """Copy *ref* to *temp* (fsynced) and return its hash. Raises ClipInterrupted
    (temp removed) if the clip could not be read whole and unchanged."""
    label = ref.display
    try:
        src = open_clip(ref)
    except FileNotFoundError:
        raise ClipInterrupted(label, "vanished from the recorder") from None
    except OSError as e:
        raise ClipInterrupted(label, f"cannot open: {e.strerror or e}") from None
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    ok = False
    try:
        with src:
            sha, size = copy_and_hash(src, fd, buf, cancel, progress, label, ref.size)
            if size != ref.size:
                raise ClipInterrupted(label, f"read {size} bytes, recorder listed {ref.size}")
            _check_unchanged(src, ref, label)
            os.fsync(fd)
            if _FADV:
                # a multi-GB clip must not push everything else out of the page cache
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                with contextlib.suppress(OSError, ValueError):
                    os.posix_fadvise(src.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        ok = True
        return Pulled(sha, size, temp)
    finally:
        os.close(fd)
        if not ok:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _check_unchanged(src: BinaryIO, ref: ClipRef, label: str) -> None:
    try:
        st = os.fstat(src.fileno())
    except (OSError, ValueError, AttributeError):
        return  # a protocol stream without a descriptor: the byte count is the check
    if st.st_size != ref.size or st.st_mtime_ns != ref.mtime_ns:
        raise ClipInterrupted(label, "changed while it was being copied")
