"""Local staging: content-addressed, durable, with a free-space reserve.

Layout::

    staging/tmp/<item>.part          being written (removed at start-up)
    staging/media/<sha[:2]>/<sha>    complete, fsynced, named by content
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from gateway.catalog.records import MEDIA_DIR, staged_path_of
from gateway.durable import fsync_dir, sync_dirs, sync_files
from gateway.errors import StagingFull


class Staging:
    def __init__(self, root: Path, reserve_bytes: int) -> None:
        self.root = root
        self.reserve_bytes = reserve_bytes
        self.tmp = root / "tmp"
        self.media = root / MEDIA_DIR
        #: content-address folders known to exist with their own entry durable
        #: in media/: slots commit in their own threads, so "is it there?" and
        #: "make it" are one mkdir, and a folder another slot just made counts
        #: as durable only after a media/ fsync of ours
        self._durable_dirs: set[Path] = set()
        #: bytes each slot is copying now and the disk does not show yet: slots
        #: that looked at the free space together each saw room for their own
        #: clip only, and two 8 MiB clips filled a disk that had room for one
        #: and its reserve (the stamper's manifests then had none)
        self._claims: dict[int, int] = {}

    def prepare(self) -> int:
        """Create the layout; drop partial files a crash left. Returns how many."""
        self.media.mkdir(parents=True, exist_ok=True)
        removed = 0
        if self.tmp.exists():
            for p in self.tmp.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed += 1
        self.tmp.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.root)
        return removed

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def check_space(self, size: int, slot: int | None = None) -> None:
        """Room for *size* bytes more, the reserve kept and what other slots
        are copying counted; with *slot*, the room is claimed for it until
        ``release`` (the event loop's thread only: check and claim are one step)."""
        free = self.free_bytes() - sum(n for s, n in self._claims.items() if s != slot)
        if free - size < self.reserve_bytes:
            raise StagingFull(self.root, free, size + self.reserve_bytes)
        if slot is not None:
            self._claims[slot] = size

    def release(self, slot: int) -> None:
        """The slot's copy is on the disk (or given up): the free space shows it now."""
        self._claims.pop(slot, None)

    def temp_path(self, item_id: int) -> Path:
        return self.tmp / f"{item_id}.part"

    def path_for(self, sha256: str) -> Path:
        return self.root / staged_path_of(sha256)  # the catalog stores this name as derived (records.DERIVED)

    def relative(self, p: Path) -> str:
        return str(p.relative_to(self.root))

    def resolve(self, rel: str) -> Path:
        return self.root / rel

    def commit(self, temp: Path, sha256: str) -> Path:
        """Move a complete temp file to its content address, durably."""
        return self.commit_many([(temp, sha256)])[0]

    def commit_many(self, pulled: list[tuple[Path, str]]) -> list[Path]:
        """``commit`` for a batch of (temp, sha256), sharing the barriers:
        every temp file is made durable, then each is moved to its content
        address, then each directory touched is fsynced once."""
        sync_files([temp for temp, _ in pulled])
        finals: list[Path] = []
        fresh: set[Path] = set()
        for temp, sha in pulled:
            final = self.path_for(sha)
            if final.parent not in self._durable_dirs and final.parent not in fresh:
                with contextlib.suppress(FileExistsError):  # made by another slot (or before a restart)
                    final.parent.mkdir()
                fresh.add(final.parent)
            os.replace(temp, final)
            finals.append(final)
        sync_dirs(f.parent for f in finals)
        if fresh:
            fsync_dir(self.media)
            self._durable_dirs |= fresh
        return finals
