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

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.archive import Archive
from gateway.evidence.checkpoint import is_checkpoint
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
    #: the custody entries about the chosen clips, in order
    entries: list[CustodyEntry]
    #: checkpoint key -> its signed body
    checkpoint_docs: dict[str, bytes] = field(default_factory=dict)

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


def _about(entry: dict[str, Any], shas: set[str], keys: set[str]) -> bool:
    data = entry.get("data") or {}
    return data.get("sha256") in shas or data.get("key") in keys


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
    shas = {c.sha256 for c in clips}
    keys = {c.key for c in clips}
    segments: list[str] = []
    checkpoints: list[str] = []
    cp_docs: dict[str, bytes] = {}
    entries: list[CustodyEntry] = []
    for station in sorted({c.station for c in clips}):
        prefix = f"custody/{station}/"
        ranges: list[tuple[int, int]] = []
        for seg in (x for x in listing if x.startswith(prefix) and x.endswith(".jsonl")):
            lines = read_all(archive, seg).splitlines()
            parsed = []
            for line in lines:
                try:
                    parsed.append((line, json.loads(line)))
                except ValueError:
                    continue
            hits = [CustodyEntry(seg, line, e) for line, e in parsed if _about(e, shas, keys)]
            if hits:
                segments.append(seg)
                entries.extend(hits)
                seqs = [int(e.get("seq", 0)) for _, e in parsed]
                ranges.append((min(seqs), max(seqs)))
        for cp in (x for x in listing if x.startswith(prefix) and is_checkpoint(x)):
            body = read_all(archive, cp)
            try:
                seq = int(json.loads(body).get("seq", 0))
            except ValueError:
                continue
            if any(lo <= seq <= hi for lo, hi in ranges):
                cp_docs[cp] = body
                checkpoints.extend(x for x in (cp, cp + SIG_SUFFIX, cp + ".tsr") if x in keyset)
    entries.sort(key=lambda e: (str(e.entry.get("station")), int(e.entry.get("seq", 0))))
    return CaseEvidence(sel, clips, segments, checkpoints, entries, cp_docs)
