"""Staging purge and disk guard.

Local copies of archived clips go after ``purge.after_s``; when free space
falls below the reserve, the oldest archived copies go first, whatever their
age. Nothing that is not verified in the archive is ever purged."""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.catalog import Catalog
from gateway.config import Config
from gateway.events import Events
from gateway.staging import Staging
from gateway.supervise import wait_event

log = logging.getLogger(__name__)


class Purger:
    def __init__(self, cfg: Config, catalog: Catalog, staging: Staging, events: Events) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.staging = staging
        self.events = events
        self._wake = asyncio.Event()
        #: slot -> bytes a waiting pull needs free (its clip plus the reserve)
        self.wanted: dict[int, int] = {}

    def wake(self) -> None:
        self._wake.set()

    def need(self, slot: int, free_bytes: int) -> None:
        """A pull on *slot* waits for *free_bytes* (0: no longer waiting)."""
        if free_bytes:
            self.wanted[slot] = free_bytes
            self._wake.set()
        else:
            self.wanted.pop(slot, None)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.purge()
            await wait_event(self._wake, self.cfg.purge.interval_s)

    async def purge(self) -> int:
        done = 0
        aged = self.catalog.purgeable(time.time() - self.cfg.purge.after_s)
        done += await self._remove(aged, "age")
        target = max([self.staging.reserve_bytes, *self.wanted.values()])
        while self.staging.free_bytes() < target:
            oldest = self.catalog.purgeable(time.time() + 1, limit=20)
            if not oldest:
                break
            done += await self._remove(oldest, "disk low")
        return done

    async def _remove(self, clips: list[tuple[str, str, int]], why: str) -> int:
        for sha, rel, size in clips:
            path = self.staging.resolve(rel)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            self.catalog.mark_purged(sha)
            self.events.emit("purged", sha256=sha, size=size, why=why)
        return len(clips)
