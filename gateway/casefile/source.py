"""What belongs to a case, read from the archive (the source of truth at the
district): manifests, amendments, custody segments and checkpoints.

A clip belongs to case C when its *effective* case number is C: the newest
non-empty ``case_number`` among its manifest and its amendments (amendments
in the order of the assignments that made them; the catalog applies the
newest assignment the same way). Footage not under a case is chosen by
officer (``collector.officer``) and capture time (``capture_time.utc``).

The archive is listed once; every object is read at most once.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.archive import Archive
from gateway.evidence.checkpoint import is_checkpoint
from gateway.evidence.custody import redact_line
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX

_AMEND = re.compile(r"^(?P<media>.+)\.amendment-(?P<n>\d+)\.json$")


def read_all(archive: Archive, key: str) -> bytes:
    with archive.read(key) as f:
        data: bytes = f.read()
    return data


@dataclass(frozen=True)
class Selection:
    """Which clips: a case number, or an officer's clips in a time span."""

    case: str | None = None
    officer: str | None = None
    start: float | None = None
    end: float | None = None

    def describe(self) -> str:
        if self.case:
            return self.case
        return f"officer-{self.officer or 'any'}"


@dataclass
class ClipEvidence:
    key: str
    manifest: bytes
    doc: dict[str, Any]
    #: (amendment number, key, parsed document), oldest first
    amendments: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    #: other signature files the archive holds beside the manifest (e.g. ``.sm2.sig``)
    extra_keys: list[str] = field(default_factory=list)
    #: the manifest's Ed25519 signature (read for chosen clips only)
    signature: bytes | None = None

    @property
    def sha256(self) -> str:
        return str((self.doc.get("clip") or {}).get("sha256"))

    @property
    def station(self) -> str:
        return str((self.doc.get("station") or {}).get("id"))

    @property
    def case_number(self) -> str | None:
        case: str | None = self.doc.get("case_number")
        for _, _, a in self.amendments:
            if a.get("case_number"):
                case = a["case_number"]
        return case

    def latest(self, name: str) -> Any:
        """The newest value of *name* (``proof_object``, ``category``) over
        manifest and amendments."""
        value = self.doc.get(name)
        for _, _, a in self.amendments:
            if a.get(name) is not None:
                value = a[name]
        return value

    @property
    def important(self) -> bool:
        value = bool((self.doc.get("importance") or {}).get("important"))
        for _, _, a in self.amendments:
            if a.get("important") is not None:
                value = bool(a["important"])
        return value

    @property
    def capture_ts(self) -> float | None:
        utc = (self.doc.get("capture_time") or {}).get("utc")
        return datetime.fromisoformat(utc.replace("Z", "+00:00")).timestamp() if utc else None


@dataclass
class CustodyEntry:
    segment: str
    line: bytes
    entry: dict[str, Any]


@dataclass
class CaseEvidence:
    selection: Selection
    clips: list[ClipEvidence]
    #: archive keys of the custody segments that hold an entry about a chosen clip
    segments: list[str]
    #: archive keys of checkpoints (and their .sig/.tsr) covering those segments
    checkpoints: list[str]
    #: the custody entries the excerpt shows as they are (about the chosen clips, the case, the station), in
    #: order
    entries: list[CustodyEntry]
    #: checkpoint key -> its signed body
    checkpoint_docs: dict[str, bytes] = field(default_factory=dict)
    #: segment key -> the segment as the bag carries it (other cases' entries redacted)
    segment_bodies: dict[str, bytes] = field(default_factory=dict)

    @property
    def stations(self) -> list[str]:
        return sorted({c.station for c in self.clips})


def _matches(c: ClipEvidence, sel: Selection) -> bool:
    if sel.case is not None:
        return c.case_number == sel.case
    if sel.officer is not None and (c.doc.get("collector") or {}).get("officer") != sel.officer:
        return False
    ts = c.capture_ts
    if sel.start is not None and (ts is None or ts < sel.start):
        return False
    return not (sel.end is not None and (ts is None or ts > sel.end))


#: data of a station-level entry (no clip, no case) that says nothing of a person or a case
_STATION_DATA = {"slot", "vid", "pid", "profile", "device", "reason", "error", "free", "needed", "archive",
                 "partial_files", "drift_s", "set", "synchronised", "storage_ids", "expected"}
#: ... and what it may also say when it is about one of the selection's recorders or officers
_RECORDER_DATA = {"serial", "officer", "officer_name", "name", "unit", "model", "firmware", "path", "why",
                  "recorder_clock", "station_clock", "links", "more"}


@dataclass(frozen=True)
class Scope:
    """What of a custody log belongs to a selection: its clips (by SHA-256),
    their archive keys (clip, manifest, amendments), the case number, the
    officers and recorders of its clips."""

    case: str | None
    shas: frozenset[str]
    keys: frozenset[str]
    officers: frozenset[str]
    serials: frozenset[str]

    @classmethod
    def of(cls, sel: Selection, clips: list[ClipEvidence]) -> Scope:
        return cls(sel.case, frozenset(c.sha256 for c in clips), frozenset(c.key for c in clips),
                   frozenset(str((c.doc.get("collector") or {}).get("officer")) for c in clips),
                   frozenset(str((c.doc.get("recorder") or {}).get("serial")) for c in clips))

    def about_clip(self, entry: dict[str, Any]) -> bool:
        """An entry about one of the clips (or an amendment of one)."""
        data = entry.get("data") or {}
        if data.get("sha256") in self.shas:
            return True
        key = data.get("key")
        return isinstance(key, str) and any(key == k or key.startswith(k + ".") for k in self.keys)

    def keeps(self, entry: dict[str, Any]) -> bool:
        """Whether the excerpt may show *entry* as it is: about a clip of the
        selection, or the case by number, or a station-level entry that names
        no person and no other case; anything else is redacted to its hash."""
        data = entry.get("data")
        if not isinstance(data, dict):
            return False
        if self.about_clip(entry):
            return True
        if entry.get("event") == "segment_opened":
            return True  # the index of the segment before: names of custody files and hashes, nothing of a case
        if "sha256" in data or "key" in data or "amendment_sha256" in data:
            return False  # another clip
        if "case_number" in data:
            return self.case is not None and data["case_number"] == self.case
        ours = (data.get("serial") in self.serials if "serial" in data else
                data.get("officer") in self.officers if "officer" in data else False)
        return all(k in _STATION_DATA or (ours and k in _RECORDER_DATA) for k in data)


def excerpt(body: bytes, scope: Scope) -> tuple[bytes, list[tuple[bytes, dict[str, Any]]]]:
    """A custody segment as a case file shows it: every entry the scope does
    not keep replaced by ``custody.redact_line`` (the chain still verifies);
    and the kept entries (line, parsed). A line that does not parse is left
    as it is, for the verifier to name."""
    out: list[bytes] = []
    kept: list[tuple[bytes, dict[str, Any]]] = []
    for line in body.splitlines():
        try:
            entry = json.loads(line)
            keep = isinstance(entry, dict) and scope.keeps(entry)
            new = line if keep else redact_line(line)
        except (ValueError, KeyError, TypeError):
            out.append(line)
            continue
        if keep:
            kept.append((line, entry))
        out.append(new)
    return b"".join(x + b"\n" for x in out), kept


def collect(archive: Archive, sel: Selection) -> CaseEvidence:
    listing = sorted(archive.keys())
    keyset = set(listing)
    amendments: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for k in listing:
        m = _AMEND.match(k)
        if m:
            amendments[m.group("media")].append((int(m.group("n")), k))
    clips: list[ClipEvidence] = []
    for k in listing:
        if not k.endswith(MANIFEST_SUFFIX) or k.startswith("custody/"):
            continue
        media = k[: -len(MANIFEST_SUFFIX)]
        body = read_all(archive, k)
        try:
            doc = json.loads(body)
        except ValueError:
            continue  # `dockgate verify` names it; an export carries only what it can read
        if not isinstance(doc, dict):
            continue
        c = ClipEvidence(media, body, doc)
        for n, ak in sorted(amendments.get(media, [])):
            try:
                c.amendments.append((n, ak, json.loads(read_all(archive, ak))))
            except ValueError:
                continue
        c.extra_keys = [x for x in listing if x.startswith(k + ".") and x != k + SIG_SUFFIX]
        if _matches(c, sel):
            if k + SIG_SUFFIX in keyset:
                c.signature = read_all(archive, k + SIG_SUFFIX)
            clips.append(c)
    clips.sort(key=lambda c: (c.capture_ts or 0.0, c.key))
    ev = CaseEvidence(sel, clips, [], [], [])
    custody_of(archive, ev, listing)
    return ev


def custody_of(archive: Archive, ev: CaseEvidence, listing: list[str] | None = None) -> None:
    """The custody excerpt of *ev*'s clips as the archive holds it now: the
    segments with an entry about them (other entries redacted), and the
    checkpoints covering those segments. Called again to see what a seal
    brought."""
    if listing is None:
        listing = sorted(k for s in ev.stations for k in archive.keys(f"custody/{s}/"))
    keyset = set(listing)
    scope = Scope.of(ev.selection, ev.clips)
    ev.segments, ev.checkpoints, ev.entries = [], [], []
    ev.checkpoint_docs, ev.segment_bodies = {}, {}
    for station in ev.stations:
        prefix = f"custody/{station}/"
        ranges: list[tuple[int, int]] = []
        for seg in (x for x in listing if x.startswith(prefix) and x.endswith(".jsonl")):
            raw = read_all(archive, seg)
            body, kept = excerpt(raw, scope)
            hits = [CustodyEntry(seg, line, e) for line, e in kept if scope.about_clip(e)]
            if hits:
                ev.segments.append(seg)
                ev.segment_bodies[seg] = body
                ev.entries.extend(CustodyEntry(seg, line, e) for line, e in kept)
                seqs = []
                for line in raw.splitlines():
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        seqs.append(int(json.loads(line)["seq"]))
                if seqs:
                    ranges.append((min(seqs), max(seqs)))
        for cp in (x for x in listing if x.startswith(prefix) and is_checkpoint(x)):
            body = read_all(archive, cp)
            try:
                seq = int(json.loads(body).get("seq", 0))
            except (ValueError, AttributeError, TypeError):
                continue
            if any(lo <= seq <= hi for lo, hi in ranges):
                ev.checkpoint_docs[cp] = body
                ev.checkpoints.extend(x for x in (cp, cp + SIG_SUFFIX, cp + ".tsr") if x in keyset)
    ev.entries.sort(key=lambda e: (str(e.entry.get("station")), int(e.entry.get("seq", 0))))
