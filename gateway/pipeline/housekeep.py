"""Housekeeping for a year on one station (issue 30): what grows with
history is bounded, off the pulls' path.

* Custody segments and checkpoints leave the station once they are safe
  elsewhere: with ``evidence.custody_keep_days`` set, a sealed segment, its
  checkpoint and signature (and its timestamp token, when the station has
  a TSA: the token is the checkpoint's witness) are removed from the
  station when the catalog records every one of them archived and the
  segment is older than the setting. The newest sealed segment and its
  checkpoint always stay (the next segment's index names them, and the
  custody log continues their chain). Unset (the default), nothing is
  removed, as before.
* The catalog: its WAL truncated and its query planner's statistics
  refreshed (``Catalog.maintain``: ``wal_checkpoint(TRUNCATE)``,
  ``PRAGMA optimize``), at most every ``MAINTAIN_S`` and only while no
  slot pulls, each a short step (no ``VACUUM``, which would hold the
  writer for the whole file's rewrite).
* The catalog's event outbox: with ``evidence.events_keep_days`` (default
  30) an event leaves the catalog once it is that old, the broker took it
  (with MQTT) and the archive holds its custody entry
  (``Catalog.prune_events``: the custody log is the record; a clip's page
  reads its entries from there, ``events --since`` says where they are),
  in batches, while no slot pulls. Free pages above a tenth of the file are
  given back, ``VACUUM_PAGES`` a round (incremental auto-vacuum; a catalog
  made before it was the default is rewritten into that mode once, by one
  VACUUM, the first time a quarter of it is free: ``compact_file``, here
  while no slot pulls when it is small, else at the daemon's next start).
  And the whole file rewritten once every ``COMPACT_EVERY_S`` (a week),
  while no slot pulls: an index of random keys (the clips' hashes) splits
  its pages as a year's clips arrive and keeps them part empty, about 9 %
  of a year's catalog (1 056 -> 967 B a clip; 1.4 s at a year here, the
  writer held for it: a recorder docking meanwhile waits that long for its
  first catalog write).
* The catalog's integrity check (``PRAGMA quick_check``, which reads the
  whole file) runs here once after start, on a read-only connection in a
  thread, not before READY.
* What is on disk (catalog, custody on the station, staging) is measured
  once per round and shown in metrics (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from gateway.catalog import Catalog, CatalogError, compact_file
from gateway.catalog.reports import ReportError, Reports
from gateway.catalog.store import COMPACT_ONLINE_PAGES
from gateway.config import Config
from gateway.evidence.checkpoint import SIG_SUFFIX, TSR_SUFFIX, checkpoint_name
from gateway.process.supervise import Worker

log = logging.getLogger(__name__)

#: the catalog is maintained at most this often (seconds)
MAINTAIN_S = 6 * 3600.0
#: free catalog pages given back per round at most (4 MiB of 4 KiB pages: a short step)
VACUUM_PAGES = 1024
#: outbox events forgotten per transaction (1 000: ~0.1 s on this machine, 5 000 held the loop ~0.5 s)
PRUNE_BATCH = 1000
#: the catalog is rewritten whole (``compact_file``) this often, while no slot pulls
COMPACT_EVERY_S = 7 * 86400.0
#: ... when it holds at most this many live pages (1 GiB: some 6 s here; a year's is about 60 000 pages)
COMPACT_SCHEDULED_PAGES = 262144
#: a round of housekeeping waits this long while a slot pulls, then looks again
BUSY_S = 60.0
DAY = 86400.0


def _bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except OSError:
            continue
    return total


def prunable(custody_dir: Path, archived: set[str], keep_s: float, now: float, witness: bool) -> list[Path]:
    """The station's custody files that may go: for each sealed segment but
    the newest, older than *keep_s*, the segment, its checkpoint and
    signature (and token, if *witness*), when every one is in *archived*."""
    segments = sorted(p for p in custody_dir.glob("custody-*.jsonl") if not p.name.endswith(".open.jsonl"))
    out: list[Path] = []
    for seg in segments[:-1]:
        try:
            if now - seg.stat().st_mtime < keep_s:
                continue
            lines = seg.read_bytes().count(b"\n")
        except OSError:
            continue
        station, first = seg.name[len("custody-"):].rsplit(".", 1)[0].rsplit("-", 1)
        cp = checkpoint_name(station, int(first) + lines - 1)
        files = [seg.name, cp, cp + SIG_SUFFIX] + ([cp + TSR_SUFFIX] if witness else [])
        if all(name in archived for name in files):
            out += [custody_dir / name for name in files]
    return out


def _integrity(path: Path) -> str:
    try:
        r = Reports(path)
    except CatalogError as e:
        return str(e)
    try:
        return r.integrity()
    except ReportError as e:
        return f"cannot check: {e}"
    finally:
        r.close()


class Housekeeper(Worker):
    def __init__(self, cfg: Config, catalog: Catalog, pulling: Callable[[], bool]) -> None:
        super().__init__()
        self.cfg = cfg
        self.catalog = catalog
        self.pulling = pulling
        self._maintained = 0.0
        #: what the metrics show: bytes on disk, and custody files removed so far
        self.disk: dict[str, int] = {}
        self.custody_removed = 0
        self.events_pruned = 0
        self._compact_told = False

    async def start(self) -> None:
        """SQLite's quick check of the catalog, off the start's path: it
        reads the whole file, seconds at a year's history, and only reports."""
        health = await asyncio.to_thread(_integrity, self.cfg.catalog_path)
        (log.info if health == "ok" else log.error)("catalog integrity check: %s", health)

    async def step(self) -> float:
        if self.pulling():
            return BUSY_S
        keep_days = self.cfg.evidence.custody_keep_days
        if keep_days is not None:
            archived = set(self.catalog.archived_segments())
            gone = await asyncio.to_thread(prunable, self.cfg.custody_dir, archived, keep_days * DAY, time.time(),
                                           bool(self.cfg.evidence.tsa_url))
            for p in gone:
                await asyncio.to_thread(p.unlink, missing_ok=True)
            if gone:
                self.custody_removed += len(gone)
                log.info("removed %d custody files from the station (archived, older than %d days)", len(gone),
                         keep_days)
        await self.catalog_size()
        if time.monotonic() - self._maintained >= MAINTAIN_S and not self.pulling():
            self.catalog.maintain()  # the writer's own connection, on its loop: short steps
            self._maintained = time.monotonic()
        size, _pages, free, _ = self.catalog.file_pages()
        self.disk = {**await asyncio.to_thread(self.measure), "catalog_free": size * free,
                     "catalog_compacted": int(self.catalog.compacted_at() or 0)}
        return 600.0

    async def catalog_size(self) -> None:
        """The outbox pruned (batches, each its own short transaction,
        stopping when a slot starts pulling) and free pages given back."""
        keep_days = self.cfg.evidence.events_keep_days
        if keep_days is not None:
            before = time.time() - keep_days * DAY
            while not self.pulling():
                n = self.catalog.prune_events(before, published=self.cfg.mqtt.enabled, limit=PRUNE_BATCH)
                self.events_pruned += n
                if n < PRUNE_BATCH:
                    break
                await asyncio.sleep(0)  # the loop's other work between batches
        _size, pages, free, incremental = self.catalog.file_pages()
        if not incremental and free * 4 > pages and pages - free > COMPACT_ONLINE_PAGES:
            if not self._compact_told:  # too big to hold the writer for now: at the next start
                log.info("catalog: %d of %d pages free; compacted into incremental auto-vacuum mode at the next "
                         "start", free, pages)
                self._compact_told = True
        elif not incremental and free * 4 > pages and not self.pulling():
            started = time.monotonic()
            await asyncio.to_thread(compact_file, self.cfg.catalog_path)
            log.info("catalog compacted into incremental auto-vacuum mode: %d free pages of %d given back "
                     "in %.1f s", free, pages, time.monotonic() - started)
        elif incremental and free * 10 > pages and not self.pulling():
            self.catalog.vacuum(min(VACUUM_PAGES, free - pages // 10))
        elif incremental and not self.pulling() and pages - free <= COMPACT_SCHEDULED_PAGES \
                and time.time() - (self.catalog.compacted_at() or 0.0) >= COMPACT_EVERY_S:
            started = time.monotonic()
            await asyncio.to_thread(compact_file, self.cfg.catalog_path)
            log.info("catalog compacted on its weekly schedule: %d -> %d pages in %.1f s", pages,
                     self.catalog.file_pages()[1], time.monotonic() - started)

    def measure(self) -> dict[str, int]:
        c = self.cfg.catalog_path
        return {"catalog": _bytes([c, Path(f"{c}-wal"), Path(f"{c}-shm")]),
                "custody": _bytes(list(self.cfg.custody_dir.glob("*")))}
