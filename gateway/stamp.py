"""The stamper worker: staged clips become signed evidence, assignments
become manifest content or signed amendments, custody segments rotate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from drivers.profiles import Registry
from gateway.catalog import Catalog, ClipRow
from gateway.config import Config
from gateway.custody import CustodyLog
from gateway.events import Events
from gateway.evidence import (
    MANIFEST_SUFFIX,
    build_amendment,
    build_manifest,
    capture_time,
    gps_fix,
    iso,
    profile_for,
    sign_document,
    write_signed,
)
from gateway.evidence import _sibling as sibling
from gateway.keys import clip_key
from gateway.probe import ContainerFacts, probe
from gateway.signing import Signer
from gateway.staging import Staging
from gateway.supervise import wait_event

log = logging.getLogger(__name__)
PROBE_BATCH = 4
IDLE_POLL_S = 2.0


class Stamper:
    def __init__(self, cfg: Config, catalog: Catalog, staging: Staging, registry: Registry, signer: Signer,
                 custody: CustodyLog, events: Events, on_ready: Callable[[], None]) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.staging = staging
        self.registry = registry
        self.signer = signer
        self.custody = custody
        self.events = events
        self.on_ready = on_ready
        self._wake = asyncio.Event()
        self.manifests = staging.root / "manifests"
        self.amendments = staging.root / "amendments"

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.amendments.mkdir(parents=True, exist_ok=True)
        for seg in self.custody.sealed():  # sealed before a crash, maybe not yet queued
            self.catalog.add_segment(seg.name)
        while True:
            self._wake.clear()
            self.process_assignments()
            batch = self.catalog.due_for_stamp(PROBE_BATCH)
            if batch:
                # probe side by side (threads), then sign one by one: the custody
                # sequence number in each manifest must be the one its entry gets
                facts = await asyncio.gather(*(asyncio.to_thread(
                    probe, self.staging.resolve(c.staged_path or ""), c.path.decode("utf-8", "backslashreplace"))
                    for c in batch))
                for clip, f in zip(batch, facts, strict=True):
                    self.stamp(clip, f)
                self.rotate()
                continue
            self.rotate()
            # woken by every staged clip; the timeout only picks up assignments
            # made by `dockgate assign` in another process
            await wait_event(self._wake, IDLE_POLL_S)

    def rotate(self, force: bool = False) -> None:
        sealed = self.custody.seal() if force else self.custody.maybe_rotate()
        if self.custody.last_sealed is not None:
            self.catalog.add_segment(self.custody.last_sealed.name)
            self.custody.last_sealed = None
        if sealed is not None:
            self.on_ready()

    def key_for(self, clip: ClipRow, dock: dict[str, object], captured: float) -> str:
        if clip.archive_key:  # decided once: a retry never files a clip elsewhere
            return clip.archive_key
        unit = dock.get("unit")
        return clip_key(self.cfg.archive.key_template, sha256=clip.sha256, officer=clip.officer,
                        serial=clip.serial, station=self.cfg.station.id,
                        unit=unit if isinstance(unit, str) else None,
                        original_name=clip.path.decode("utf-8", "backslashreplace"), captured=captured)

    def stamp(self, clip: ClipRow, facts: ContainerFacts) -> None:
        """Sign and record one clip. Synchronous on purpose: nothing else may
        append to the custody log between choosing the seq and using it."""
        name = clip.path.decode("utf-8", "backslashreplace")
        dock = self.catalog.dock(clip.dock_id) if clip.dock_id else None
        dock = dock or {}
        profile = profile_for(self.registry, dock)
        gps = None
        marked = False
        if profile is not None:
            for sc in profile.sidecars:
                found = sibling(self.catalog, self.staging.root, clip, sc.suffix)
                if found is None:
                    continue
                if sc.kind == "gps":
                    gps = gps_fix(found.read_text("ascii", "replace"))
                elif sc.kind == "mark":
                    marked = True
        when = capture_time(facts, clip, profile, dock.get("clock_drift_s"))
        assignment = self.catalog.assignment_for(clip.officer, when["_ts"])
        key = self.key_for(clip, dock, when["_ts"])
        doc, ts = build_manifest(self.cfg, clip, dock, facts, profile, assignment, gps, marked, key,
                                 self.custody.seq + 1, self.signer.key_id)
        signed = sign_document(doc, self.signer)
        path = self.manifests / f"{clip.sha256}{MANIFEST_SUFFIX}"
        write_signed(path, signed)
        self.catalog.mark_stamped(clip.sha256, key, self.staging.relative(path), signed.sha256,
                                  facts.truncated, ts, assignment.id if assignment else None)
        self.events.emit("stamped", sha256=clip.sha256, manifest_sha256=signed.sha256, key=key,
                         partial=facts.truncated, capture_utc=iso(ts),
                         case_number=assignment.case_number if assignment else None)
        if not doc["capture_time"]["plausible"]:
            self.events.emit("implausible_time", sha256=clip.sha256, key=key, serial=clip.serial, path=name,
                             recorder_clock=doc["capture_time"]["recorder_clock"],
                             source=doc["capture_time"]["source"])
        if facts.truncated:
            self.events.emit("partial_clip", sha256=clip.sha256, key=key, serial=clip.serial,
                             path=name, reason=facts.reason)
        self.on_ready()

    def process_assignments(self) -> None:
        for a in self.catalog.new_assignments():
            self.events.emit("assigned", assignment=a.id, officer=a.officer, start=iso(a.from_ts),
                             end=iso(a.to_ts), case_number=a.case_number, proof_object=a.proof,
                             category=a.category)
            for clip in self.catalog.clips_to_amend(a):
                doc = build_amendment(clip, a, self.custody.seq + 1, self.signer.key_id)
                signed = sign_document(doc, self.signer)
                path: Path = self.amendments / f"{clip.sha256}-{a.id}.json"
                write_signed(path, signed)
                self.catalog.add_amendment(clip.sha256, a.id, self.staging.relative(path))
                self.events.emit("amended", sha256=clip.sha256, assignment=a.id,
                                 amendment_sha256=signed.sha256, manifest_sha256=clip.manifest_sha256)
            self.catalog.mark_assignment_processed(a.id)
            self.on_ready()
