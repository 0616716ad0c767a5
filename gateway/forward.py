"""Forwarding: drain the catalog's staged clips into the archive.

The catalog is the queue, so a crash loses nothing: clips left ``forwarding``
go back to ``staged`` at start and ``put`` is idempotent. Transient failures
(archive down) back off exponentially with jitter up to ``retry_max_s`` and
are retried for as long as it takes; failures that retrying cannot fix
(staged bytes no longer match their hash, the archive holds different bytes
under our key) quarantine the clip: kept, alarmed, never released.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from pathlib import Path

from gateway.archive import Archive, ArchiveObject
from gateway.catalog import Catalog, ClipRow
from gateway.config import Config
from gateway.errors import ArchiveConflict, ChecksumMismatch, DockgateError
from gateway.events import Events
from gateway.evidence import MANIFEST_SUFFIX, SIG_SUFFIX, amendment_suffix, read_signed
from gateway.staging import Staging
from gateway.state import StationState
from gateway.supervise import wait_event

log = logging.getLogger(__name__)

#: read-back mismatches tolerated before a clip is quarantined
MAX_VERIFY_FAILURES = 5


class Forwarder:
    def __init__(self, cfg: Config, catalog: Catalog, staging: Staging, archive: Archive,
                 events: Events, state: StationState, custody_dir: Path) -> None:
        self.cfg = cfg
        self.custody_dir = custody_dir
        self.catalog = catalog
        self.staging = staging
        self.archive = archive
        self.events = events
        self.state = state
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                free = self.cfg.forward.concurrency - len(self._in_flight)
                if free > 0 and not self.state.forwarding_paused:
                    due = self.catalog.due_for_forward(time.time(), free + len(self._in_flight))
                    for clip in due:
                        if clip.sha256 in self._in_flight or free <= 0:
                            continue
                        free -= 1
                        task = asyncio.create_task(self._forward(clip), name=f"fwd-{clip.sha256[:8]}")
                        self._in_flight[clip.sha256] = task
                        task.add_done_callback(functools.partial(self._done, clip.sha256))
                if not self.state.forwarding_paused and self.state.archive_up is not False:
                    await self._forward_small()
                timeout = 30.0
                nxt = self.catalog.next_retry_at()
                if nxt is not None:
                    timeout = min(timeout, max(0.05, nxt - time.time()))
                await wait_event(self._wake, timeout)
        finally:
            for t in self._in_flight.values():
                t.cancel()

    async def _forward_small(self) -> None:
        """Amendments of archived clips and sealed custody segments: small,
        write-once, sent one at a time between the clips."""
        try:
            for a in self.catalog.due_amendments():
                signed = read_signed(self.staging.resolve(a["path"]))
                key = f"{a['archive_key']}{amendment_suffix(a['id'])}"
                await asyncio.to_thread(self.archive.put_bytes, key, signed.body)
                await asyncio.to_thread(self.archive.put_bytes, key + SIG_SUFFIX, signed.signature)
                self.catalog.mark_amendment_archived(a["id"], key)
                self.events.emit("amendment_archived", sha256=a["sha256"], key=key)
            for name in self.catalog.due_segments():
                data = (self.custody_dir / name).read_bytes()
                key = f"custody/{self.cfg.station.id}/{name}"
                await asyncio.to_thread(self.archive.put_bytes, key, data)
                self.catalog.mark_segment_archived(name)
                log.info("custody segment %s archived as %s", name, key)
        except DockgateError as e:
            log.warning("forwarding evidence metadata failed: %s", e)
            if not e.permanent:
                self.state.archive_up = False

    def _done(self, sha: str, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(sha, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("forwarding %s crashed", sha[:12], exc_info=task.exception())
        self._wake.set()

    async def _forward(self, clip: ClipRow) -> None:
        key = clip.archive_key or f"unstamped/{clip.sha256}"
        if clip.staged_path is None or clip.manifest_path is None or clip.archive_key is None:
            self._quarantine(clip, key, "no staged copy or manifest")
            return
        source = self.staging.resolve(clip.staged_path)
        try:
            manifest = read_signed(self.staging.resolve(clip.manifest_path))
        except FileNotFoundError as e:
            self._quarantine(clip, key, f"manifest missing: {e}")
            return
        obj = ArchiveObject(key=key, source=source, sha256=clip.sha256, size=clip.size,
                            extras=((MANIFEST_SUFFIX, manifest.body),
                                    (MANIFEST_SUFFIX + SIG_SUFFIX, manifest.signature)),
                            metadata=(("officer", clip.officer or ""), ("serial", clip.serial),
                                      ("station", self.cfg.station.id),
                                      ("original-path", clip.path.decode("utf-8", "backslashreplace")),
                                      ("manifest-sha256", clip.manifest_sha256 or "")))
        self.catalog.mark_forwarding(clip.sha256, key)
        started = time.monotonic()
        try:
            receipt = await asyncio.to_thread(self.archive.put, obj)
        except ChecksumMismatch as e:
            if e.path == str(source):
                self._quarantine(clip, key, f"staged copy no longer matches its hash: {e}")
            elif clip.attempts + 1 >= MAX_VERIFY_FAILURES:
                self._quarantine(clip, key, f"archive read-back failed {clip.attempts + 1} times: {e}")
            else:
                self._retry(clip, e)
            return
        except ArchiveConflict as e:
            self._quarantine(clip, key, str(e))
            return
        except DockgateError as e:
            if e.permanent:
                self._quarantine(clip, key, str(e))
            else:
                self._retry(clip, e)
            return
        except FileNotFoundError as e:
            self._quarantine(clip, key, f"staged copy missing: {e}")
            return
        except Exception as e:  # unknown: treat as transient, keep the clip queued
            log.exception("unexpected error forwarding %s", clip.sha256[:12])
            self._retry(clip, e)
            return
        self.events.emit("forwarded", sha256=clip.sha256, key=key, existed=receipt.existed)
        self.events.emit("verified", sha256=clip.sha256, key=key, verified_by=receipt.verified_by)
        self.catalog.mark_archived(clip.sha256)
        if self.state.archive_up is not True:
            if self.state.archive_up is False:
                self.events.emit("archive_up", archive=self.archive.describe())
            self.state.archive_up = True
        self.events.emit("clip_archived", sha256=clip.sha256, key=key, size=clip.size,
                         partial=bool(clip.partial), duration_s=round(time.monotonic() - started, 3))

    def _retry(self, clip: ClipRow, err: Exception) -> None:
        f = self.cfg.forward
        delay = min(f.retry_max_s, f.retry_initial_s * 2 ** min(clip.attempts, 30))
        delay *= random.uniform(0.8, 1.2)
        self.catalog.retry_later(clip.sha256, str(err), time.time() + delay)
        self.state.last_error = str(err)
        self.state.last_error_reason = getattr(err, "reason", "archive")
        if self.state.archive_up is not False:
            self.state.archive_up = False
            self.events.emit("archive_down", archive=self.archive.describe(), error=str(err))
        log.warning("forwarding %s failed (%s); retry in %.1fs", clip.sha256[:12], err, delay)

    def _quarantine(self, clip: ClipRow, key: str, why: str) -> None:
        self.catalog.quarantine(clip.sha256, why)
        self.state.last_error = why
        self.state.last_error_reason = "quarantine"
        self.events.emit("quarantined", sha256=clip.sha256, key=key, error=why)
