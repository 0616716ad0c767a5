"""The directory archive: a local disk or a NAS mount.

Objects are written to a temp file in ``.dockgate-tmp/`` at the archive's
root (same filesystem; a reader of the archive never looks there) and
fsynced. With ``verify = "readback"`` the temp file is then read back from
the disk (page cache dropped first) and hashed: it is the inode the key
will name, so a key never shows bytes that are not its evidence, not even
for a moment. Only then is it *linked* into place: link(2) fails if the
name exists, so a concurrent writer can never replace evidence; then the
directory is fsynced. (With ``verify = "size"`` the copy is hashed as it is
sent instead and only the size is checked.) A temp file left by a kill -9
is swept at the next start (``sweep_partial``); the archive tree itself only
ever holds complete, verified objects.

A clip and its manifest files share their barriers: all their temp files are
written, made durable together (one journal commit instead of one per file)
and read back; the media is linked and its directory fsynced before the
manifest files are linked beside it, so the archive never shows a manifest
for media it does not hold.

Why one module of this length: the write path (temp file, barrier,
read-back, link) and the read side (listing by prefix, object identity for
the verified-hash cache) share one set of path rules and one classification
of OS errors; split, they would drift apart.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from gateway.archive.base import (
    Archive,
    ArchiveConflict,
    ArchiveError,
    ArchiveObject,
    ArchiveRefused,
    ArchiveUnavailable,
    BadKey,
    Receipt,
    SourceFault,
    VerifyFailed,
)
from gateway.archive.directio import hash_file, read_back
from gateway.copyhash import copy_and_hash, copy_only, make_buffers
from gateway.durable import fsync_dir, sync_files, unique_suffix, write_all
from gateway.errors import ClipInterrupted

_BUF = 4 << 20
#: each of the copy's buffers (four in flight between the copy and its hashing thread)
_COPY_BUF = 1 << 20
#: where objects are written before they are linked into place
TMP_DIR = ".dockgate-tmp"
#: the archive says no to the station: retrying the next clip cannot help
_REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _buffer_for(size: int, most: int = _BUF) -> int:
    """A buffer no bigger than the file (+1 to see its end in one read): a
    4 MiB buffer zeroed for a 4 KiB manifest costs more than the I/O."""
    return max(4096, min(most, size + 1))


class _Put:
    """One object of a ``put_many``, as it goes through the shared barriers."""

    def __init__(self, obj: ArchiveObject) -> None:
        self.obj = obj
        self.dest = Path()
        #: the media's temp file; None when the key existed before we wrote
        self.tmp: Path | None = None
        #: (key, bytes, temp file) of each manifest file
        self.extras: list[tuple[str, bytes, Path]] = []
        #: the media was linked by this put (else it was there: ``existed``)
        self.linked = False
        self.error: ArchiveError | None = None

    def temps(self) -> list[Path]:
        return ([self.tmp] if self.tmp is not None else []) + [t for _, _, t in self.extras]


class DirectoryArchive(Archive):
    name = "directory"

    def __init__(self, root: Path, verify: str = "readback") -> None:
        self.root = root
        self.verify = verify

    def describe(self) -> str:
        return f"directory {self.root}"

    def _temp(self) -> Path:
        """A temp file's name in the temp folder (``_tmp_dir`` made it)."""
        return self.root / TMP_DIR / f"{unique_suffix()}.tmp"

    def _tmp_dir(self) -> None:
        (self.root / TMP_DIR).mkdir(exist_ok=True)

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
        (out,) = self.put_many([obj])
        if isinstance(out, ArchiveError):
            raise out
        return out

    def put_many(self, objs: Sequence[ArchiveObject]) -> list[Receipt | ArchiveError]:
        """Every object's files are written as temps, then made durable in one
        barrier; the media are linked, their directories fsynced once each and
        the media read back; only then are the manifest files linked beside
        them (another directory fsync each, another read-back)."""
        try:
            self._check_root()
        except ArchiveError as e:
            return [e] * len(objs)
        puts = [_Put(obj) for obj in objs]
        made: set[Path] = set()  # directories known to exist: one mkdir each per batch
        try:
            for p in puts:
                self._each(p, functools.partial(self._stage, made=made))
            live = [p for p in puts if p.error is None]
            try:
                sync_files([t for p in live for t in p.temps()])
            except OSError as e:
                for p in live:
                    p.error = self._classify(e)
            for p in puts:
                self._each(p, self._verify_temps)
            for p in puts:
                self._each(p, functools.partial(self._link_media, made=made))
            self._each_dir([p.dest.parent for p in puts if p.error is None and p.linked], puts)
            for p in puts:
                self._each(p, self._link_extras)
            self._each_dir([p.dest.parent for p in puts if p.error is None and p.extras], puts)
        finally:
            for p in puts:
                for t in p.temps():
                    with contextlib.suppress(FileNotFoundError):
                        t.unlink()
        return [p.error if p.error is not None else Receipt(p.obj.key, p.obj.sha256, existed=not p.linked,
                                                            verified_by="readback" if not p.linked else self.verify)
                for p in puts]

    def _each(self, p: _Put, step: Callable[[_Put], None]) -> None:
        """One step for one object: its failure is its own outcome."""
        if p.error is not None:
            return
        try:
            step(p)
        except ArchiveError as e:
            p.error = e
        except OSError as e:
            p.error = self._classify(e)

    def _each_dir(self, dirs: list[Path], puts: list[_Put]) -> None:
        for d in dict.fromkeys(dirs):
            try:
                fsync_dir(d)
            except OSError as e:  # every object linked there is not durable
                for p in puts:
                    if p.error is None and p.dest.parent == d:
                        p.error = self._classify(e)

    def _stage(self, p: _Put, made: set[Path]) -> None:
        obj = p.obj
        p.dest = self._path(obj.key)
        for suffix, _ in obj.extras:
            self._path(obj.key + suffix)  # a bad key is refused before anything is written
        if self.root / TMP_DIR not in made:
            self._tmp_dir()
            made.add(self.root / TMP_DIR)
        # the manifest files are written now, made durable with the media
        p.extras = [(obj.key + suffix, data, self._write_temp(data)) for suffix, data in obj.extras]
        if p.dest.exists():
            return  # compared after the barrier, never replaced
        p.tmp = self._temp()
        if self.verify == "readback":
            self._copy(obj, p.tmp)  # what landed is hashed after the barrier, before it is linked
            return
        sent = self._copy_hashed(obj, p.tmp)
        if sent != obj.sha256:
            raise SourceFault(str(obj.source), f"no longer matches its hash {obj.sha256} (now {sent})")

    def _verify_temps(self, p: _Put) -> None:
        """Check the durable temp files before any is linked, so a key never
        shows bytes that are not its evidence, not even for a moment. A temp
        file is the inode its key will name: reading it back from the disk
        (page cache dropped) is reading back the object. The bytes were
        copied unhashed; on a mismatch the staged copy is hashed to tell a
        changed source (``SourceFault``) from a bad write (``VerifyFailed``)."""
        obj = p.obj
        if p.tmp is not None:
            if self.verify == "readback":
                back = read_back(p.tmp)
                if back != obj.sha256:
                    self._source_unchanged(obj)
                    raise VerifyFailed(obj.key, obj.sha256, back)
            elif (stored := p.tmp.stat().st_size) != obj.size:
                raise VerifyFailed(obj.key, obj.sha256, f"an object of {stored} bytes, not {obj.size}")
        for key, data, tmp in p.extras:
            want = hashlib.sha256(data).hexdigest()
            if (back := read_back(tmp)) != want:
                raise VerifyFailed(key, want, back)

    def _source_unchanged(self, obj: ArchiveObject) -> None:
        try:
            now = hash_file(obj.source)
        except OSError as e:
            raise SourceFault(str(obj.source), e.strerror or str(e)) from None
        if now != obj.sha256:
            raise SourceFault(str(obj.source), f"no longer matches its hash {obj.sha256} (now {now})")

    def _link_media(self, p: _Put, made: set[Path]) -> None:
        if p.tmp is not None:
            if p.dest.parent not in made:
                p.dest.parent.mkdir(parents=True, exist_ok=True)
                made.add(p.dest.parent)
            with contextlib.suppress(FileExistsError):  # someone stored it meanwhile: compared below
                os.link(p.tmp, p.dest)
                p.linked = True
                return
        # there already: fine if identical, never replaced
        found = hash_file(p.dest)
        if found != p.obj.sha256:
            raise ArchiveConflict(p.obj.key, p.obj.sha256, found)

    def _link_extras(self, p: _Put) -> None:
        for key, data, tmp in p.extras:
            self._link_small(key, data, tmp, mkdir=False)  # beside the media

    def _write_temp(self, data: bytes) -> Path:
        tmp = self._temp()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        try:
            write_all(fd, memoryview(data))
        finally:
            os.close(fd)
        return tmp

    def _link_small(self, key: str, data: bytes, tmp: Path, mkdir: bool = True) -> bool:
        """Link a durable temp file into place; False if an identical object
        was there already (ArchiveConflict if a different one is). *mkdir*:
        its folder may not exist yet."""
        dest = self._path(key)
        if mkdir:
            dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, dest)
            return True
        except FileExistsError:
            found, want = hash_file(dest), hashlib.sha256(data).hexdigest()
            if found != want:
                raise ArchiveConflict(key, want, found) from None
            return False

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
        self._tmp_dir()
        tmp = self._write_temp(data)
        try:
            sync_files([tmp])
            if (back := read_back(tmp)) != want:  # read back before it has a name
                raise VerifyFailed(key, want, back)
            if not self._link_small(key, data, tmp):
                return Receipt(key, want, existed=True, verified_by="readback")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(dest.parent)
        return Receipt(key, want, existed=False, verified_by="readback")

    def _copy(self, obj: ArchiveObject, tmp: Path) -> None:
        """Copy unhashed: ``_verify_temps`` hashes what landed on the disk,
        which covers the bytes sent too (a third hashing pass of every clip
        was a third of the CPU of dock -> archived)."""
        self._copy_with(obj, tmp, lambda src, fd, write: copy_only(
            src, fd, bytearray(_buffer_for(obj.size, _COPY_BUF)), str(obj.source), obj.size, write))

    def _copy_hashed(self, obj: ArchiveObject, tmp: Path) -> str:
        """Copy while hashing what is read (the hash is of the bytes sent),
        the hash on a second thread as in a pull: ``verify = "size"`` reads
        nothing back, so this is the only hash of the archive's copy."""
        digest = ""

        def run(src: BinaryIO, fd: int, write: Callable[[int, memoryview], None]) -> None:
            nonlocal digest
            size = _buffer_for(obj.size, _COPY_BUF)
            buffers = [bytearray(size)] if obj.size < size else make_buffers(size)  # one: copied whole
            digest, _ = copy_and_hash(src, fd, buffers, threading.Event(), None, str(obj.source), obj.size, write)

        self._copy_with(obj, tmp, run)
        return digest

    def _copy_with(self, obj: ArchiveObject, tmp: Path,
                   run: Callable[[BinaryIO, int, Callable[[int, memoryview], None]], object]) -> None:
        """Open the staged copy and the temp file and *run* a copy loop
        between them; the temp file's writeback starts as it is written, so
        the barrier finds little left to do."""
        try:
            src = open(obj.source, "rb", buffering=0)  # noqa: SIM115 - closed below, errors told apart
        except OSError as e:
            raise SourceFault(str(obj.source), e.strerror or str(e)) from None

        def write(fd: int, chunk: memoryview) -> None:
            if obj.throttle:
                obj.throttle(len(chunk))  # before the bytes are sent: the bandwidth limit
            self._write_chunk(fd, chunk, obj.key)

        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        try:
            with src:
                try:
                    run(src, fd, write)
                except ClipInterrupted as e:  # unreadable, or longer than it was
                    raise SourceFault(str(obj.source), e.why) from None
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(src.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    def _write_chunk(self, fd: int, chunk: memoryview, key: str) -> None:
        """One chunk to the temp file (test doubles corrupt bytes here)."""
        write_all(fd, chunk)

    def sha256(self, key: str) -> str | None:
        try:
            return hash_file(self._path(key))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._classify(e) from e

    def read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def identity(self, key: str) -> str | None:
        """Device, inode, size, mtime and ctime (ns): a rewrite, a copy put
        in place or a restored backup each change it (ctime cannot be set back)."""
        try:
            st = os.stat(self._path(key))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._classify(e) from e
        return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every file in the tree but the temp folder: hidden files too, so
        that `verify` names anything it does not understand. A prefix with
        a folder in it walks that folder only (a case's clips are listed
        without walking the archive)."""
        folder, _, _ = prefix.rpartition("/")
        start = self.root / folder if folder and ".." not in folder.split("/") else self.root
        root = str(self.root)
        for dirpath, dirs, files in os.walk(start):
            if dirpath == root and TMP_DIR in dirs:
                dirs.remove(TMP_DIR)
            rel = os.path.relpath(dirpath, root)  # once per folder, not per file
            head = "" if rel == "." else rel + "/"
            for f in files:
                key = head + f
                if key.startswith(prefix):
                    yield key
