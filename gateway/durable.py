"""Evidence-grade file writes: temp file, fsync, rename, fsync directory.

A reader (or a restarted daemon) sees either the old state or the complete new
file, never a torn one, whatever happens to power or process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(final: Path) -> Path:
    """A hidden sibling of *final*: same filesystem, so rename is atomic."""
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_writer(final: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a file to write; on clean exit it is fsynced and renamed onto
    *final* and the directory is fsynced. On error the temp file is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)


def write_atomic(final: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(final, mode) as f:
        f.write(data)
