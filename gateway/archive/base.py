"""The archive contract.

An archive stores immutable objects under keys. dockgate writes each clip's
media under its key, its signed manifest beside it (``extras``), amendments
and custody log segments as further small objects.
Methods are blocking and called from worker threads; one instance may serve
several threads at once.

``put(obj)``:
  * makes the archive hold exactly ``obj.source``'s bytes under ``obj.key``,
    whose SHA-256 must be ``obj.sha256``; the source is re-hashed while it
    is sent, so a staged file altered after the pull raises
    ``ChecksumMismatch`` and leaves no object behind;
  * is idempotent: when the key already holds identical bytes nothing is
    uploaded again and the receipt says ``existed``; when it holds different
    bytes it raises ``ArchiveConflict`` and changes nothing (evidence is never
    overwritten);
  * verifies before returning (read-back hashing or the server's checksum,
    as configured); on a verification failure the bad object is removed
    where the archive allows it and ``ChecksumMismatch`` is raised;
  * stores each of ``obj.extras`` (suffix, bytes) under ``key + suffix``
    after the media, write-once like ``put_bytes``;
  * raises ``ArchiveUnavailable`` (transient) when the archive cannot be
    reached or written, with nothing marked as stored.

``put_bytes(key, data)``: the same for a small object held in memory:
write-once, identical bytes already there are fine (``existed``), different
bytes raise ``ArchiveConflict``, verified before returning.

``sha256(key)``: hash of the stored object by reading it back, ``None`` if
absent. ``read(key)``: a binary stream. ``keys(prefix)``: every key.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class ArchiveObject:
    key: str
    source: Path
    sha256: str
    size: int
    extras: tuple[tuple[str, bytes], ...] = ()
    #: searchable facts stored as object metadata where the archive has it
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Receipt:
    key: str
    sha256: str
    existed: bool
    verified_by: str


class Archive(abc.ABC):
    name: str = "abstract"
    #: called with each chunk's size as the source is read (bandwidth limit)
    throttle: Callable[[int], None] | None = None
    #: applied to bytes after hashing, before they leave (fault injection only)
    transmit_filter: Callable[[str, bytes], bytes] | None = None

    @abc.abstractmethod
    def put(self, obj: ArchiveObject) -> Receipt: ...

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> Receipt: ...

    @abc.abstractmethod
    def sha256(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def read(self, key: str) -> BinaryIO: ...

    @abc.abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]: ...

    def describe(self) -> str:
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Default: nothing to release."""
