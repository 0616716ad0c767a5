"""Copy and SHA-256 in one pass: the copy engine a pull and the directory
archive share.

Runs in a worker thread. The loop reads into a small ring of reused buffers
and writes them out while a second thread hashes them (hashlib drops the GIL
for large updates, so the two overlap, and slots pull in parallel); nothing
touches the event loop per chunk. A slow link hashes in the copy thread and
writes with O_DIRECT (``DirectWrite``). What a pull adds (open, size and
change checks, fsync, the staging errors) is ``pipeline/ingest.py``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from drivers.base import DriverError
from gateway.durable import start_writeback, write_all
from gateway.errors import ClipInterrupted

HAS_FADVISE = hasattr(os, "posix_fadvise")


Buffer = bytearray | memoryview


#: buffers in flight between the copy loop and the hashing thread
BUFFERS = 4


#: a slot pulling slower than this (bytes/s; a USB 2.0 link gives 35-40
#: MB/s) hashes in its copy thread: the hash then costs a few per cent of
#: that thread, while a hashing thread per slot costs a hand-off per buffer.
#: 25 slots at 35 MB/s, median pull time / link time: 107-109 % inline,
#: 110-113 % with 50 threads
HASH_INLINE_BELOW = 100_000_000


#: a slot's first clip starts before its rate is known: after this many
#: bytes its own rate decides (a rack of 25 slow recorders docked at once
#: spent their first clips on 25 hashing threads and the page cache)
ADAPT_AFTER = 4 << 20


_WRITEBACK_EVERY = 32 << 20


#: hashing threads kept between clips (starting one per clip showed in the
#: cost of a recorder of 5 MiB clips); one per slot at most is busy at a time
_HASHERS = ThreadPoolExecutor(max_workers=72, thread_name_prefix="sha256")


class Hasher:
    """SHA-256 on its own thread, fed buffers the copy loop has written:
    hashing (the slow part, ~1.2 GB/s) overlaps reading and writing, so the
    copy costs little more than the hash alone. Buffers come back through
    ``free`` once hashed; nothing is copied between threads. *inline*: no
    thread, ``feed`` hashes at once (a slow link, ``HASH_INLINE_BELOW``)."""

    def __init__(self, buffers: Sequence[Buffer], inline: bool = False) -> None:
        self.h = hashlib.sha256()
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.todo: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self.buffers = [memoryview(b) for b in buffers]
        for i in range(len(buffers)):
            self.free.put(i)
        self.inline = inline
        self.done = None if inline else _HASHERS.submit(self._run)

    def feed(self, i: int, n: int) -> None:
        """Buffer *i* holds *n* bytes to hash (now, when inline)."""
        if self.inline:
            self.h.update(self.buffers[i][:n])
            self.free.put(i)
        else:
            self.todo.put((i, n))

    def _run(self) -> None:
        while (job := self.todo.get()) is not None:
            i, n = job
            self.h.update(self.buffers[i][:n])
            self.free.put(i)

    def _join(self) -> None:
        """The thread hashes what it was given, in order, and ends (every
        buffer is free again)."""
        if self.done is not None:
            self.todo.put(None)
            self.done.result()
            self.done = None

    def go_inline(self) -> None:
        """From now on hash in the caller's thread."""
        self._join()
        self.inline = True

    def finish(self) -> str:
        self._join()
        return self.h.hexdigest()


def copy_and_hash(src: BinaryIO, dst_fd: int, buffers: Sequence[Buffer], cancel: threading.Event,
                  progress: Callable[[int], None] | None, label: str, limit: int,
                  write: Callable[[int, memoryview], None] = write_all, keep: bool = False,
                  inline: bool = False,
                  on_slow: Callable[[int], Callable[[int, memoryview], None] | None] | None = None
                  ) -> tuple[str, int]:
    """Copy at most *limit* bytes, hashing them on a second thread (in this
    one if *inline*); one byte more means the clip is still growing (being
    recorded), which must not loop forever. *write*: how a chunk reaches
    *dst_fd* (the archive's bandwidth limit and its tests' fault injection
    sit there). *keep*: what is written stays cached (the upload reads it
    next), else it is dropped once written back. *on_slow*: the source's
    rate is not known yet; if the first ``ADAPT_AFTER`` bytes come slower
    than ``HASH_INLINE_BELOW``, hash inline from there on and call it with
    the bytes written so far: a new *write* (or None to keep this one)."""
    if limit < len(buffers[0]):
        return _copy_small(src, dst_fd, memoryview(buffers[0]), cancel, progress, label, limit, write)
    hasher = Hasher(buffers, inline)
    total = 0
    synced = 0
    started = time.monotonic()
    try:
        while True:
            if cancel.is_set():
                raise ClipInterrupted(label, "undocked or stopping")
            i = hasher.free.get()
            view = hasher.buffers[i]
            want = _chunk(len(view), total, limit)
            try:
                n = src.readinto(view[:want])  # type: ignore[attr-defined]
            except (OSError, DriverError) as e:
                hasher.free.put(i)
                raise _read_error(e, label) from None
            if not n:
                hasher.free.put(i)
                break
            total += n
            if total > limit:
                hasher.free.put(i)
                raise ClipInterrupted(label, "grew while it was being copied")
            try:
                write(dst_fd, view[:n])
            except OSError:
                hasher.free.put(i)
                raise  # a staging error: pull() says which
            hasher.feed(i, n)
            if on_slow is not None and total >= ADAPT_AFTER:
                if total / max(time.monotonic() - started, 1e-9) < HASH_INLINE_BELOW:
                    hasher.go_inline()
                    write = on_slow(total) or write
                on_slow = None
            if total - synced >= _WRITEBACK_EVERY:
                # start writeback of what is written: a multi-GB clip must not
                # pile up dirty pages for one long fsync
                _writeback(dst_fd, synced, total, keep)
                synced = total
            if progress is not None:
                progress(n)
        # start writing the tail back now, while the hasher catches up, so
        # the fsync that follows finds little left to wait for
        _writeback(dst_fd, synced, 0, keep)
    finally:
        digest = hasher.finish()
    return digest, total


def _writeback(fd: int, start: int, end: int, keep: bool) -> None:
    """Start writeback of bytes *start*..*end* (0: to the end) of *fd*; unless
    *keep*, drop them from the page cache too, once clean (a copy nobody
    reads again must not push everything else out of the cache)."""
    if keep:
        start_writeback(fd, start, end - start if end else 0)
    elif HAS_FADVISE:
        os.posix_fadvise(fd, 0, end, os.POSIX_FADV_DONTNEED)


def copy_only(src: BinaryIO, dst_fd: int, buf: bytearray, label: str, limit: int,
              write: Callable[[int, memoryview], None] = write_all) -> int:
    """Copy at most *limit* bytes without hashing them: for a copy whose
    bytes are hashed later anyway, where they land (the directory archive
    reads back what it wrote). The same writeback as a pull; one byte more
    than *limit* raises ClipInterrupted."""
    view = memoryview(buf)
    total = synced = 0
    while True:
        try:
            n = src.readinto(view[:min(len(view), limit + 1 - total)])  # type: ignore[attr-defined]
        except (OSError, DriverError) as e:
            raise _read_error(e, label) from None
        if not n:
            return total
        total += n
        if total > limit:
            raise ClipInterrupted(label, "grew while it was being copied")
        write(dst_fd, view[:n])
        if total - synced >= _WRITEBACK_EVERY:
            _writeback(dst_fd, synced, total, keep=False)
            synced = total


#: the smallest chunk of the ramp at a clip's start and end
RAMP = 128 << 10


def _chunk(size: int, done: int, limit: int) -> int:
    """How much to read next into a buffer of *size*, *done* bytes into a
    clip of *limit* (one byte more at the end: a growing clip shows). The
    hashing thread waits for the first chunk and the copy loop for the last
    one's hash: both are small (a ramp up from ``RAMP``, halves down to it),
    so the two threads overlap for nearly the whole clip, not only between
    its first and last buffers (a 5 MiB clip in 1 MiB buffers lost about a
    fifth that way)."""
    left = limit - done
    want = min(size, left + 1, max(RAMP, done))  # doubling: each chunk as big as all before it
    if left > RAMP:
        want = min(want, max(RAMP, left // 2 & ~4095))  # halving towards the end, whole blocks (O_DIRECT)
    return want


def _read_error(e: OSError | DriverError, label: str) -> ClipInterrupted:
    """A volume's OSError or a protocol stream's DriverError while reading."""
    why = e.strerror if isinstance(e, OSError) else None
    return ClipInterrupted(label, f"read error: {why or e}")


def _copy_small(src: BinaryIO, dst_fd: int, view: memoryview, cancel: threading.Event,
                progress: Callable[[int], None] | None, label: str, limit: int,
                write: Callable[[int, memoryview], None]) -> tuple[str, int]:
    """A clip that fits one buffer: no hashing thread to start (a recorder
    with 20 000 small files would spend more on threads than on bytes)."""
    total = 0
    while True:  # a stream may return less than asked: read until EOF or one byte too many
        if cancel.is_set():
            raise ClipInterrupted(label, "undocked or stopping")
        try:
            n = src.readinto(view[total:limit + 1])  # type: ignore[attr-defined]
        except (OSError, DriverError) as e:
            raise _read_error(e, label) from None
        if not n:
            break
        total += n
        if total > limit:
            raise ClipInterrupted(label, "grew while it was being copied")
    write(dst_fd, view[:total])
    if progress is not None and total:
        progress(total)
    return hashlib.sha256(view[:total]).hexdigest(), total


def aligned_buffer(size: int) -> memoryview:
    """*size* bytes of page-aligned memory (an anonymous map, unmapped with
    its last view), as O_DIRECT reads and writes need."""
    return memoryview(mmap.mmap(-1, size))


def make_buffers(size: int) -> list[memoryview]:
    """``BUFFERS`` copy buffers of *size* bytes, page-aligned: staging
    writes them with O_DIRECT."""
    return [aligned_buffer(size) for _ in range(BUFFERS)]


#: O_DIRECT wants whole blocks at block-aligned offsets (and aligned memory:
#: a caller's unaligned buffer gets EINVAL, which clears the flag too)
_BLOCK = 4096


class DirectWrite:
    """``write`` for a file opened with O_DIRECT: the page cache is skipped
    (25 slots at 35 MB/s: 5 CPU-s instead of 16 for the machine, every slot
    at its link; bench/staging_write.py). The first chunk that is not whole
    blocks from aligned memory at an aligned offset (a clip's tail, a short
    read, a filesystem that refuses) clears O_DIRECT for the rest of the
    file, which is then written as before."""

    def __init__(self, offset: int = 0) -> None:
        self.direct = True
        self.offset = offset

    @classmethod
    def turn_on(cls, fd: int, offset: int = 0) -> DirectWrite | None:
        """Set O_DIRECT on *fd*, opened without it, *offset* bytes into the
        file: at the start, or mid-clip once a slot proves slow (None where
        it cannot be: tmpfs and some FUSE filesystems, not on a block
        boundary)."""
        if offset % _BLOCK or not hasattr(os, "O_DIRECT"):
            return None
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
        except OSError:
            return None
        return cls(offset)

    def _off(self, fd: int) -> None:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def __call__(self, fd: int, data: memoryview) -> None:
        if self.direct and (len(data) % _BLOCK or self.offset % _BLOCK):
            self._off(fd)
        while data and self.direct:
            try:
                n = os.write(fd, data)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self._off(fd)
                break
            data = data[n:]
            self.offset += n
            if data and n % _BLOCK:
                self._off(fd)
        if data:
            write_all(fd, data)
            self.offset += len(data)
