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

Content the catalog holds is a sighting and its copy goes, except content
whose clip is quarantined because the station lost or spoiled its own copy
(``Catalog.lost_copy``, issue 27): that copy is kept and staged at the
content address, and the clip leaves quarantine with it (``pulled_again``).
A spoiled copy still there is not overwritten but set aside, under
``staging/set-aside/``, kept like any quarantined bytes; whether the clip's
signed manifest is intact decides if it is forwarded with it or stamped
anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.archive.directio import hash_file
from gateway.catalog import Catalog, ClipRow, PendingItem, TransitionRefused, event
from gateway.durable import fsync_dir
from gateway.evidence.manifest import read_signed
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
#: where a spoiled staged copy goes when its clip is pulled again (under staging's root)
SET_ASIDE = "set-aside"


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
        #: content whose clip lost its station copy: this pull stages it again
        again: dict[str, ClipRow] = {}
        for d in batch:  # content already held (or twice in this batch) is a sighting: its copy goes
            sha = d.pulled.sha256
            held = sha in new or cat.has_clip(sha)
            if held and sha not in new and (lost := cat.lost_copy(sha)) is not None:
                again[sha] = lost
                held = False
            if held:
                drop.append(d.pulled.temp)
            else:
                new.add(sha)
                keep.append(d)
        try:
            finals, intact = await asyncio.to_thread(self._make_durable, keep, drop, again)
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
                sha = d.pulled.sha256
                try:
                    cat.finish_pull(d.item.id, sha, d.pulled.size, staged.get(sha),
                                    pulled=event("pulled", self.slot, **common, size=d.pulled.size,
                                                 duration_s=round(d.duration_s, 3)),
                                    seen_again=event("seen_again", self.slot, **common),
                                    again=event("pulled_again", self.slot, **common, size=d.pulled.size,
                                                duration_s=round(d.duration_s, 3)) if sha in again else None,
                                    manifest_intact=sha in intact)
                except TransitionRefused as e:  # a bug, not the clip: the others are still recorded
                    log.error("slot %d: %s", self.slot, e)
        self.st.clips_done += len(batch)
        if keep:
            self.on_staged()

    def _make_durable(self, keep: list[Done], drop: list[Path],
                      again: dict[str, ClipRow]) -> tuple[list[Path], set[str]]:
        """The batch's kept copies, durable at their content addresses, and
        the clips pulled again whose signed manifest is intact."""
        for p in drop:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        intact: set[str] = set()
        for sha, clip in again.items():
            self._set_aside(sha)
            if clip.manifest_path and _manifest_of(self.staging.resolve(clip.manifest_path), sha):
                intact.add(sha)
        return self.staging.commit_many([(d.pulled.temp, d.pulled.sha256) for d in keep]), intact

    def _set_aside(self, sha256: str) -> None:
        """Move a spoiled staged copy of *sha256* out of the way of the copy
        pulled again: kept (it may be the trace of tampering), never purged."""
        spoiled = self.staging.path_for(sha256)
        try:
            same = hash_file(spoiled) == sha256
        except FileNotFoundError:
            return  # lost: nothing to keep
        except OSError:
            same = False  # unreadable: set aside as it is
        if same:
            return  # good again (another slot pulled it again just now): replaced by the same bytes
        aside = self.staging.root / SET_ASIDE / f"{sha256}.{time.time_ns()}"
        aside.parent.mkdir(exist_ok=True)
        try:
            os.rename(spoiled, aside)
        except FileNotFoundError:
            return
        fsync_dir(aside.parent)
        fsync_dir(spoiled.parent)
        log.warning("slot %d: the spoiled staged copy of %s is set aside as %s; the copy pulled again replaces it",
                    self.slot, sha256[:12], self.staging.relative(aside))


def _manifest_of(path: Path, sha256: str) -> bool:
    """Is *path* a signed manifest the forwarder can send for the clip *sha256*?"""
    try:
        doc = json.loads(read_signed(path).body)
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("clip"), dict) and doc["clip"].get("sha256") == sha256
