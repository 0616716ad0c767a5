"""The directory archive: a local disk or a NAS mount.

Objects are written to a temp file in ``.dockgate-tmp/`` at the archive's
root (same filesystem; a reader of the archive never looks there), hashed as
written, fsynced, made read-only and then *linked* into place: link(2) fails
if the name exists, so a concurrent writer can never replace evidence. Then
the directory is fsynced and, with ``verify = "readback"``, the object is read
back (page cache dropped first) and hashed again. A temp file left by a
kill -9 is swept at the next start (``sweep_partial``); the archive tree
itself only ever holds complete objects.

A clip and its manifest files share their barriers: all their temp files are
written, then made durable together (one journal commit instead of one per
file); the media is linked, its directory fsynced and read back before the
manifest files are linked beside it, so the archive never shows a manifest
for media it does not hold verified.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gateway.archive.base import (
    Archive,
    ArchiveConflict,
    ArchiveObject,
    ArchiveRefused,
    ArchiveUnavailable,
    BadKey,
    Receipt,
    SourceFault,
    VerifyFailed,
)
from gateway.durable import fsync_dir, sync_files

_BUF = 4 << 20
#: where objects are written before they are linked into place
TMP_DIR = ".dockgate-tmp"
#: the archive says no to the station: retrying the next clip cannot help
_REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _buffer_for(size: int, most: int = _BUF) -> int:
    """A buffer no bigger than the file (+1 to see its end in one read): a
    4 MiB buffer zeroed for a 4 KiB manifest costs more than the I/O."""
    return max(4096, min(most, size + 1))


def hash_file(path: Path, buf_size: int = _BUF, drop_cache: bool = False) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        view = memoryview(bytearray(_buffer_for(os.fstat(f.fileno()).st_size, buf_size)))
        if drop_cache and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


class DirectoryArchive(Archive):
    name = "directory"

    def __init__(self, root: Path, verify: str = "readback") -> None:
        self.root = root
        self.verify = verify

    def describe(self) -> str:
        return f"directory {self.root}"

    def _temp(self) -> Path:
        tmp = self.root / TMP_DIR
        tmp.mkdir(exist_ok=True)
        return tmp / f"{secrets.token_hex(8)}.tmp"

    def sweep_partial(self) -> int:
        """Remove what an interrupted write left in the temp folder."""
        tmp = self.root / TMP_DIR
        n = 0
        try:
            for entry in os.scandir(tmp):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    n += 1
        except FileNotFoundError:
            return 0
        except OSError as e:
            raise self._classify(e) from e
        return n

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise BadKey(key, "archive key must be a plain relative path")
        return self.root.joinpath(*parts)

    def _classify(self, e: OSError) -> ArchiveRefused | ArchiveUnavailable:
        """An error writing or reading the archive side (source errors are
        classified where the source is read)."""
        why = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        if e.errno in _REFUSED:
            return ArchiveRefused(str(self.root), why)
        return ArchiveUnavailable(str(self.root), why)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise ArchiveUnavailable(str(self.root), "archive root is not mounted or missing")

    def put(self, obj: ArchiveObject) -> Receipt:
        self._check_root()
        dest = self._path(obj.key)
        extras = [(obj.key + suffix, data) for suffix, data in obj.extras]
        for key, _ in extras:
            self._path(key)  # a bad key is refused before anything is written
        written: list[tuple[str, bytes, Path]] = []
        try:
            try:
                # the manifest files are written now, made durable with the media below
                written = [(key, data, self._write_temp(data)) for key, data in extras]
                receipt = self._put_media(obj, dest, [tmp for _, _, tmp in written])
                for key, data, tmp in written:
                    self._link_small(key, data, tmp)
                if written:
                    fsync_dir(dest.parent)
                for key, data, _ in written:
                    self._read_back_small(key, data)
            finally:
                for _, _, tmp in written:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
            return receipt
        except OSError as e:
            raise self._classify(e) from e

    def _write_temp(self, data: bytes) -> Path:
        tmp = self._temp()
        with open(tmp, "xb") as f:
            f.write(data)
        os.chmod(tmp, 0o444)
        return tmp

    def _link_small(self, key: str, data: bytes, tmp: Path) -> bool:
        """Link a durable temp file into place; False if an identical object
        was there already (ArchiveConflict if a different one is)."""
        dest = self._path(key)
        want = hashlib.sha256(data).hexdigest()
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, dest)
            return True
        except FileExistsError:
            found = hash_file(dest)
            if found != want:
                raise ArchiveConflict(key, want, found) from None
            return False

    def _read_back_small(self, key: str, data: bytes) -> None:
        dest = self._path(key)
        want = hashlib.sha256(data).hexdigest()
        back = hash_file(dest, drop_cache=True)
        if back != want:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise VerifyFailed(key, want, back)

    def put_bytes(self, key: str, data: bytes) -> Receipt:
        self._check_root()
        try:
            return self._put_small(key, data)
        except OSError as e:
            raise self._classify(e) from e

    def _put_small(self, key: str, data: bytes) -> Receipt:
        dest = self._path(key)
        want = hashlib.sha256(data).hexdigest()
        if dest.exists():
            found = hash_file(dest)
            if found != want:
                raise ArchiveConflict(key, want, found)
            return Receipt(key, want, existed=True, verified_by="readback")
        tmp = self._write_temp(data)
        try:
            sync_files([tmp])
            if not self._link_small(key, data, tmp):
                return Receipt(key, want, existed=True, verified_by="readback")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(dest.parent)
        self._read_back_small(key, data)
        return Receipt(key, want, existed=False, verified_by="readback")

    def _put_media(self, obj: ArchiveObject, dest: Path, also_sync: list[Path]) -> Receipt:
        """Store the media; *also_sync*: temp files made durable in the same barrier."""
        if dest.exists():
            sync_files(also_sync)
            found = hash_file(dest)
            if found != obj.sha256:
                raise ArchiveConflict(obj.key, obj.sha256, found)
            return Receipt(obj.key, obj.sha256, existed=True, verified_by="readback")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temp()
        try:
            sent = self._copy(obj, tmp)
            if sent != obj.sha256:
                raise SourceFault(str(obj.source), f"no longer matches its hash {obj.sha256} (now {sent})")
            sync_files([tmp, *also_sync])
            try:
                os.link(tmp, dest)
            except FileExistsError:
                # someone stored it meanwhile: fine if identical, never replaced
                found = hash_file(dest)
                if found != obj.sha256:
                    raise ArchiveConflict(obj.key, obj.sha256, found) from None
                return Receipt(obj.key, obj.sha256, existed=True, verified_by="readback")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(dest.parent)
        if self.verify == "readback":
            back = hash_file(dest, drop_cache=True)
            if back != obj.sha256:
                with contextlib.suppress(OSError):
                    dest.unlink()
                raise VerifyFailed(obj.key, obj.sha256, back)
        elif (stored := dest.stat().st_size) != obj.size:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise VerifyFailed(obj.key, obj.sha256, f"an object of {stored} bytes, not {obj.size}")
        return Receipt(obj.key, obj.sha256, existed=False, verified_by=self.verify)

    def _copy(self, obj: ArchiveObject, tmp: Path) -> str:
        """Copy while hashing what is read: the hash is of the bytes sent."""
        try:
            src = open(obj.source, "rb", buffering=0)  # noqa: SIM115 - closed below, errors told apart
        except OSError as e:
            raise SourceFault(str(obj.source), e.strerror or str(e)) from None
        h = hashlib.sha256()
        view = memoryview(bytearray(_buffer_for(obj.size)))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        try:
            while True:
                try:
                    n = src.readinto(view)
                except OSError as e:
                    raise SourceFault(str(obj.source), f"unreadable: {e.strerror or e}") from None
                if not n:
                    break
                h.update(view[:n])
                if obj.throttle:
                    obj.throttle(n)
                self._write_chunk(fd, view[:n], obj.key)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(src.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
            src.close()
        return h.hexdigest()

    def _write_chunk(self, fd: int, chunk: memoryview, key: str) -> None:
        """One chunk to the temp file (test doubles corrupt bytes here)."""
        off = 0
        while off < len(chunk):
            off += os.write(fd, chunk[off:])

    def sha256(self, key: str) -> str | None:
        try:
            return hash_file(self._path(key))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._classify(e) from e

    def read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every file in the tree but the temp folder: hidden files too, so
        that `verify` names anything it does not understand."""
        for dirpath, dirs, files in os.walk(self.root):
            if dirpath == str(self.root) and TMP_DIR in dirs:
                dirs.remove(TMP_DIR)
            for f in files:
                key = os.path.relpath(os.path.join(dirpath, f), self.root)
                if key.startswith(prefix):
                    yield key
