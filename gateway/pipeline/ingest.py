"""Pull one clip: copy and SHA-256 in a single pass (``gateway/copyhash.py``),
durably, checked whole and unchanged.

Runs in a worker thread; progress is a plain counter the status writer
samples.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from drivers.base import ClipRef, DriverError
from gateway.copyhash import HAS_FADVISE, Buffer, DirectWrite, copy_and_hash
from gateway.durable import write_all
from gateway.errors import ClipInterrupted, StagingFull


@dataclass(frozen=True)
class Pulled:
    sha256: str
    size: int
    temp: Path


def _staging_error(e: OSError, label: str, staging: Path) -> Exception:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StagingFull(staging, shutil.disk_usage(staging).free, 0)
    return ClipInterrupted(label, f"staging write failed: {e.strerror or e}")


def pull(open_clip: Callable[[ClipRef], BinaryIO], ref: ClipRef, temp: Path, buffers: Sequence[Buffer],
         cancel: threading.Event, progress: Callable[[int], None] | None = None, *, sync: bool = True,
         keep: bool = False, inline: bool | None = False) -> Pulled:
    """Copy *ref* to *temp* and return its hash; fsynced unless *sync* is
    False (the caller makes a batch durable at once: ``durable.sync_files``).
    *keep*: the staged copy stays in the page cache for an upload that
    follows soon (else it is dropped as it is written back). *inline*: a
    slow link (``HASH_INLINE_BELOW``): hash in this thread, and unless
    *keep*, write with O_DIRECT (``DirectWrite``); None: the link's rate is
    not known yet, and the clip's first ``ADAPT_AFTER`` bytes decide.
    Raises ClipInterrupted (temp removed) if the clip could not be read
    whole and unchanged."""
    label = ref.display
    try:
        src = open_clip(ref)
    except DriverError as e:
        if getattr(e, "errno", None) == errno.ENOENT:
            raise ClipInterrupted(label, "vanished from the recorder") from None
        if e.permanent:  # a symlink, a device node: never read, not a retry
            raise
        raise ClipInterrupted(label, f"cannot open: {e}") from None
    # a slow link's copy that nobody reads soon skips the page cache: its
    # slot waits for the link anyway, so a write that waits for the device
    # costs it nothing, while 25 such slots filling the page cache cost the
    # machine three times the CPU. A fast slot keeps buffered writes (direct
    # ones stall its copy loop: 200 x 5 MiB went 0.8x -> 0.6x of SHA-256
    # alone), and a clip that fits one buffer is one unaligned write.
    direct = inline is True and not keep and ref.size >= len(buffers[0])
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    except OSError as e:
        src.close()
        raise _staging_error(e, label, temp.parent) from None
    ok = False
    try:
        with src:
            try:
                sha, size = copy_and_hash(
                    src, fd, buffers, cancel, progress, label, ref.size, keep=keep, inline=bool(inline),
                    write=(DirectWrite.turn_on(fd) if direct else None) or write_all,
                    on_slow=None if inline is not None else
                    (lambda at: None if keep else DirectWrite.turn_on(fd, at)))
            except OSError as e:  # reads fail as ClipInterrupted: an OSError here is the write side
                raise _staging_error(e, label, temp.parent) from None
            if size != ref.size:
                raise ClipInterrupted(label, f"read {size} bytes, recorder listed {ref.size}")
            _check_unchanged(src, ref, label)
            if not sync:
                ok = True
                return Pulled(sha, size, temp)
            try:
                os.fsync(fd)
            except OSError as e:
                raise _staging_error(e, label, temp.parent) from None
            if HAS_FADVISE:
                # a multi-GB clip must not push everything else out of the page cache
                if not keep:
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
