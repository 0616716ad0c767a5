"""The manifest: what makes a staged clip evidence.

For every clip a manifest records the five items the rules require (case
number 案件编号, capture time 采集时间, capture place 采集地点, collector 采集人,
what it proves 证明对象) with where each came from, plus the recorder, the
station, the clip's hash and container facts; it is serialised as canonical
JSON (RFC 8785) and signed with the station key. Nothing signed is ever
rewritten: an assignment that arrives after a clip was stamped produces a
signed *amendment* that references the manifest's hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.profiles import Profile, Registry
from gateway.catalog import Assignment, Catalog, ClipRow, DockRow
from gateway.config import Config
from gateway.durable import write_many
from gateway.evidence.canonical import canonical
from gateway.evidence.container import ContainerFacts
from gateway.evidence.signing import Signer

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "dockgate-manifest/1"
AMENDMENT_FORMAT = "dockgate-amendment/1"
MANIFEST_SUFFIX = ".manifest.json"
SIG_SUFFIX = ".sig"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def amendment_suffix(n: int) -> str:
    return f".amendment-{n}.json"


def is_evidence_metadata(key: str) -> bool:
    return key.startswith("custody/") or re.search(
        r"\.(manifest|amendment-\d+)\.json(\.sm2)?(\.sig)?$", key) is not None  # .sm2.sig: 国密 (evidence/gm.py)


@dataclass(frozen=True)
class Signed:
    body: bytes
    signature: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def sign_document(doc: dict[str, Any], signer: Signer) -> Signed:
    body = canonical(doc)
    return Signed(body, signer.sign(body))


# -- sidecars the recorder wrote --------------------------------------------
_NMEA = re.compile(r"\$G[PN]RMC,[\d.]*,A,(\d{2})(\d{2}\.\d+),([NS]),(\d{3})(\d{2}\.\d+),([EW])")


def gps_fix(text: str) -> tuple[float, float] | None:
    """First valid fix of an NMEA RMC track: (latitude, longitude)."""
    m = _NMEA.search(text)
    if not m:
        return None
    lat = int(m.group(1)) + float(m.group(2)) / 60
    lon = int(m.group(4)) + float(m.group(5)) / 60
    return (round(-lat if m.group(3) == "S" else lat, 6), round(-lon if m.group(6) == "W" else lon, 6))


def sibling(catalog: Catalog, staging_root: Path, clip: ClipRow, suffix: str) -> Path | None:
    base, _ext = os.path.splitext(clip.path)
    hit = catalog.sibling_item(clip.serial, base + suffix.encode())
    if hit is None or hit[1] is None:
        return None
    p = staging_root / hit[1]
    return p if p.exists() else None


# -- capture time ---------------------------------------------------------------
def capture_time(facts: ContainerFacts, clip: ClipRow, profile: Profile | None,
                 drift_s: float | None) -> dict[str, Any]:
    """When the clip was recorded: as the recorder's clock said, and in UTC
    corrected by the drift measured at docking."""
    recorder: datetime | None = None
    source = "file_mtime"
    if facts.created:
        recorder, source = datetime.fromisoformat(facts.created.replace("Z", "+00:00")), "container"
    elif profile is not None:
        from zoneinfo import ZoneInfo

        local = profile.start_from_name(clip.path.decode("utf-8", "replace"))
        if local is not None:
            try:
                recorder = local.replace(tzinfo=ZoneInfo(profile.clock.timezone)).astimezone(UTC)
                source = "file_name"
            except (OverflowError, ValueError):
                recorder = None
    if recorder is None:
        recorder = datetime.fromtimestamp(clip.mtime_ns / 1e9, UTC)
    corrected = recorder.timestamp() - (drift_s or 0.0)
    plausible = datetime(2000, 1, 1, tzinfo=UTC).timestamp() <= corrected <= datetime.now(UTC).timestamp() + 86400
    return {"recorder_clock": iso(recorder.timestamp()), "utc": iso(corrected), "source": source,
            "drift_s": drift_s, "plausible": plausible, "_ts": corrected}


def recorder_drift(dock: DockRow) -> tuple[float | None, bool | None]:
    """The drift measured at docking and whether it was verified: measured
    against a synchronised station clock (gateway/timesync.py). A dock whose
    station clock was not synchronised keeps both clock readings and no
    ``clock_drift_s`` (so nothing corrects capture times by it) and set no
    recorder clock: its drift is the readings' difference, unverified.
    (None, None): nothing was measured (no readable clock, or no reading)."""
    if dock.clock_drift_s is not None:
        return dock.clock_drift_s, True
    if dock.recorder_clock is not None and dock.station_clock is not None and not dock.clock_set:
        return round(dock.recorder_clock - dock.station_clock, 3), False
    return None, None


def assignment_doc(a: Assignment | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"id": a.id, "officer": a.officer, "from": iso(a.from_ts), "to": iso(a.to_ts),
            "case_number": a.case_number, "proof_object": a.proof, "category": a.category,
            "important": None if a.important is None else bool(a.important), "made_at": iso(a.created_at)}


def build_manifest(cfg: Config, clip: ClipRow, dock: DockRow | None, facts: ContainerFacts,
                   profile: Profile | None, assignment: Assignment | None, gps: tuple[float, float] | None,
                   marked: bool, key: str, custody_seq: int, key_id: str) -> tuple[dict[str, Any], float]:
    d = dock or DockRow(id=0, slot=0, docked_at=0.0)
    when = capture_time(facts, clip, profile, d.clock_drift_s)
    ts = when.pop("_ts")
    drift, verified = recorder_drift(d)
    # drift_s is the drift applied (none when unverified); the measured one is recorder.clock_drift_s
    when["drift_verified"] = verified
    place: dict[str, Any] = {"text": cfg.station.location or None, "source": "station"}
    if gps is not None:
        place = {"text": cfg.station.location or None, "latitude": gps[0], "longitude": gps[1],
                 "source": "recorder_gps"}
    a = assignment
    important = bool(a.important) if a is not None and a.important is not None else marked
    doc = {
        "format": MANIFEST_FORMAT,
        "case_number": a.case_number if a else None,
        "capture_time": when,
        "capture_place": place,
        "collector": {"officer": clip.officer, "name": d.officer_name, "unit": d.unit},
        "proof_object": a.proof if a else None,
        "importance": {"important": important,
                       "source": "assignment" if a is not None and a.important is not None
                       else ("recorder_mark" if marked else "default")},
        "category": a.category if a else None,
        "assignment": assignment_doc(a),
        "clip": {"sha256": clip.sha256, "size": clip.size,
                 "original_path": clip.path.decode("utf-8", "backslashreplace"),
                 "archive_key": key, "partial": facts.truncated,
                 "container": facts.as_dict()},
        "recorder": {"serial": clip.serial, "model": d.model, "profile": d.profile,
                     "clock_drift_s": drift, "clock_drift_verified": verified, "clock_set": bool(d.clock_set),
                     "docked_at": iso(d.docked_at) if dock else None},
        "station": {"id": cfg.station.id, "slot": dock.slot if dock else None,
                    "location": cfg.station.location or None},
        "custody_seq": custody_seq,
        "stamped_at": iso(datetime.now(UTC).timestamp()),
        "key_id": key_id,
    }
    return doc, ts


def build_amendment(clip: ClipRow, a: Assignment, custody_seq: int, key_id: str,
                    previous_sha256: str | None = None) -> dict[str, Any]:
    """*previous_sha256*: the SHA-256 of the clip's amendment before this one
    (None for the first), so a clip's amendments form a chain."""
    return {
        "format": AMENDMENT_FORMAT,
        "amends": {"sha256": clip.sha256, "manifest_sha256": clip.manifest_sha256,
                   "archive_key": clip.archive_key},
        "previous_sha256": previous_sha256,
        "case_number": a.case_number, "proof_object": a.proof, "category": a.category,
        "important": None if a.important is None else bool(a.important),
        "assignment": assignment_doc(a),
        "custody_seq": custody_seq,
        "issued_at": iso(datetime.now(UTC).timestamp()),
        "key_id": key_id,
    }


def signed_files(path: Path, signed: Signed) -> list[tuple[Path, bytes, int]]:
    """The files of a signed document, for ``durable.write_many``: the body
    and beside it the signature, raw Ed25519 (64 bytes)."""
    return [(path, signed.body, 0o444), (path.with_name(path.name + SIG_SUFFIX), signed.signature, 0o444)]


def write_signed(path: Path, signed: Signed) -> None:
    """Body and signature, durably."""
    write_many(signed_files(path, signed))


def read_signed(path: Path) -> Signed:
    return Signed(path.read_bytes(), path.with_name(path.name + SIG_SUFFIX).read_bytes())


def profile_for(registry: Registry, dock: DockRow | None) -> Profile | None:
    if dock is None:
        return None
    return next((p for p in registry.profiles if p.name == dock.profile), None)
