"""The stamper worker: staged clips become signed evidence, assignments
become manifest content or signed amendments, custody segments rotate.

Poison pills stop here, not the station (gateway/values.py): an assignment
that breaks the rules every door applies (a catalog written past the doors,
or before them) is set aside with one ``assignment_set_aside`` event and is
never applied; a clip that cannot be stamped (its recorder's data cannot be
made into a manifest) is quarantined with one ``quarantined`` event, after
the batch's other clips are recorded. The worker goes on either way: a
supervised worker that keeps crashing would stop the daemon, and a
restarted one would meet the same record again."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from drivers.profiles import Registry
from gateway.archive.layout import clip_key
from gateway.catalog import Assignment, Catalog, ClipRow, DockRow, Event, event
from gateway.catalog.records import MANIFESTS_DIR, manifest_path_of
from gateway.config import Config
from gateway.durable import write_many
from gateway.errors import StagingFull
from gateway.evidence.checkpoint import SIG_SUFFIX as CP_SIG_SUFFIX
from gateway.evidence.checkpoint import Checkpoint, read_checkpoint
from gateway.evidence.container import ContainerFacts, probe
from gateway.evidence.custody import CustodyLog
from gateway.evidence.manifest import (
    build_amendment,
    build_manifest,
    capture_time,
    gps_fix,
    iso,
    profile_for,
    sibling,
    sign_document,
    signed_files,
    write_signed,
)
from gateway.evidence.signing import Signer
from gateway.pipeline.events import CUSTODY_EVENTS
from gateway.pipeline.staging import Staging
from gateway.process.runfiles import take_seal_request
from gateway.process.supervise import Worker
from gateway.values import ValueRefused, check_assignment, drift_ok, shown

log = logging.getLogger(__name__)
PROBE_THREADS = 4
#: clips stamped per step: probed side by side, their manifests written with
#: one barrier and recorded in one catalog transaction
BATCH = 256
IDLE_POLL_S = 2.0
#: a batch whose manifests found staging full is tried again this often
FULL_WAIT_S = 2.0


@dataclass(frozen=True)
class _Stamped:
    """A clip signed and not yet recorded: its files, its move, its events."""

    files: list[tuple[Path, bytes, int]]
    move: tuple[str, str, str, str, bool, float, int | None]
    events: list[Event]
    #: what the manifest says that the review searches and counts by (``Catalog.stamped``)
    said: dict[str, Any]


class Stamper(Worker):
    def __init__(self, cfg: Config, catalog: Catalog, staging: Staging, registry: Registry, signer: Signer,
                 custody: CustodyLog, on_ready: Callable[[], None]) -> None:
        super().__init__()
        self.cfg = cfg
        self.catalog = catalog
        self.staging = staging
        self.registry = registry
        self.signer = signer
        self.custody = custody
        self.on_ready = on_ready
        #: the newest signed checkpoint (MQTT publishes it retained for witnesses)
        self.latest_checkpoint: Checkpoint | None = None
        self.manifests = staging.root / MANIFESTS_DIR
        self.amendments = staging.root / "amendments"
        #: 国密 (evidence/gm.py): SM3 digest in the manifest and an SM2 signature beside it
        self.sm2 = None
        if cfg.evidence.national_crypto and cfg.evidence.sm2_key_file is not None:
            from gateway.evidence.gm import load_sm2_signer

            self.sm2 = load_sm2_signer(cfg.evidence.sm2_key_file)

    async def start(self) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.amendments.mkdir(parents=True, exist_ok=True)
        # sealed before a crash, maybe not yet queued: segments, then the checkpoints after them
        for path in sorted(self.custody.sealed()) + sorted(self.custody.dir.glob("checkpoint-*.json*")):
            self.catalog.add_segment(path.name)
        newest = sorted(self.custody.dir.glob("checkpoint-*.json"))
        if newest:
            self.latest_checkpoint = read_checkpoint(newest[-1])
        # what a crash left open is sealed now, with a checkpoint, and goes out
        self.rotate(force=True)

    async def step(self) -> float:
        if take_seal_request(self.cfg.run_dir):  # `dockgate case export` wants the record sealed now
            log.info("custody seal requested")
            self.rotate(force=True)
        self.process_assignments()
        batch = self.catalog.due_for_stamp(BATCH)
        if batch:
            # probe side by side (threads), then sign in order: the custody
            # sequence number in each manifest must be the one its entry gets
            facts = await asyncio.to_thread(self._probe_all, batch)
            try:
                self.stamp_batch(batch, facts)
            except StagingFull as e:  # uploads and purging make room; a crash loop would stop the station
                log.warning("stamping waits for staging room: %s", e)
                return FULL_WAIT_S
        self.rotate()
        # woken by every staged clip; the timeout only picks up assignments
        # made by `dockgate assign` in another process
        return 0 if batch else IDLE_POLL_S

    def rotate(self, force: bool = False) -> None:
        """Seal the open custody segment when due (or now), and queue every
        sealed one for the archive followed by its signed checkpoint."""
        if force:
            self.custody.seal()
        else:
            self.custody.maybe_rotate()
        pending, self.custody.sealed_pending = self.custody.sealed_pending, []
        for path, cp in pending:  # the custody log signed each one's checkpoint as it sealed it
            self.catalog.add_segment(path.name)
            self.catalog.add_segment(cp.name)
            self.catalog.add_segment(cp.name + CP_SIG_SUFFIX)
            self.latest_checkpoint = cp
            self.catalog.emit("checkpoint", seq=cp.doc["seq"], head=cp.doc["head"], name=cp.name)
        if pending:
            self.on_ready()

    def key_for(self, clip: ClipRow, dock: DockRow | None, captured: float) -> str:
        if clip.archive_key:  # decided once: a retry never files a clip elsewhere
            return clip.archive_key
        return clip_key(self.cfg.archive.key_template, sha256=clip.sha256, officer=clip.officer,
                        serial=clip.serial, station=self.cfg.station.id, unit=dock.unit if dock else None,
                        original_name=clip.display, captured=captured)

    def _probe_all(self, batch: list[ClipRow]) -> list[ContainerFacts]:
        with ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="probe") as ex:
            return list(ex.map(self._probe, batch))

    def _probe(self, clip: ClipRow) -> ContainerFacts:
        """Container facts are hints: a file whose headers make the probe
        fail is a clip without them, as one the library cannot parse is."""
        try:
            return probe(self.staging.resolve(clip.staged_path or ""), clip.display)
        except Exception as e:
            log.warning("cannot probe %s: %s", clip.display, e)
            return ContainerFacts(reason=f"probe failed: {type(e).__name__}: {e}"[:300])

    def _dock(self, dock_id: int) -> DockRow | None:
        """The dock a clip came from, as stamping may use it: a measured
        drift that is no clock reading (values.drift_ok: a recorder answering
        year 9999) is not applied; the manifest then says the drift is
        unknown, and the capture time whether it is plausible."""
        dock = self.catalog.dock(dock_id)
        if dock is not None and not drift_ok(dock.clock_drift_s):
            log.warning("dock %d: a recorder clock %s s off is no clock reading; its clips are stamped "
                        "without a drift correction", dock_id, dock.clock_drift_s)
            dock = replace(dock, clock_drift_s=None)
        return dock

    def stamp_batch(self, clips: list[ClipRow], facts: list[ContainerFacts]) -> None:
        """Sign and record clips. Synchronous on purpose: nothing else may
        append to the custody log between choosing the seqs and using them
        (each clip's ``stamped`` event is the first its transition writes, and
        its other custody events follow it). The manifests are written with
        one barrier, then all the moves are one transaction."""
        seq = self.custody.seq + 1
        stamped = []
        failed: list[tuple[ClipRow, str]] = []
        docks: dict[int, DockRow | None] = {}  # a batch's clips mostly come from one dock
        for clip, f in zip(clips, facts, strict=True):
            if clip.dock_id and clip.dock_id not in docks:
                docks[clip.dock_id] = self._dock(clip.dock_id)
            try:
                s = self._prepare(clip, f, seq, docks.get(clip.dock_id) if clip.dock_id else None)
            except Exception as e:  # this clip's own data: it is set aside below, the batch goes on
                log.exception("cannot stamp %s (%s)", clip.display, clip.sha256)
                failed.append((clip, f"cannot stamp: {type(e).__name__}: {e}"[:500]))
                continue
            seq += sum(1 for e in s.events if e.type in CUSTODY_EVENTS)
            stamped.append(s)
        files = [file for s in stamped for file in s.files]
        try:
            write_many(files)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # nothing is recorded: the clips stay staged and are stamped once there is room
            raise StagingFull(self.staging.root, self.staging.free_bytes(),
                              sum(len(data) for _, data, _ in files) + self.staging.reserve_bytes) from e
        with self.catalog.group():
            for s in stamped:
                self.catalog.stamped(*s.move, *s.events, **s.said)
        # after the batch's moves: their custody positions were chosen before. The reason says whose
        # fault: the station's staged copy gone (source_fault: a pull again at the next dock cures it),
        # else the clip's own data, which a pull again would bring back as it is (final)
        for clip, why in failed:
            reason = "unstampable" if self.staging.resolve(clip.staged_path or "").is_file() else "source_fault"
            self.catalog.quarantine(clip.sha256, why, event(
                "quarantined", sha256=clip.sha256, key=None, error=why, reason=reason, serial=clip.serial,
                path=clip.display), reason=reason)
        self.on_ready()

    def _prepare(self, clip: ClipRow, facts: ContainerFacts, seq: int, dock: DockRow | None) -> _Stamped:
        profile = profile_for(self.registry, dock)
        gps = None
        marked = False
        for sc in profile.sidecars if profile is not None else ():
            found = sibling(self.catalog, self.staging.root, clip, sc.suffix)
            if found is None:
                continue
            if sc.kind == "gps":
                gps = gps_fix(found.read_text("ascii", "replace"))
            elif sc.kind == "mark":
                marked = True
        when = capture_time(facts, clip, profile, dock.clock_drift_s if dock else None)
        assignment = self._usable(self.catalog.assignment_for(clip.officer, when["_ts"]))
        key = self.key_for(clip, dock, when["_ts"])
        doc, ts = build_manifest(self.cfg, clip, dock, facts, profile, assignment, gps, marked, key,
                                 seq, self.signer.key_id)
        if self.sm2 is not None:
            from gateway.evidence.gm import sm3_file

            doc["clip"]["sm3"] = sm3_file(self.staging.resolve(clip.staged_path or ""))
            doc["sm2_key_id"] = self.sm2.key_id
        signed = sign_document(doc, self.signer)
        path = self.staging.root / manifest_path_of(clip.sha256)
        files = signed_files(path, signed)
        if self.sm2 is not None:
            from gateway.evidence.gm import SM2_SIG_SUFFIX

            files.append((path.with_name(path.name + SM2_SIG_SUFFIX), self.sm2.sign(signed.body), 0o444))
        # the entry indexes every object of the clip by hash (gateway/evidence/graph.py)
        events = [event("stamped", sha256=clip.sha256, manifest_sha256=signed.sha256, key=key,
                        signature_sha256=hashlib.sha256(signed.signature).hexdigest(),
                        sm2_signature_sha256=hashlib.sha256(files[2][1]).hexdigest() if len(files) > 2 else None,
                        partial=facts.truncated, capture_utc=iso(ts),
                        case_number=assignment.case_number if assignment else None)]
        if not doc["capture_time"]["plausible"]:
            events.append(event("implausible_time", sha256=clip.sha256, key=key, serial=clip.serial,
                                path=clip.display, recorder_clock=doc["capture_time"]["recorder_clock"],
                                source=doc["capture_time"]["source"]))
        if facts.truncated:
            events.append(event("partial_clip", sha256=clip.sha256, key=key, serial=clip.serial,
                                path=clip.display, reason=facts.reason))
        return _Stamped(files, (clip.sha256, key, self.staging.relative(path), signed.sha256, facts.truncated, ts,
                                assignment.id if assignment else None), events,
                        {"important": bool(doc["importance"]["important"]), "category": doc["category"],
                         "cased": doc["case_number"] is not None, "duration_s": facts.duration_s})

    @staticmethod
    def _refusal(a: Assignment) -> ValueRefused | None:
        """Why an assignment from the catalog breaks the doors' rules, if it does."""
        try:
            check_assignment(a.officer, a.from_ts, a.to_ts, a.case_number, a.proof, a.category, a.important)
        except ValueRefused as e:
            return e
        return None

    def _usable(self, a: Assignment | None) -> Assignment | None:
        """An assignment a manifest may carry: one set aside is not applied
        (the catalog skips those already set aside, so an older one covering
        the same time applies; this catches one not yet processed)."""
        return None if a is None or self._refusal(a) is not None else a

    def process_assignments(self) -> None:
        for a in self.catalog.new_assignments():
            refused = self._refusal(a)
            if refused is not None:
                self._set_aside(a, str(refused), refused.field)
                continue
            amended: list[str] = []
            try:
                self._apply_assignment(a, amended)
            except Exception as e:  # this assignment cannot be applied: set aside, the worker goes on
                log.exception("cannot apply assignment %d", a.id)
                self._set_aside(a, f"cannot apply: {type(e).__name__}: {e}"[:500], None, amended=len(amended))
                continue
            self.catalog.assignment_processed(a.id)
            self.on_ready()

    def _apply_assignment(self, a: Assignment, amended: list[str]) -> None:
        """The ``assigned`` event, then a signed amendment for each clip
        already stamped in its span (their SHA-256s go into *amended*)."""
        self.catalog.emit("assigned", assignment=a.id, officer=a.officer, start=iso(a.from_ts),
                          end=iso(a.to_ts), case_number=a.case_number, proof_object=a.proof,
                          category=a.category)
        for clip in self.catalog.clips_to_amend(a):
            # amendments of a clip form a chain: dropping or reordering one breaks it
            before = self.catalog.newest_amendment_path(clip.sha256)
            previous = hashlib.sha256(self.staging.resolve(before).read_bytes()).hexdigest() if before else None
            doc = build_amendment(clip, a, self.custody.seq + 1, self.signer.key_id, previous)
            signed = sign_document(doc, self.signer)
            path: Path = self.amendments / f"{clip.sha256}-{a.id}.json"
            write_signed(path, signed)
            self.catalog.add_amendment(clip.sha256, a.id, self.staging.relative(path), event(
                "amended", sha256=clip.sha256, assignment=a.id, amendment_sha256=signed.sha256,
                signature_sha256=hashlib.sha256(signed.signature).hexdigest(), case_number=a.case_number,
                previous_sha256=previous, manifest_sha256=clip.manifest_sha256))
            amended.append(clip.sha256)

    def _set_aside(self, a: Assignment, reason: str, field: str | None, amended: int | None = None) -> None:
        """Processed without being applied (or, after *amended* amendments,
        no further), with one event on the custody record naming it and its
        values as the catalog holds them."""
        log.warning("assignment %d set aside: %s", a.id, reason)
        self.catalog.assignment_set_aside(a.id, event(
            "assignment_set_aside", assignment=a.id, reason=reason, field=field, amended=amended,
            officer=shown(a.officer), from_ts=shown(a.from_ts), to_ts=shown(a.to_ts),
            case_number=shown(a.case_number), proof_object=shown(a.proof), category=shown(a.category),
            important=a.important))
