"""The archive contract.

An archive stores immutable objects under keys. dockgate writes each clip's
media under its key, its signed manifest beside it (``extras``), amendments
and custody log segments as further small objects. Methods are blocking and
called from worker threads; one instance may serve several threads at once.

``put(obj)``:
  * makes the archive hold exactly ``obj.source``'s bytes under ``obj.key``,
    whose SHA-256 must be ``obj.sha256``; the bytes sent are hashed (as
    they are sent, or where they landed before the key names them), so a
    staged file altered after the pull raises ``SourceFault`` and leaves
    no object behind;
  * is idempotent: when the key already holds identical bytes nothing is
    uploaded again and the receipt says ``existed``; when it holds different
    bytes it raises ``ArchiveConflict`` and changes nothing (evidence is never
    overwritten);
  * verifies before returning (read-back hashing or the server's checksum,
    as configured); on a verification failure the bad object is removed
    where the archive allows it and ``VerifyFailed`` is raised;
  * stores each of ``obj.extras`` (suffix, bytes) under ``key + suffix``
    after the media, write-once like ``put_bytes``;
  * calls ``obj.throttle(n)`` (when set) for every *n* bytes read from the
    source, before they are sent: the bandwidth limit.

``put_many(objs)``: ``put`` for several objects at once, which a backend
may make share its barriers (one journal commit, one directory fsync, one
connection's worth of round trips). It returns one outcome per object, in
order: the ``Receipt`` or the ``ArchiveError`` that ``put`` would have
given; it raises nothing. Each object's outcome is its own: one object's
fault (``scope == "clip"``) never changes what happens to the others, and
every guarantee of ``put`` holds for each object. The default puts them one
after another; after a station-scope failure the rest get the same error
without being tried (they would fail alike).

``put_bytes(key, data)``: the same for a small object held in memory:
write-once, identical bytes already there are fine (``existed``), different
bytes raise ``ArchiveConflict``, verified before returning.

``sha256(key)``: hash of the stored object by reading it back, ``None`` if
absent. ``identity(key)``: a cheap token that changes whenever the object's
bytes may have (a directory archive: device, inode, size, mtime and ctime
in nanoseconds; S3: ETag, version id, size, last modified); ``None`` when
absent or when the backend has none. A verified-hash cache keyed by it
(gateway/evidence/hashcache.py) re-hashes whatever changed identity.
``read(key)``: a binary stream. ``keys(prefix)``: every key, including
anything the archive holds that dockgate did not write (so `verify` can name
it), never a partial object. ``sweep_partial()``: at start, remove what an
interrupted write left (a kill -9 mid-put) and say how much.

How every failure is classified
-------------------------------
Every backend maps every OS and client error into exactly one of the classes
below; nothing else escapes ``put``/``put_bytes``. Two questions decide what
the forwarder does: is it *this clip's* fault or the *station's* (``scope``),
and can trying again help (``permanent``).

=================== ======= ========= =================================================
class               scope   permanent what the forwarder does
=================== ======= ========= =================================================
SourceFault         clip    yes       quarantine this clip (staged copy missing,
                                      unreadable, or no longer its hash)
ArchiveConflict     clip    yes       quarantine this clip (the key holds other bytes)
BadKey              clip    yes       quarantine this clip (a key the archive cannot
                                      hold)
VerifyFailed        clip    no        retry; quarantine after repeated failures
ArchiveRefused      station yes       pause forwarding, alarm once, never quarantine;
                                      probe again now and then and resume by itself
                                      once the fault is gone (credentials, permissions,
                                      bucket policy, read-only archive)
ArchiveUnavailable  station no        back off and retry (unreachable, timeouts, 5xx,
                                      disk full, not mounted)
=================== ======= ========= =================================================
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, ClassVar, Literal

from gateway.errors import DockgateError

Scope = Literal["clip", "station"]


class ArchiveError(DockgateError):
    """Base of archive failures; see the table in this module's docstring."""

    reason = "archive"
    #: "clip": this clip alone is at fault; "station": every clip would fail alike
    scope: ClassVar[Scope] = "station"


class SourceFault(ArchiveError):
    """The staged copy is missing, unreadable, or its bytes are not the hash
    the catalog has for them."""

    reason = "source_fault"
    scope = "clip"

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"staged copy {path}: {why}")


class ArchiveConflict(ArchiveError):
    """The archive already holds *different* bytes under our key. Evidence is
    never overwritten; a person must look."""

    reason = "archive_conflict"
    scope = "clip"

    def __init__(self, key: str, expected: str, found: str) -> None:
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(f"archive key {key} holds sha256 {found}, ours is {expected}")


class BadKey(ArchiveError):
    """A key this archive cannot hold (absolute, ``..``, empty parts)."""

    reason = "bad_key"
    scope = "clip"

    def __init__(self, key: str, why: str) -> None:
        self.key = key
        super().__init__(f"archive key {key!r}: {why}")


class VerifyFailed(ArchiveError):
    """What the archive stored did not read back as what was sent
    (corruption on the way or at rest); the bad copy is not counted."""

    permanent = False
    reason = "verify_failed"
    scope = "clip"

    def __init__(self, key: str, expected: str, found: str) -> None:
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(f"archive key {key}: stored copy reads back as {found}, sent {expected}")


class ArchiveRefused(ArchiveError):
    """The archive answered and refused the station: credentials,
    permissions, a policy, a read-only archive. Every clip would fail alike."""

    reason = "archive_refused"

    def __init__(self, target: str, why: str) -> None:
        self.target = target
        self.why = why
        super().__init__(f"archive {target} refused the station: {why}")


class ArchiveUnavailable(ArchiveError):
    """The archive cannot be reached or written right now."""

    permanent = False
    reason = "archive_unavailable"

    def __init__(self, target: str, why: str) -> None:
        self.target = target
        self.why = why
        super().__init__(f"archive {target} unavailable: {why}")


@dataclass(frozen=True)
class ArchiveObject:
    key: str
    source: Path
    sha256: str
    size: int
    extras: tuple[tuple[str, bytes], ...] = ()
    #: searchable facts stored as object metadata where the archive has it
    metadata: tuple[tuple[str, str], ...] = ()
    #: called with each chunk's size as the source is read (bandwidth limit)
    throttle: Callable[[int], None] | None = None
    #: keep the media and its extras locked until then (S3 Object Lock, from the retention class);
    #: None: the archive's own default. Archives without retention ignore it.
    retain_until: datetime | None = None


@dataclass(frozen=True)
class Receipt:
    key: str
    sha256: str
    existed: bool
    verified_by: str


class Archive(abc.ABC):
    name: str = "abstract"

    @abc.abstractmethod
    def put(self, obj: ArchiveObject) -> Receipt: ...

    def put_many(self, objs: Sequence[ArchiveObject]) -> list[Receipt | ArchiveError]:
        out: list[Receipt | ArchiveError] = []
        for obj in objs:
            try:
                out.append(self.put(obj))
            except ArchiveError as e:
                out.append(e)
                if e.scope == "station":
                    break
        return out + out[-1:] * (len(objs) - len(out))

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> Receipt: ...

    @abc.abstractmethod
    def sha256(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def read(self, key: str) -> BinaryIO: ...

    @abc.abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]: ...

    def identity(self, key: str) -> str | None:
        """See the module docstring; default: none (a cache never trusts this backend)."""
        return None

    def describe(self) -> str:
        return self.name

    def sweep_partial(self) -> int:
        """Remove what interrupted writes left behind (start-up); how many.
        Default: nothing is ever left where a reader looks."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Default: nothing to release."""
