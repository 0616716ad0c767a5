"""Walking and opening a recorder's volume without ever leaving it.

Every path component is opened relative to its parent's descriptor with
O_NOFOLLOW, so a symlink (or a directory swapped for one while we walk) can
never lead outside the volume, and non-regular files (FIFOs, device nodes) are
never opened for reading: we only open after lstat says S_ISREG, and open with
O_NONBLOCK so that even a racing swap to a FIFO cannot hang a worker.

Failures are typed: ``UnsafeEntry`` for a name that must not be followed or
opened (permanent), ``VolumeError`` for any other OS error, transient where the
errno says the medium went away or is busy. No ``OSError`` leaves this module.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from drivers.base import ClipRef, Skipped, UnsafeEntry, VolumeError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: directory levels walked below the volume root. Recorders file clips two or
#: three levels deep; the limit only keeps a hostile tree from exhausting
#: descriptors (one is open per level) and the stack. A directory beyond it is
#: reported (skipped_entry) with the depth, and nothing below it is read.
MAX_DEPTH = 256


def _components(relpath: bytes) -> list[bytes]:
    parts = relpath.split(b"/")
    if relpath.startswith(b"/") or any(p in (b"", b".", b"..") for p in parts):
        raise UnsafeEntry(relpath.decode("utf-8", "backslashreplace"), "not a plain relative path")
    return parts


class Volume:
    """A mounted recorder volume, walked and read by descriptor."""

    def __init__(self, root: Path, include: Sequence[str] = ("*",),
                 exclude: Sequence[str] = ()) -> None:
        self.root = root
        self.include = [p.lower() for p in include]
        self.exclude = [p.lower() for p in exclude]

    def _selected(self, rel: str) -> bool:
        low = rel.lower()
        if any(fnmatch.fnmatchcase(low, p) for p in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(low, p) for p in self.include)

    def walk(self, skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]:
        """Yield the selected regular files, depth first, in name order."""
        try:
            root_fd = os.open(self.root, _DIR_FLAGS)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeEntry(str(self.root), "volume root is a symlink or not a directory") from None
            raise VolumeError(str(self.root), e) from None
        try:
            yield from self._walk_fd(root_fd, b"", 0, skipped)
        finally:
            os.close(root_fd)

    def _walk_fd(self, dfd: int, prefix: bytes, depth: int,
                 skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]:
        try:
            names = sorted(os.listdir(dfd))
        except OSError as e:
            skipped(Skipped(prefix or b".", f"directory unreadable: {e.strerror}"))
            return
        for name_str in names:
            name = os.fsencode(name_str)
            rel = prefix + name
            try:
                st = os.lstat(name, dir_fd=dfd)
            except OSError as e:
                skipped(Skipped(rel, f"cannot stat: {e.strerror}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if depth >= MAX_DEPTH:
                    skipped(Skipped(rel, f"directory nested deeper than {MAX_DEPTH} levels: not walked, "
                                         "its clips are not pulled"))
                    continue
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                except OSError as e:
                    skipped(Skipped(rel, f"directory cannot be opened: {e.strerror}"))
                    continue
                try:
                    yield from self._walk_fd(sub, rel + b"/", depth + 1, skipped)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                if self._selected(rel.decode("utf-8", "surrogateescape")):
                    yield ClipRef(rel, st.st_size, st.st_mtime_ns, st.st_nlink)
            elif stat.S_ISLNK(st.st_mode):
                skipped(Skipped(rel, "symlink (never followed)"))
            else:
                skipped(Skipped(rel, f"not a regular file ({_kind(st.st_mode)})"))

    def _parent(self, relpath: bytes) -> tuple[int, bytes]:
        """A descriptor of the clip's directory, reached with O_NOFOLLOW on
        every component, and the clip's own name. The caller closes it."""
        parts = _components(relpath)
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except OSError as e:
            raise VolumeError(str(self.root), e) from None
        try:
            for part in parts[:-1]:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError as e:
            os.close(fd)
            # O_DIRECTORY|O_NOFOLLOW answers ENOTDIR for a symlinked directory
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeEntry(relpath.decode("utf-8", "backslashreplace"),
                                  "symlink or non-directory on the path (never followed)") from None
            raise VolumeError(relpath.decode("utf-8", "backslashreplace"), e) from None
        return fd, parts[-1]

    def open(self, relpath: bytes) -> BinaryIO:
        """Open a regular file under the root; every component O_NOFOLLOW."""
        disp = relpath.decode("utf-8", "backslashreplace")
        fd, name = self._parent(relpath)
        try:
            st = os.lstat(name, dir_fd=fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeEntry(disp, f"not a regular file ({_kind(st.st_mode)})")
            ffd = os.open(name, _FILE_FLAGS, dir_fd=fd)
        except OSError as e:
            if e.errno == errno.ELOOP:  # swapped for a symlink since the lstat
                raise UnsafeEntry(disp, "symlink (never followed)") from None
            raise VolumeError(disp, e) from None
        finally:
            os.close(fd)
        try:
            fst = os.fstat(ffd)
            if not stat.S_ISREG(fst.st_mode):
                raise UnsafeEntry(disp, "changed into a non-regular file while opening")
            os.set_blocking(ffd, True)
            return os.fdopen(ffd, "rb", buffering=0)
        except OSError as e:
            os.close(ffd)
            raise VolumeError(disp, e) from None
        except UnsafeEntry:
            os.close(ffd)
            raise

    def delete(self, relpath: bytes, expect: tuple[int, int] | None = None) -> None:
        """Remove a file; with *expect* (size, mtime_ns) only if it is still
        the file that was listed, never one written since."""
        disp = relpath.decode("utf-8", "backslashreplace")
        fd, name = self._parent(relpath)
        try:
            st = os.lstat(name, dir_fd=fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeEntry(disp, f"not a regular file ({_kind(st.st_mode)}); not deleted")
            if expect is not None and (st.st_size, st.st_mtime_ns) != expect:
                raise UnsafeEntry(disp, "changed since it was listed; not deleted")
            os.unlink(name, dir_fd=fd)
            with contextlib.suppress(OSError):
                os.fsync(fd)
        except OSError as e:
            raise VolumeError(disp, e) from None
        finally:
            os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISLNK, "symlink")):
        if test(mode):
            return name
    return f"mode {mode:o}"
