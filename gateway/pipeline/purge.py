"""Staging purge and disk guard.

Local copies of archived clips go after ``purge.after_s``; when free space
falls below the reserve, the oldest archived copies go first, whatever their
age. Nothing that is not verified in the archive is ever purged."""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.catalog import Catalog, Purgeable, event
from gateway.config import Config
from gateway.pipeline.staging import Staging
from gateway.process.supervise import Worker

log = logging.getLogger(__name__)


class Purger(Worker):
    def __init__(self, cfg: Config, catalog: Catalog, staging: Staging) -> None:
        super().__init__()
        self.cfg = cfg
        self.catalog = catalog
        self.staging = staging
        #: slot -> bytes a waiting pull needs free (its clip plus the reserve)
        self.wanted: dict[int, int] = {}

    def need(self, slot: int, free_bytes: int) -> None:
        """A pull on *slot* waits for *free_bytes* (0: no longer waiting)."""
        if free_bytes:
            self.wanted[slot] = free_bytes
            self.wake()
        else:
            self.wanted.pop(slot, None)

    async def step(self) -> float:
        await self.purge()
        return self.cfg.purge.interval_s

    async def purge(self) -> int:
        done = await self._remove(self.catalog.purgeable(time.time() - self.cfg.purge.after_s), "age")
        target = max([self.staging.reserve_bytes, *self.wanted.values()])
        while self.staging.free_bytes() < target:
            oldest = self.catalog.purgeable(time.time() + 1, limit=20)
            if not oldest:
                break
            done += await self._remove(oldest, "disk low")
        return done

    async def _remove(self, clips: list[Purgeable], why: str) -> int:
        for c in clips:
            await asyncio.to_thread(self.staging.resolve(c.staged_path).unlink, missing_ok=True)
            self.catalog.purged(c.sha256, event("purged", sha256=c.sha256, size=c.size, why=why))
        return len(clips)
