"""A station with a year of history (issue 30), built through dockgate's own code paths.

``build(root, Size(...))`` writes a simulated station (``dockgate sim station``'s
config) and fills it day by day as a precinct would: every day each recorder
docks once, worn by one of the officers; each dock is the catalog's real
transitions in one group commit (``open_dock``, ``identify_dock``,
``discover``, ``begin_pull_many``, ``finish_pull``, ``stamped``,
``start_forward_many``, ``archived``, ``released``, ``purged``,
``close_dock``), with the events the daemon writes for them, so the custody
log gets its signed entries and rotates into sealed segments with signed
checkpoints, which the catalog records and marks archived as the forwarder
would. Every clip has a real signed manifest in staging (``build_manifest``,
``sign_document``). Cases are assignments made after their clips were
stamped; the stamper's own ``process_assignments`` turns them into signed
amendments (about 20 clips per case), marked archived as the forwarder
would. The newest ``media_days`` days keep their media in staging (tiny,
unique bytes per clip); older clips are archived and purged, as on a real
station.

What it does not model (docs/performance.md, "A year of history"):

- media bytes: clips are a few hundred bytes, and no archive holds them (the
  archive folder gets the custody segments and checkpoints only), so nothing
  here measures bytes moved, and ``verify`` of the media is not meaningful
  on this station;
- the drivers, detection and the copy engine (pulls are recorded, not made),
  sidecars (GPS, recorder marks), sightings, interrupted pulls, quarantines,
  pulls again, timestamp tokens;
- retention locks and legal holds, unless ``Size.object_lock``
  (``--object-lock``): then the catalog records them through retention's own
  rule (``Locks``) as a station on S3 with Object Lock would: every clip
  stored locked for six months (retention by class is off, so amendments
  raise no date), one case in 50 held, and an archive that takes every
  extension and hold at once (none left pending); the station's own archive
  is still the local folder;
- the web's own custody events (views, searches) and MQTT;
- the outbox's events carry the simulated time of their dock (the custody
  log's entries the time the generator wrote them); at the end the outbox
  is pruned to ``evidence.events_keep_days`` as the daemon's housekeeping
  would have over the year (``Catalog.prune_events``, then its free pages
  given back);
- manifests and amendments written without their fsync (``write_many``'s
  durable path is the daemon's; 250 000 fsyncs would take the generator's
  time, not the station's), and capture times from the generator, not from
  probing media.

Run as a script for a station on disk: ``python bench/history.py DIR``
(defaults: 250 000 clips, 10 000 amendments, 365 days, 25 recorders, 60
officers, 500 cases; ``--quick``: 5 000 clips, 200 amendments, 30 days).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from drivers.base import ClipRef, DockedDevice, Identity
from drivers.ids import UsbIds
from drivers.profiles import Registry
from gateway.archive.layout import clip_key
from gateway.catalog import Catalog, ClipRow, DockRow, event
from gateway.cli.simstation import write_station
from gateway.config import Config, load_config
from gateway.evidence.container import ContainerFacts
from gateway.evidence.custody import CustodyLog
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX, build_manifest, read_signed, sign_document
from gateway.evidence.retention import Locks
from gateway.evidence.signing import Signer, load_signer
from gateway.pipeline.events import Journal
from gateway.pipeline.housekeep import PRUNE_BATCH
from gateway.pipeline.staging import Staging
from gateway.pipeline.stamp import Stamper

DAY = 86400.0
#: what an archived clip is locked for with ``--object-lock`` (the shortest class the config allows)
HALF_YEAR = 183 * DAY
CATEGORIES = ("theft", "traffic", "dispute", "assault", "noise", "fraud")


@dataclass(frozen=True)
class Size:
    clips: int = 250_000
    amendments: int = 10_000
    days: int = 365
    recorders: int = 25
    officers: int = 60
    cases: int = 500
    #: the newest days whose media stay in staging
    media_days: int = 2
    #: retention locks and legal holds in the catalog, as on S3 with Object Lock (module docstring)
    object_lock: bool = False


QUICK = Size(clips=5_000, amendments=200, days=30, recorders=25, officers=60, cases=10)


@dataclass
class History:
    config: Path
    size: Size
    seconds: float = 0.0
    #: officer -> the days (UTC day start) they docked
    officer_days: dict[str, list[float]] = field(default_factory=dict)
    cases: list[str] = field(default_factory=list)
    #: (officer, start, end, case) of each case's assignment
    case_spans: list[tuple[str, float, float, str]] = field(default_factory=list)


class _TakesEveryLock:
    """An archive's Object Lock that takes every extension and hold (``Locks.push``)."""

    def extend_retention(self, key: str, until: object) -> object:
        return until

    def set_legal_hold(self, key: str, on: bool) -> None:
        pass


class _Unsynced(Journal):
    """The custody log's entries as the daemon writes them, without an fsync per transaction."""

    def sync(self) -> None:
        pass


def officer_id(n: int) -> str:
    return f"{100000 + n:07d}"


def build(root: Path, size: Size = Size(), *, seed: int = 30, end: float | None = None,
          progress: bool = False) -> History:
    """A station at *root*/station with *size*'s history, ending at *end*
    (default: now). Deterministic for a *seed*."""
    t0 = time.monotonic()
    rnd = random.Random(seed)
    config = write_station(root / "station", slots=max(size.recorders, 1), reserve_bytes=0,
                           custody_rotate_s=86400.0)
    cfg = load_config(config)
    out = History(config, size)
    signer = load_signer(cfg.evidence.signing_key_file)
    custody = CustodyLog(cfg.custody_dir, signer, cfg.station.id,
                         rotate_entries=cfg.evidence.custody_rotate_entries, rotate_s=1e12)
    catalog = Catalog(cfg.catalog_path)
    # the generator's own writes skip their fsyncs (the station's durability is not what it measures)
    catalog.db.execute("PRAGMA synchronous=OFF")
    catalog.journal = _Unsynced(custody)
    staging = Staging(cfg.paths.staging, 0)
    staging.prepare()
    manifests = cfg.paths.staging / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    locks = None
    if size.object_lock:
        locks = Locks(catalog, cfg, _TakesEveryLock(), announce=False)  # type: ignore[arg-type]
        locks.on = True  # the rule of a station whose archive locks (this one's is a folder)
    archive_path = getattr(cfg.archive, "path", None)
    archive_custody = Path(archive_path) / "custody" / cfg.station.id if archive_path else None
    now = time.time() if end is None else end
    first_day = (now // DAY - size.days) * DAY
    docks = size.days * size.recorders
    per_dock = [size.clips // docks + (1 if i < size.clips % docks else 0) for i in range(docks)]
    n = 0
    for day in range(size.days):
        day_start = first_day + day * DAY
        keep_media = day >= size.days - size.media_days
        for r in range(size.recorders):
            clips = per_dock[day * size.recorders + r]
            officer = officer_id((r + day * 7) % size.officers)
            out.officer_days.setdefault(officer, []).append(day_start)
            _dock(cfg, catalog, staging, manifests, signer, custody, rnd, r, officer, day_start, clips, n,
                  keep_media, locks)
            n += clips
            _rotate(custody, catalog, archive_custody, locks)
        if progress and day % 30 == 0:
            print(f"day {day}: {n} clips, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    _cases(cfg, catalog, staging, signer, custody, rnd, size, out, first_day, locks)
    _rotate(custody, catalog, archive_custody, locks, force=True)
    _prune(cfg, catalog, now)
    custody.close()
    catalog.close()
    out.seconds = time.monotonic() - t0
    (config.parent / "history.json").write_text(json.dumps(dataclasses.asdict(out), default=str))
    return out


def load(config: Path) -> History:
    """What ``build`` wrote beside the station's config."""
    d = json.loads((config.parent / "history.json").read_text())
    return History(Path(d["config"]), Size(**d["size"]), d["seconds"], d["officer_days"], d["cases"],
                   [tuple(s) for s in d["case_spans"]])


def _dock(cfg: Config, catalog: Catalog, staging: Staging, manifests: Path, signer: Signer, custody: CustodyLog,
          rnd: random.Random, r: int, officer: str, day_start: float, clips: int, n0: int, keep_media: bool,
          locks: Locks | None) -> None:
    slot = r + 1
    serial = f"ZF{r:06d}"
    unit = f"unit-{r % 5}"
    name = f"officer {officer}"
    docked_at = day_start + 19 * 3600 + r * 60 + (DAY * 1.5 if rnd.random() < 0.02 else 0)  # a few docked late
    device = DockedDevice(slot, UsbIds(0x2BDF, 0x0001, serial), None, "sim")
    refs = []
    starts = []
    for k in range(clips):
        start = day_start + 7 * 3600 + k * (11 * 3600 / max(clips, 1)) + rnd.random() * 60
        starts.append(start)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(start))
        refs.append(ClipRef(f"DCIM/{stamp[:8]}/{officer}_{stamp}_{k:04d}.MP4".encode(), 300 + k, int(start * 1e9)))
    (first_seq,) = catalog.db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    with catalog.group():
        dock_id = catalog.open_dock(device, "zfy-generic", event("docked", slot, vid="2bdf", pid="0001",
                                                                  usb_serial=serial, profile="zfy-generic"))
        ident = Identity(serial, "DSJ-Z1", officer, unit, name, 80)
        catalog.identify_dock(dock_id, ident, event("identified", slot, serial=serial, model="DSJ-Z1",
                                                    officer=officer, unit=unit, battery_pct=80, dock_id=dock_id))
        pending, _ = catalog.discover(dock_id, serial, officer, refs)
        catalog.begin_pull_many([p.id for p in pending])
        dock = DockRow(id=dock_id, slot=slot, docked_at=docked_at, serial=serial, officer=officer,
                       officer_name=name, unit=unit, profile="zfy-generic")
        moves = []
        for p, start in zip(pending, starts, strict=True):
            body = f"clip {n0 + p.ref.size} {p.ref.display}\n".encode() * 4
            sha = hashlib.sha256(body).hexdigest()
            staged = staging.path_for(sha)
            if keep_media:
                staged.parent.mkdir(parents=True, exist_ok=True)
                staged.write_bytes(body)
            common = {"serial": serial, "path": p.ref.display, "sha256": sha}
            catalog.finish_pull(p.id, sha, len(body), staging.relative(staged),
                                pulled=event("pulled", slot, **common, size=len(body), duration_s=0.01),
                                seen_again=event("seen_again", slot, **common))
            duration = round(30 + rnd.random() * 600, 3)
            facts = ContainerFacts(format="MPEG-4", duration_s=duration,
                                   created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)))
            row = ClipRow(sha, len(body), "staged", staging.relative(staged), None, 0, p.id, serial, officer,
                          p.ref.relpath, p.ref.mtime_ns, dock_id, None, None, 0, None, None)
            key = clip_key(cfg.archive.key_template, sha256=sha, officer=officer, serial=serial,
                           station=cfg.station.id, unit=unit, original_name=p.ref.display, captured=start)
            doc, ts = build_manifest(cfg, row, dock, facts, None, None, None, False, key, custody.seq + 1,
                                     signer.key_id)
            signed = sign_document(doc, signer)
            path = manifests / f"{sha}{MANIFEST_SUFFIX}"
            path.write_bytes(signed.body)
            path.with_name(path.name + SIG_SUFFIX).write_bytes(signed.signature)
            catalog.stamped(sha, key, staging.relative(path), signed.sha256, False, ts, None, event(
                "stamped", sha256=sha, manifest_sha256=signed.sha256, key=key,
                signature_sha256=hashlib.sha256(signed.signature).hexdigest(), partial=False,
                capture_utc=doc["capture_time"]["utc"], case_number=None),
                important=bool(doc["importance"]["important"]), category=None, cased=False, duration_s=duration)
            moves.append((sha, key, len(body), p.id, p.ref.display))
        catalog.start_forward_many([(sha, key) for sha, key, *_ in moves])
        for sha, key, size, item_id, display in moves:
            catalog.archived(sha, event("forwarded", sha256=sha, key=key, existed=False),
                             event("verified", sha256=sha, key=key, verified_by="read_back"),
                             event("clip_archived", sha256=sha, key=key, size=size, partial=False, duration_s=0.01))
            if locks is not None:  # stored with its date: no lock row (``LockStore``)
                locks.clip_archived(sha, key, (MANIFEST_SUFFIX, MANIFEST_SUFFIX + SIG_SUFFIX),
                                    datetime.fromtimestamp(docked_at + HALF_YEAR, UTC), None, stored=True)
            catalog.released(item_id, event("released", slot, serial=serial, path=display, sha256=sha))
            if not keep_media:
                catalog.purged(sha, event("purged", sha256=sha, size=size, why="age"))
        catalog.emit("undocked", slot, serial=serial, dock_id=dock_id)
        catalog.close_dock(dock_id, "done")
        # the outbox's events as of the simulated dock (its window is kept by age: ``_prune``)
        catalog.db.execute("UPDATE events SET ts=? WHERE seq > ?", (docked_at, first_seq))


def _prune(cfg: Config, catalog: Catalog, now: float) -> None:
    """The outbox as the daemon's housekeeping leaves it (``gateway/pipeline/housekeep.py``)."""
    if cfg.evidence.events_keep_days is None:
        return
    before = now - cfg.evidence.events_keep_days * DAY
    while catalog.prune_events(before, published=cfg.mqtt.enabled, limit=PRUNE_BATCH) == PRUNE_BATCH:
        pass
    catalog.vacuum(2 ** 30)  # the housekeeper gives them back a round at a time
    catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _rotate(custody: CustodyLog, catalog: Catalog, archive: Path | None, locks: Locks | None, *,
            force: bool = False) -> None:
    """Seal a full segment and its checkpoint; archive both as the forwarder would."""
    sealed = custody.seal() if force else (custody.seal() if custody._open_entries >= custody.rotate_entries
                                           else None)
    if sealed is None:
        return
    for seg, cp in custody.sealed_pending:
        names = [seg.name, cp.name, cp.name + SIG_SUFFIX]
        for name in names:
            catalog.add_segment(name)
            if archive is not None:
                archive.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(custody.dir / name, archive / name)
            catalog.segment_archived(name)
            if locks is not None:
                locks.custody_archived(name)
    custody.sealed_pending.clear()


def _cases(cfg: Config, catalog: Catalog, staging: Staging, signer: Signer, custody: CustodyLog,
           rnd: random.Random, size: Size, out: History, first_day: float, locks: Locks | None) -> None:
    """Each case an assignment of one officer's day after it was stamped:
    the stamper amends each clip it covers (``size.amendments`` in all)."""
    if not size.cases:
        return
    per_case = max(1, size.amendments // size.cases)
    per_dock = max(1, size.clips // max(1, size.days * size.recorders))
    officers = sorted(out.officer_days)
    for c in range(size.cases):
        officer = officers[c % len(officers)]
        day = out.officer_days[officer][rnd.randrange(len(out.officer_days[officer]))]
        # the dock's clips spread over 07:00-18:00; a span covering per_case of them
        span = 11 * 3600 * min(1.0, per_case / per_dock)
        start = day + 7 * 3600 + rnd.random() * max(0.0, 11 * 3600 - span)
        case = f"C-{c:05d}"
        category = CATEGORIES[c % len(CATEGORIES)]
        catalog.add_assignment(officer, start - 30, start + span, case, f"exhibit {c}", category,
                               True if c % 10 == 0 else None)
        out.cases.append(case)
        out.case_spans.append((officer, start - 30, start + span, case))
    registry = Registry.load(cfg.recorders.profiles_dir)
    stamper = Stamper(cfg, catalog, staging, registry, signer, custody, lambda: None)
    stamper.process_assignments()
    for a in catalog.due_amendments():
        key = f"{a.archive_key}.amendment-{a.id}.json"
        catalog.amendment_archived(a.id, key, event("amendment_archived", sha256=a.sha256, key=key))
        if locks is not None:
            doc = json.loads(read_signed(staging.resolve(a.path)).body)
            locks.amendment_archived(a.sha256, a.archive_key, doc, key)
    if locks is not None:
        for case in out.cases[::50]:  # one case in 50 under legal hold
            locks.hold(case, True)
        while catalog.pending_locks():  # as the forwarder's rounds would (``apply`` takes 500 at a time)
            locks.apply()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--quick", action="store_true", help="5 000 clips over 30 days")
    for f in ("clips", "amendments", "days", "recorders", "officers", "cases"):
        ap.add_argument(f"--{f}", type=int)
    ap.add_argument("--object-lock", action="store_true", help="retention locks and legal holds as on S3")
    a = ap.parse_args()
    base = QUICK if a.quick else Size()
    size = Size(**{**base.__dict__, **{k: v for k, v in vars(a).items() if k in base.__dict__ and v is not None}})
    if a.dir.exists() and any(a.dir.iterdir()):
        sys.exit(f"{a.dir} is not empty")
    h = build(a.dir, size, progress=True)
    print(f"{size.clips} clips over {size.days} days in {h.seconds:.0f} s: {h.config}")
    os.sync()


if __name__ == "__main__":
    main()
