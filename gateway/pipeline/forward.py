"""Forwarding: drain the catalog's stamped clips into the archive.

The catalog is the queue, so a crash loses nothing: clips left ``forwarding``
go back to ``stamped`` at start and ``put`` is idempotent. What a failure
does is decided by the archive contract's taxonomy (``archive/base.py``),
never by comparing types or paths here:

* the clip's own fault, permanent (its staged copy changed or vanished, the
  archive holds other bytes under its key): the clip is quarantined, kept and
  alarmed, never released; the quarantine records whose copy failed, and
  one of the station's own (staged media, signed manifest) is cured by a
  pull again when a recorder that still holds the clip docks (issue 27);
* the clip's own fault, transient (the stored copy did not read back right):
  retried, quarantined after ``MAX_VERIFY_FAILURES``;
* the station's fault, permanent (the archive refuses us: credentials,
  permissions, policy): forwarding pauses with one alarm, nothing is
  quarantined, one clip is tried every ``refused_retry_s`` and forwarding
  resumes by itself once the archive takes it;
* the station's fault, transient (archive down): exponential backoff with
  jitter up to ``retry_max_s``, for as long as it takes.

Object Lock follows the evidence graph (``evidence/retention.py``): each
archived clip, amendment and custody file tells the rule, and the locks it
wants are applied between uploads, a failed one again after backoff.

Why ~430 lines in one module: one worker owns the order of everything the
archive receives (clips, amendments, custody segments, their locks) and the
one alarm per archive fault; the rules it follows live elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive import Archive, ArchiveConflict, ArchiveError, ArchiveObject, ArchiveUnavailable, Receipt
from gateway.catalog import Catalog, ClipRow, Event, TransitionRefused, event
from gateway.config import Config
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX, amendment_suffix, read_signed
from gateway.evidence.retention import Locks, clip_until
from gateway.evidence.signing import verify
from gateway.pipeline.live import StationState
from gateway.pipeline.staging import Staging
from gateway.process.supervise import Worker

log = logging.getLogger(__name__)

#: read-back mismatches tolerated before a clip is quarantined
MAX_VERIFY_FAILURES = 5
IDLE_S = 30.0
#: uploads finishing this close together share one catalog commit
GROUP_S = 0.02
#: amendments and custody segments are looked for at most this often (and on a stop)
SMALL_EVERY_S = 1.0
#: locks the command line left pending (`dockgate legal-hold` while the archive is away) are looked for this often
LOCK_POLL_S = 5.0


#: clips up to this size are uploaded in batches of up to BATCH_CLIPS clips and BATCH_BYTES
BATCH_CLIP_MAX = 4 << 20
BATCH_CLIPS = 256
BATCH_BYTES = 32 << 20


def _batches(due: list[ClipRow], most: int) -> list[list[ClipRow]]:
    """Due clips in their order as uploads: runs of small clips together
    (they share the archive's barriers), each large clip on its own."""
    out: list[list[ClipRow]] = []
    run: list[ClipRow] = []
    run_bytes = 0
    for clip in due:
        if clip.size > BATCH_CLIP_MAX or most == 1:
            out.append([clip])
            continue
        if not run or len(run) >= most or run_bytes + clip.size > BATCH_BYTES:
            run, run_bytes = [], 0
            out.append(run)  # in order: the run's place is where its first clip was due
        run.append(clip)
        run_bytes += clip.size
    return out


class Forwarder(Worker):
    def __init__(self, cfg: Config, catalog: Catalog, staging: Staging, archive: Archive,
                 live: StationState, custody_dir: Path, station_keys: Sequence[Ed25519PublicKey] = ()) -> None:
        super().__init__()
        #: keys whose archived manifests for the same clip mean "already archived"
        self.station_keys = list(station_keys)
        self.cfg = cfg
        self.custody_dir = custody_dir
        self.catalog = catalog
        self.staging = staging
        self.archive = archive
        self.live = live
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        #: while the archive refuses the station: when to try one clip again
        self._probe_at = 0.0
        self._small_lock = threading.Lock()
        self._lag_checked = 0.0
        self._small_at = 0.0
        #: while the archive is down: when custody and amendments try again on their own, and how long after
        self._small_probe_at = 0.0
        self._small_backoff_s = 0.0
        self._others_empty_until = 0.0
        self._behind = False
        #: uploads done and verified, waiting for their group commit
        self._archived: list[tuple[str, tuple[Event, ...]]] = []
        #: retention follows the evidence graph (gateway/evidence/retention.py); what each clip in
        #: flight is locked with: (retain-until, suffixes stored beside it, its case)
        self.locks = Locks(catalog, cfg, archive)
        self._lock_facts: dict[str, tuple[datetime, tuple[str, ...], str | None]] = {}
        #: archived clips' locks, for their group commit: (clip, key, facts, stored with them)
        self._to_lock: dict[str, tuple[ClipRow, str, tuple[datetime, tuple[str, ...], str | None], bool]] = {}
        self._locks_at = 0.0

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for t in self._in_flight.values():
                t.cancel()

    async def step(self) -> float:
        now = time.time()
        self.live.uploads_held = False  # until concurrency() says otherwise
        if self.live.forwarding_paused:
            return IDLE_S  # `resume` wakes us
        refused = self.live.archive_refused is not None
        if refused and now < self._probe_at:
            return self._probe_at - now
        # while refused, one clip at a time finds out whether the fault is gone
        uploads = set(self._in_flight.values())
        free = (1 if refused else self.concurrency(now)) - len(uploads)
        if free > 0:
            due = [c for c in self._due(now, free * BATCH_CLIPS + len(self._in_flight))
                   if c.sha256 not in self._in_flight]
            for batch in _batches(due, 1 if refused else BATCH_CLIPS)[:free]:
                task = asyncio.create_task(self._forward(batch), name=f"fwd-{batch[0].sha256[:8]}+{len(batch) - 1}")
                for clip in batch:
                    self._in_flight[clip.sha256] = task
                task.add_done_callback(functools.partial(self._done, [c.sha256 for c in batch]))
        # while the archive is down, custody segments and amendments find out for themselves when it is back:
        # a quiet station may have no clip to probe with, and its evidence must not wait for the next dock
        small_ok = self.live.archive_up is not False or now >= self._small_probe_at
        if small_ok and now >= self._small_at:
            self._small_at = now + SMALL_EVERY_S
            await self._forward_small()
        if self.locks.on and now >= self._locks_at:
            await self._apply_locks()
        nxt = min((t for t in (self.catalog.next_retry_at(), self.catalog.next_lock_at() if self.locks.on else None)
                   if t is not None), default=None)
        idle = IDLE_S if not self.live.pulling else 1.0  # held back by pulling slots: look again soon
        if self.locks.on:
            idle = min(idle, LOCK_POLL_S)
        if self.live.archive_up is False:  # the next look at custody and amendments (two small queries)
            idle = min(idle, max(0.05, max(self._small_probe_at, self._small_at) - now))
        return idle if nxt is None else min(idle, max(0.05, nxt - time.time()))

    def _due(self, now: float, limit: int) -> list[ClipRow]:
        """While slots pull, clips of docks that finished pulling go first: their
        officers may be waiting for the release, and a recorder with 100 000
        files must not hold everyone else's clips behind its own. The search
        skips the pulling docks' clips (a scan of the queue), so an empty
        answer is remembered for a second."""
        docks = sorted(self.live.pulling.values())
        if docks and now >= self._others_empty_until:
            first = self.catalog.due_for_forward(now, limit, not_docks=docks)
            if first:
                return first
            self._others_empty_until = now + 1.0
        return self.catalog.due_for_forward(now, limit)

    def concurrency(self, now: float) -> int:
        """Uploads at once: the configured number; ``while_pulling`` while
        some slots pull; none while ``pause_at_pulling`` slots or more pull
        (by default one per CPU: each pull then has a core to itself). Full
        concurrency again when the queue is far behind (bytes or age).

        Why a count of slots: one slot pulling leaves a core to an upload,
        and overlapping its own clips' uploads with its pull is most of
        dock -> archived for one recorder (4 x 256 MiB: 3.3-4.2 s against
        4.8-5.4 s without). 25 slots at 35 MB/s on two cores fell behind
        their links while one upload ran (worst slot 112-135 % of link
        time) and kept to them without it (101-105 %), and the last clip
        was archived no later (31.7 s and 32.9 s)."""
        n = self._concurrency(now)
        self.live.uploads_held = n == 0
        return n

    def _concurrency(self, now: float) -> int:
        f = self.cfg.forward
        pulling = len(self.live.pulling)
        if not pulling:
            return f.concurrency
        allowed = 0 if pulling >= (f.pause_at_pulling or _cpus()) else min(f.while_pulling, f.concurrency)
        if allowed >= f.concurrency:
            return allowed
        if now >= self._lag_checked + 1.0:  # two queries: not on every wake-up
            self._lag_checked = now
            _, queued = self.catalog.queue()
            self._behind = queued > f.catch_up_bytes or self.catalog.queue_oldest_age(now) > f.catch_up_s
        return f.concurrency if self._behind else allowed

    def _done(self, shas: list[str], task: asyncio.Task[None]) -> None:
        for sha in shas:
            self._in_flight.pop(sha, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("forwarding %s crashed", sha[:12], exc_info=task.exception())
        self.wake()

    async def _forward_small(self) -> None:
        """Amendments of archived clips and sealed custody segments: small,
        write-once, sent one at a time between the clips."""
        sent = False
        try:
            for a in self.catalog.due_amendments():
                signed = await asyncio.to_thread(read_signed, self.staging.resolve(a.path))
                key = f"{a.archive_key}{amendment_suffix(a.id)}"
                await self._put_bytes(key, signed.body)
                await self._put_bytes(key + SIG_SUFFIX, signed.signature)
                with self.catalog.group():  # archived and its lock asked for: one transaction, or a crash between
                    self.catalog.amendment_archived(a.id, key, event(  # would leave it unasked for good
                        "amendment_archived", sha256=a.sha256, key=key, amendment_sha256=signed.sha256,
                        signature_sha256=hashlib.sha256(signed.signature).hexdigest()))
                    self._locked(self.locks.amendment_archived, a.sha256, a.archive_key, json.loads(signed.body),
                                 key)  # only extends
                self._locks_at = 0.0
                sent = True
            for name in self.catalog.due_segments():
                data = await asyncio.to_thread((self.custody_dir / name).read_bytes)
                key = f"custody/{self.cfg.station.id}/{name}"
                await self._put_bytes(key, data)
                with self.catalog.group():
                    self.catalog.segment_archived(name)
                    self._locked(self.locks.custody_archived, name)
                self._locks_at = 0.0
                log.info("custody segment %s archived as %s", name, key)
                sent = True
        except OSError as e:  # our own copy of a small object: kept, tried again next round
            log.error("evidence metadata cannot be read from the station: %s", e)
        except ArchiveError as e:
            log.warning("forwarding evidence metadata failed: %s", e)
            f = self.cfg.forward
            self._small_backoff_s = min(f.retry_max_s, max(f.retry_initial_s, 2 * self._small_backoff_s))
            self._small_probe_at = time.time() + (f.refused_retry_s if e.permanent else self._small_backoff_s)
            self._station_fault(e)
            return
        if sent:
            self._small_backoff_s = 0.0
            self._archive_works()

    async def _apply_locks(self) -> None:
        """Bring the archive's Object Lock dates and legal holds to what the
        catalog wants; what it does not take is tried again after backoff."""
        rows = self.locks.due()
        if rows:
            self.locks.record(await asyncio.to_thread(self.locks.push, rows))
        nxt = self.catalog.next_lock_at()
        self._locks_at = time.time() + SMALL_EVERY_S if nxt is None else max(nxt, time.time() + 0.05)

    async def flush_evidence(self) -> bool:
        """Archive every queued custody segment, checkpoint and amendment now
        (a clean stop); False if the archive did not take them all."""
        before = None
        while (due := len(self.catalog.due_segments()) + len(self.catalog.due_amendments())) and due != before:
            before = due
            await self._forward_small()
        if self.locks.on and (rows := self.locks.due(float("inf"), quiet=True)):  # and every lock they want
            due += len(self.locks.record(await asyncio.to_thread(self.locks.push, rows)))
        return not due

    async def _put_bytes(self, key: str, data: bytes) -> Receipt:
        return await asyncio.to_thread(self._put_bytes_locked, key, data)

    def _put_bytes_locked(self, key: str, data: bytes) -> Receipt:
        # one small put at a time: a put whose task was cancelled (a stop)
        # still runs in its thread, and the stop's own flush must find its
        # object there, not race it into a second version
        with self._small_lock:
            return self.archive.put_bytes(key, data)

    def _read_and_put(self, clips: list[ClipRow]) -> list[Receipt | ArchiveError | str]:
        """Upload *clips* together; for each its receipt, its archive error,
        or why there can be no archive object for it."""
        objs = [self._object(c) for c in clips]
        sent = iter(self.archive.put_many([o for o in objs if not isinstance(o, str)]))
        return [o if isinstance(o, str) else next(sent) for o in objs]

    def _object(self, clip: ClipRow) -> ArchiveObject | str:
        """The archive object for *clip*, or why there can be none."""
        if clip.staged_path is None or clip.manifest_path is None or clip.archive_key is None:
            return "no staged copy or manifest"
        try:
            manifest = read_signed(self.staging.resolve(clip.manifest_path))
            doc = json.loads(manifest.body)
        except (OSError, ValueError) as e:  # gone, unreadable, or not the JSON the stamper wrote
            return f"manifest unreadable: {e}"
        # retention by class (gateway/evidence/retention.py): the manifest's category, importance, case
        until = clip_until(self.cfg, doc)
        sm2 = self.staging.resolve(clip.manifest_path + ".sm2.sig")  # 国密 (evidence/gm.py)
        try:
            gm: tuple[tuple[str, bytes], ...] = ((MANIFEST_SUFFIX + ".sm2.sig", sm2.read_bytes()),)
        except FileNotFoundError:
            gm = ()
        if until is not None:
            self._lock_facts[clip.sha256] = (until, (MANIFEST_SUFFIX, MANIFEST_SUFFIX + SIG_SUFFIX,
                                                     *(g[0] for g in gm)), doc.get("case_number"))
        return ArchiveObject(
            retain_until=until,
            key=clip.archive_key, source=self.staging.resolve(clip.staged_path), sha256=clip.sha256, size=clip.size,
            extras=((MANIFEST_SUFFIX, manifest.body), (MANIFEST_SUFFIX + SIG_SUFFIX, manifest.signature), *gm),
            metadata=(("officer", clip.officer or ""), ("serial", clip.serial), ("station", self.cfg.station.id),
                      ("original-path", clip.display), ("manifest-sha256", clip.manifest_sha256 or "")))

    async def _forward(self, clips: list[ClipRow]) -> None:
        """Upload a batch of clips (one clip when large): one thread hand-off
        for reading their manifests and the upload, one archive barrier."""
        keys = [c.archive_key or f"unstamped/{c.sha256}" for c in clips]
        self.catalog.start_forward_many([(c.sha256, k) for c, k in zip(clips, keys, strict=True)])
        started = time.monotonic()
        try:
            outcomes = await asyncio.to_thread(self._read_and_put, clips)
        except Exception as e:  # a bug, not the archive: keep the clips queued, say so loudly
            log.exception("unexpected error forwarding %d clips from %s", len(clips), clips[0].sha256[:12])
            outcomes = [ArchiveUnavailable(self.archive.describe(), f"internal error: {e!r}")] * len(clips)
        for clip, key, out in zip(clips, keys, outcomes, strict=True):
            await self._settle(clip, key, out, time.monotonic() - started)

    async def _settle(self, clip: ClipRow, key: str, out: Receipt | ArchiveError | str, took_s: float) -> None:
        """Record what the upload of *clip* came to."""
        facts = self._lock_facts.pop(clip.sha256, None)
        if isinstance(out, str):  # the station's own manifest (or copy) is gone or spoiled: a pull again cures it
            self.catalog.quarantine(clip.sha256, out, event("quarantined", sha256=clip.sha256, key=key, error=out,
                                                            reason="manifest_fault"), reason="manifest_fault")
            return
        if isinstance(out, ArchiveConflict) and await asyncio.to_thread(self._ours_already, clip, out):
            self.catalog.archived(clip.sha256, event(
                "clip_archived", sha256=clip.sha256, key=key, size=clip.size, partial=bool(clip.partial),
                already=True))
            log.warning("clip %s was already archived under %s with a manifest this station signed (the "
                        "catalog had forgotten it): kept as archived, the new manifest is not sent",
                        clip.sha256[:12], key)
            self._lock_archived(clip, key, facts, stored=False)
            self._archive_works()
            return
        if isinstance(out, ArchiveError):
            self._failed(clip, key, out)
            return
        self._record_archived(clip.sha256, (
            event("forwarded", sha256=clip.sha256, key=key, existed=out.existed),
            event("verified", sha256=clip.sha256, key=key, verified_by=out.verified_by),
            event("clip_archived", sha256=clip.sha256, key=key, size=clip.size, partial=bool(clip.partial),
                  duration_s=round(took_s, 3))))
        if facts is not None:  # recorded in the group commit, with the clip archived
            self._to_lock[clip.sha256] = (clip, key, facts, not out.existed)
        self._archive_works()

    def _lock_archived(self, clip: ClipRow, key: str, facts: tuple[datetime, tuple[str, ...], str | None] | None,
                       stored: bool) -> None:
        """What proves something about the clip is kept as long as the clip
        (evidence/retention.py); inside a group commit, in its transaction."""
        if facts is None:
            return
        self._locked(self.locks.clip_archived, clip.sha256, key, facts[1], facts[0], facts[2], stored=stored)
        self._locks_at = 0.0

    def _locked(self, record: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Retention's bookkeeping of what was just archived (atomic on its own: ``Locks._atomic``)."""
        try:
            record(*args, **kwargs)
        except Exception:  # the upload stands; the bookkeeping of its lock is a bug to see, not a stop
            log.exception("recording the retention lock of %s", args[0] if args else "?")

    def _record_archived(self, sha256: str, events: tuple[Event, ...]) -> None:
        """Group commit: uploads that finish within ``GROUP_S`` of each other
        are recorded in one transaction (one custody fsync, one commit). Until
        then the clip is ``forwarding``, which a crash turns back into
        ``stamped``: the upload is then repeated, idempotently."""
        if not self._archived:
            asyncio.get_running_loop().call_later(GROUP_S, self._commit_archived)
        self._archived.append((sha256, events))

    def _commit_archived(self) -> None:
        done, self._archived = self._archived, []
        try:
            with self.catalog.group():
                for sha256, events in done:
                    lock = self._to_lock.pop(sha256, None)
                    try:
                        self.catalog.archived(sha256, *events)
                    except TransitionRefused as e:  # a bug, not the archive: the others are still recorded
                        log.error("recording %s as archived: %s", sha256[:12], e)
                        continue
                    if lock is not None:
                        self._lock_archived(*lock)
        except Exception:  # the catalog itself failed: the clips stay forwarding, and recovery requeues them
            log.exception("recording %d archived clips failed", len(done))

    def _ours_already(self, clip: ClipRow, e: ArchiveConflict) -> bool:
        """Is the conflict only a second manifest for a clip this station
        archived before (its catalog rolled back and it stamped again)? True
        when the media under the key is this clip's bytes and the archived
        manifest is signed by a station key and names this very clip."""
        key = clip.archive_key or ""
        if not e.key.endswith(key + MANIFEST_SUFFIX) or not self.station_keys:
            return False
        try:
            if self.archive.sha256(key) != clip.sha256:
                return False
            with self.archive.read(e.key) as f:
                body = f.read(1 << 20)
            with self.archive.read(e.key + SIG_SUFFIX) as f:
                sig = f.read(1024)
            doc = json.loads(body)
        except (ArchiveError, OSError, ValueError):
            return False
        signed = any(verify(k, body, sig) for k in self.station_keys)
        return signed and isinstance(doc, dict) and (doc.get("clip") or {}).get("sha256") == clip.sha256

    def _failed(self, clip: ClipRow, key: str, e: ArchiveError) -> None:
        if e.scope == "clip" and (e.permanent or clip.attempts + 1 >= MAX_VERIFY_FAILURES):
            why = str(e) if e.permanent else f"failed {clip.attempts + 1} times: {e}"
            self.live.last_error, self.live.last_error_reason = why, "quarantine"
            # the reason says whose copy failed: the station's staged copy (source_fault) is cured by a
            # pull again at the next dock; the archive's (a conflict, a bad key, no good read-back) is final
            self.catalog.quarantine(clip.sha256, why, event("quarantined", sha256=clip.sha256, key=key, error=why,
                                                            reason=e.reason), reason=e.reason)
            return
        if e.scope == "station" and e.permanent:
            self._station_fault(e)
            self.catalog.retry_later(clip.sha256, str(e), self._probe_at, counts=False)
            return
        f = self.cfg.forward
        delay = min(f.retry_max_s, f.retry_initial_s * 2 ** min(clip.attempts, 30)) * random.uniform(0.8, 1.2)
        self.catalog.retry_later(clip.sha256, str(e), time.time() + delay)
        if e.scope == "station":
            self._station_fault(e)
        log.warning("forwarding %s failed (%s); retry in %.1fs", clip.sha256[:12], e, delay)

    def _station_fault(self, e: ArchiveError) -> None:
        """The archive is down or refuses us: alarm once, not per clip."""
        self.live.last_error, self.live.last_error_reason = str(e), e.reason
        if e.permanent:
            self._probe_at = time.time() + self.cfg.forward.refused_retry_s
            if self.live.archive_refused is None:
                self.live.archive_refused = str(e)
                self.live.archive_up = False
                self.catalog.emit("archive_refused", archive=self.archive.describe(), error=str(e),
                                  reason=e.reason, retry_s=self.cfg.forward.refused_retry_s)
            return
        if self.live.archive_up is not False:
            self.live.archive_up = False
            self.catalog.emit("archive_down", archive=self.archive.describe(), error=str(e))

    def _archive_works(self) -> None:
        if self.live.archive_up is not True:
            if self.live.archive_up is False:
                after = "refused" if self.live.archive_refused is not None else "down"
                self.catalog.emit("archive_up", archive=self.archive.describe(), after=after)
            self.live.archive_up = True
            self.live.archive_refused = None
            self.wake()  # the queue held back while refused goes out now


def _cpus() -> int:
    """CPUs this process may run on (its affinity, as systemd's CPUAffinity= sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
