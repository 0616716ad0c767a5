"""Group commit of one slot's pulls.

A clip copied and hashed into staging's ``tmp/`` waits in the slot's batch,
not yet durable and not yet staged. A batch is made durable at once (one
barrier for its files, the renames to their content addresses, one fsync per
directory; in a thread, while the slot copies the next clips) and then
recorded in one catalog transaction (one custody fsync, one commit). So a
clip counts as staged only once its bytes are on disk, as before, but a run
of small clips shares its fsyncs instead of paying about twenty each.

A crash before the commit loses nothing: the items are still ``pulling`` in
the catalog (recovery makes them ``interrupted``, pulled again at the next
dock, the recorder still holds them) and ``tmp/`` is emptied at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.catalog import Catalog, PendingItem, TransitionRefused, event
from gateway.pipeline.ingest import Pulled
from gateway.pipeline.live import SlotState
from gateway.pipeline.staging import Staging

log = logging.getLogger(__name__)

#: a batch is committed when it holds this many clips, this many bytes, or
#: its first clip has waited this long (the officer's progress display and
#: the stamper should not wait on a slow recorder)
MAX_CLIPS = 256
MAX_BYTES = 64 << 20
MAX_WAIT_S = 0.5


@dataclass(frozen=True)
class Done:
    item: PendingItem
    pulled: Pulled
    duration_s: float


class SlotCommitter:
    def __init__(self, catalog: Catalog, staging: Staging, slot: int, st: SlotState, serial: str,
                 on_staged: Callable[[], None]) -> None:
        self.catalog = catalog
        self.staging = staging
        self.slot = slot
        self.st = st
        self.serial = serial
        self.on_staged = on_staged
        self._batch: list[Done] = []
        self._bytes = 0
        self._since = 0.0
        self._flushing: asyncio.Future[None] | None = None

    def add(self, done: Done) -> None:
        if not self._batch:
            self._since = time.monotonic()
        self._batch.append(done)
        self._bytes += done.pulled.size

    def due(self) -> bool:
        return bool(self._batch) and (len(self._batch) >= MAX_CLIPS or self._bytes >= MAX_BYTES
                                      or time.monotonic() - self._since >= MAX_WAIT_S)

    async def flush(self) -> None:
        """Start committing the batch (after the one before it: commits stay
        in pull order) and return; the slot goes on copying meanwhile."""
        batch, self._batch, self._bytes = self._batch, [], 0
        if self._flushing is not None:
            await asyncio.shield(self._flushing)  # an undock must not cancel a commit half-way
            self._flushing = None
        if batch:
            self._flushing = asyncio.ensure_future(self._commit(batch))

    async def drain(self) -> None:
        """Commit everything pulled so far and wait for it."""
        await self.flush()
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
            self._flushing = None

    async def _commit(self, batch: list[Done]) -> None:
        cat = self.catalog
        keep: list[Done] = []
        drop: list[Path] = []
        new: set[str] = set()
        for d in batch:  # content already held (or twice in this batch) is a sighting: its copy goes
            if d.pulled.sha256 in new or cat.has_clip(d.pulled.sha256):
                drop.append(d.pulled.temp)
            else:
                new.add(d.pulled.sha256)
                keep.append(d)
        try:
            finals = await asyncio.to_thread(self._make_durable, keep, drop)
        except OSError as e:  # the staging disk failed the barrier: nothing of the batch is staged
            why = f"staging write failed: {e.strerror or e}"
            log.error("slot %d: %s; %d clips stay on the recorder for the next dock", self.slot, why, len(batch))
            for d in batch:
                with contextlib.suppress(FileNotFoundError):
                    d.pulled.temp.unlink()
                cat.interrupt(d.item.id, why, event("clip_interrupted", self.slot, serial=self.serial,
                                                    path=d.item.ref.display, error=why, size=d.item.ref.size))
            self.st.clips_failed += len(batch)
            return
        staged = {d.pulled.sha256: self.staging.relative(f) for d, f in zip(keep, finals, strict=True)}
        with cat.group():
            for d in batch:
                common = {"serial": self.serial, "path": d.item.ref.display, "sha256": d.pulled.sha256}
                try:
                    cat.finish_pull(d.item.id, d.pulled.sha256, d.pulled.size, staged.get(d.pulled.sha256),
                                    pulled=event("pulled", self.slot, **common, size=d.pulled.size,
                                                 duration_s=round(d.duration_s, 3)),
                                    seen_again=event("seen_again", self.slot, **common))
                except TransitionRefused as e:  # a bug, not the clip: the others are still recorded
                    log.error("slot %d: %s", self.slot, e)
        self.st.clips_done += len(batch)
        if keep:
            self.on_staged()

    def _make_durable(self, keep: list[Done], drop: list[Path]) -> list[Path]:
        for p in drop:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return self.staging.commit_many([(d.pulled.temp, d.pulled.sha256) for d in keep])
