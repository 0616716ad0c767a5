"""The verified-hash cache: what `dockgate verify` hashed, keyed by the
archive object's identity, so an unchanged object is not read again.

An entry is (archive key, identity, SHA-256, size, when hashed). The
identity is the archive's own cheap token for the object (``Archive.identity``:
device, inode, size, mtime and ctime in nanoseconds for a directory; ETag,
version id, size and last modified for S3). A lookup returns the stored
hash only when the identity is the same now; anything else (a changed or
absent identity, a backend without one) is a miss and the object is hashed.

The cache never turns a failure into a pass: it stands in only for the
reading, never for the comparison. The hash it returns is compared with the
manifest exactly as a fresh one would be, and it only ever holds what a
read produced (an object whose identity changed while it was read is not
stored). What it cannot see: a change that keeps every part of the identity
(on a directory, that takes writing the block device underneath the
filesystem, or a clock and inode set back by someone with root on the
archive host); a full verify without the cache reads everything.

The file is JSON, written whole and atomically after a run (temp, fsync,
rename); a cache that does not parse is treated as empty.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from gateway.durable import write_atomic

FORMAT = "dockgate-hash-cache/1"


class HashCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        #: key -> [identity, sha256, size, hashed_at]
        self.entries: dict[str, list[Any]] = {}
        self.hits = 0
        self.misses = 0
        self._dirty = False
        try:
            doc = json.loads(path.read_bytes())
            if isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(doc.get("entries"), dict):
                self.entries = {k: v for k, v in doc["entries"].items() if isinstance(v, list) and len(v) == 4}
        except (OSError, ValueError):
            pass  # none yet, or unreadable: everything is hashed again

    def get(self, key: str, identity: str | None) -> tuple[str, int, float] | None:
        """(SHA-256, size, when hashed) for *key* while its identity is *identity*."""
        e = self.entries.get(key)
        if identity is None or e is None or e[0] != identity:
            self.misses += 1
            return None
        self.hits += 1
        return str(e[1]), int(e[2]), float(e[3])

    def put(self, key: str, identity: str | None, sha256: str, size: int) -> None:
        if identity is None:
            return
        self.entries[key] = [identity, sha256, size, time.time()]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"format": FORMAT, "entries": self.entries},
                                           separators=(",", ":")).encode(), mode=0o600)
        self._dirty = False
