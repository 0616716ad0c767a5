"""Read a file back as the disk holds it, and hash it.

The directory archive's read-back check asks the disk, not the page cache,
for what it wrote. ``O_DIRECT`` does exactly that: the device's blocks go
straight into our buffers. Dropping the cache first (``POSIX_FADV_DONTNEED``)
is only a hint: a page still mapped or being written back stays, and is
then "read back" from memory. O_DIRECT also leaves the page cache alone: a
read-back through the cache allocated as much memory again as the object,
only to drop it, and page allocation is much of the cost of a copy.

O_DIRECT reads bypass readahead, so a reader thread fills a ring of
buffers while the SHA-256 runs on the hashing thread a pull uses (the disk
and the hash overlap, as readahead made them). A filesystem that refuses
O_DIRECT (tmpfs, some FUSE mounts) is read the old way: cache dropped, then
read.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
from pathlib import Path

from gateway.copyhash import BUFFERS, Hasher, aligned_buffer

#: O_DIRECT wants buffers, offsets and lengths aligned to the device's block;
#: page-aligned buffers of whole pages satisfy every block size up to 4 KiB
_ALIGN = mmap.PAGESIZE
#: each buffer of the ring; an object that fits one is read in one call
CHUNK = 1 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def read_back(path: Path, fallback_buf: int = 4 << 20) -> str:
    """SHA-256 of *path* as read from the device (see the module's note)."""
    if not _O_DIRECT:
        return hash_file(path, fallback_buf, drop_cache=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _O_DIRECT)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return hash_file(path, fallback_buf, drop_cache=True)
    try:
        digest = _direct(fd)
    finally:
        os.close(fd)
    return digest if digest is not None else hash_file(path, fallback_buf, drop_cache=True)


def _buffer(size: int) -> memoryview:
    """A page-aligned buffer of *size* rounded up to whole pages. Made per
    object and unmapped with it: kept per thread, the rings held 4 MiB for
    every thread that had ever read anything back (131 MiB of RSS with 25
    slots docked)."""
    return aligned_buffer(max(_ALIGN, -(-size // _ALIGN) * _ALIGN))


def _direct(fd: int) -> str | None:
    """Hash what *fd* (opened O_DIRECT) reads; None if the filesystem
    accepted the flag at open and refuses the reads (EINVAL). Every read
    asks for a whole buffer at an aligned offset; only the last comes back
    short."""
    size = os.fstat(fd).st_size
    try:
        if size < CHUNK:  # manifests, small clips: one buffer, no thread hand-off
            view = _buffer(size + 1)
            h = hashlib.sha256()
            while n := os.readv(fd, [view]):
                h.update(view[:n])
            return h.hexdigest()
        return _direct_ring(fd, [_buffer(CHUNK) for _ in range(BUFFERS)])
    except OSError as e:
        if e.errno == errno.EINVAL:
            return None
        raise


def _direct_ring(fd: int, views: list[memoryview]) -> str:
    """Read into the ring while the hashing thread works through it."""
    hasher = Hasher(views)
    try:
        while True:
            i = hasher.free.get()
            n = os.readv(fd, [views[i]])
            if not n:
                hasher.free.put(i)
                break
            hasher.feed(i, n)
    finally:
        digest = hasher.finish()
    return digest


def hash_file(path: Path, buf_size: int = 4 << 20, drop_cache: bool = False) -> str:
    """SHA-256 of *path* through the page cache; *drop_cache*: what the cache
    holds of it is dropped first (clean pages only: fsync it before)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        # no bigger than the file (+1 to see its end in one read): a 4 MiB
        # buffer zeroed for a 4 KiB manifest costs more than the I/O
        view = memoryview(bytearray(max(4096, min(buf_size, os.fstat(f.fileno()).st_size + 1))))
        if drop_cache and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()
