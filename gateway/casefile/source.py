"""What belongs to a case, read from the archive (the source of truth at the
district): manifests, amendments, custody segments and checkpoints.

A clip belongs to case C when its *effective* case number is C: the newest
non-empty ``case_number`` among its manifest and its amendments (amendments
in the order of the assignments that made them; the catalog applies the
newest assignment the same way). Footage not under a case is chosen by
officer (``collector.officer``) and capture time (``capture_time.utc``).

What a selection costs depends on the selection, not on the archive: the
custody record is the archive's index (gateway/evidence/graph.py), so
``collect`` reads the custody segments (parsing only the lines that file a
clip: ``stamped``, ``amended`` and the ``*_archived`` entries naming a key),
takes as candidates the clips any entry files under the case (or stamps in
the time span), and then lists and reads only those clips' own objects
(``archive.keys(<clip key>)``), judging each by the archive's documents as
before. ``scan`` reads every manifest instead: for the retention report
(every clip) and for ``verify --case``, which must also see a clip the
archive's documents file under a case that its custody does not.

Memory stays flat: the custody excerpt is not held, it is redacted again
segment by segment as the bag is written (``excerpt_of``).

Why one module of this length: what belongs to a selection (the clips by
their documents, the custody entries about them, what an excerpt may show)
is one rule, read by the export, the report, retention and `verify --case`;
split, the candidates found through custody and the judgement by documents
could come to disagree.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.archive import Archive
from gateway.evidence.checkpoint import is_checkpoint
from gateway.evidence.custody import redact_line
from gateway.evidence.graph import media_key
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
        if not isinstance(key, str):
            return False
        # the key itself, or one of its prefixes ending before a "." (an amendment, a signature): one
        # set lookup per dot, not one comparison per clip of the case
        return key in self.keys or any(key[:i] in self.keys for i, ch in enumerate(key) if ch == ".")

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


def _clip(archive: Archive, k: str, amendment_keys: Iterable[str], objects: list[str]) -> ClipEvidence | None:
    """The clip whose manifest is *k*, with its amendments (their keys
    given) and the other signature files among *objects* (its own keys)."""
    media = k[: -len(MANIFEST_SUFFIX)]
    body = read_all(archive, k)
    try:
        doc = json.loads(body)
    except ValueError:
        return None  # `dockgate verify` names it; an export carries only what it can read
    if not isinstance(doc, dict):
        return None
    c = ClipEvidence(media, body, doc)
    numbered = []
    for ak in amendment_keys:
        m = _AMEND.match(ak)
        if m and m.group("media") == media:
            numbered.append((int(m.group("n")), ak))
    for n, ak in sorted(numbered):
        try:
            c.amendments.append((n, ak, json.loads(read_all(archive, ak))))
        except ValueError:
            continue
    c.extra_keys = [x for x in objects if x.startswith(k + ".") and x != k + SIG_SUFFIX]
    return c


def _finish(archive: Archive, sel: Selection, clips: list[ClipEvidence], keyset: set[str]) -> CaseEvidence:
    for c in clips:
        sig = c.key + MANIFEST_SUFFIX + SIG_SUFFIX
        if sig in keyset:
            c.signature = read_all(archive, sig)
    clips.sort(key=lambda c: (c.capture_ts or 0.0, c.key))
    ev = CaseEvidence(sel, clips, [], [], [])
    custody_of(archive, ev)
    return ev


def scan(archive: Archive, sel: Selection) -> CaseEvidence:
    """Every manifest of the archive judged against *sel* (the retention
    report's every clip; ``verify --case``'s clips the archive's documents
    file under a case). The listing is sorted once; each manifest's other
    objects are found by bisection, not by a scan of the listing."""
    listing = sorted(archive.keys())
    keyset = set(listing)
    amendments: dict[str, list[str]] = defaultdict(list)
    for k in listing:
        m = _AMEND.match(k)
        if m:
            amendments[m.group("media")].append(k)
    clips: list[ClipEvidence] = []
    for k in listing:
        if not k.endswith(MANIFEST_SUFFIX) or k.startswith("custody/"):
            continue
        lo = bisect.bisect_left(listing, k + ".")
        hi = bisect.bisect_left(listing, k + "/")  # "/" sorts right after "."
        c = _clip(archive, k, amendments.get(k[: -len(MANIFEST_SUFFIX)], []), listing[lo:hi])
        if c is not None and _matches(c, sel):
            clips.append(c)
    return _finish(archive, sel, clips, keyset)


#: the custody lines that file a clip (canonical JSON: the event name is written exactly so)
_FILING = (b'"event":"stamped"', b'"event":"amended"', b'"event":"amendment_archived"', b'"event":"clip_archived"')
_SHA_FIELD = re.compile(rb'[{,]"sha256":"([0-9a-f]{64})"')


def _ts(utc: object) -> float | None:
    try:
        return datetime.fromisoformat(str(utc).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def candidates(archive: Archive, sel: Selection, custody: dict[str, list[str]], indexed: list[int]
               ) -> dict[str, str]:
    """Clip key by SHA-256 of every clip the custody record ever files
    under the selection's case (stamped or amended), or stamps with a
    capture time in its span. Lines are parsed only when they can matter:
    for a case, only those naming it (and an archived entry giving the key
    of a clip it took in by amendment). *indexed*: [0] counts the
    ``clip_archived`` entries seen."""
    from gateway.evidence.canonical import canonical

    marker = b'"case_number":' + canonical(sel.case) if sel.case is not None else None
    named: set[str] = set()
    keys: dict[str, str] = {}
    for segs in custody.values():
        for seg in segs:
            body = read_all(archive, seg)
            indexed[0] += body.count(b'"event":"clip_archived"')
            for line in body.splitlines():
                stamped = b'"event":"stamped"' in line
                if stamped or b'"event":"amended"' in line:
                    if marker is not None and marker not in line:
                        continue
                elif not any(x in line for x in _FILING):
                    continue
                m = _SHA_FIELD.search(line)
                if m is None:
                    continue
                sha = m.group(1).decode()
                archived = not stamped and b'"event":"amended"' not in line
                if archived and (sha not in named or sha in keys):
                    continue
                try:
                    data = json.loads(line).get("data") or {}
                except (ValueError, AttributeError):
                    continue  # `dockgate verify` names it
                if not isinstance(data, dict):
                    continue
                if archived:
                    if isinstance(data.get("key"), str):
                        keys[sha] = media_key(data["key"])
                    continue
                if sel.case is not None:
                    hit = data.get("case_number") == sel.case
                else:
                    ts = _ts(data.get("capture_utc")) if stamped else None
                    hit = ts is not None and (sel.start is None or ts >= sel.start) and (
                        sel.end is None or ts <= sel.end)
                if hit:
                    named.add(sha)
                    if stamped and isinstance(data.get("key"), str):
                        keys[sha] = media_key(data["key"])
    return {sha: keys[sha] for sha in named if sha in keys}


def collect(archive: Archive, sel: Selection) -> CaseEvidence:
    """The clips of *sel* with their custody excerpt. A case, or a span of
    capture time, is found through the custody index and costs what the
    selection holds (and one listing of the archive's names, nothing read,
    to see that custody indexes every clip it holds; when it does not, every
    manifest is read); a selection of everything reads every manifest."""
    if sel.case is None and sel.start is None and sel.end is None:
        return scan(archive, sel)
    custody = _custody_listing(archive)
    indexed = [0]
    found = candidates(archive, sel, custody, indexed)
    manifests = sum(1 for k in archive.keys() if k.endswith(MANIFEST_SUFFIX)  # noqa: SIM118 - not a dict
                    and not k.startswith("custody/"))
    if manifests > indexed[0]:
        # the archive holds clips its archived custody does not index yet (a segment not sealed or not
        # forwarded): they may be the selection's, so every manifest is read, as the export must name
        # each clip whose custody is not sealed rather than leave it out without a word
        return scan(archive, sel)
    clips: list[ClipEvidence] = []
    present: set[str] = set()
    for media in sorted(set(found.values())):
        own = sorted(k for k in archive.keys(media) if k == media or k.startswith(media + "."))
        manifest = media + MANIFEST_SUFFIX
        if manifest not in own:
            continue
        c = _clip(archive, manifest, own, own)
        if c is not None and _matches(c, sel):
            clips.append(c)
            present.update(own)
    return _finish(archive, sel, clips, present)


def _custody_listing(archive: Archive, stations: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Custody segments by station, oldest first (the custody folders are all that is listed)."""
    prefixes = [f"custody/{s}/" for s in stations] if stations is not None else ["custody/"]
    out: dict[str, list[str]] = defaultdict(list)
    for p in prefixes:
        for k in archive.keys(p):
            parts = k.split("/")
            if len(parts) == 3 and k.endswith(".jsonl"):
                out[parts[1]].append(k)
    return {st: sorted(v) for st, v in out.items()}


def _hits(raw: bytes, scope: Scope) -> bool:
    """Whether a segment holds an entry about one of the scope's clips,
    decided from the hashes and keys its lines name (no line parsed)."""
    for m in re.finditer(rb'[{,]"(?:sha256|key)":"([^"\\]*)"', raw):
        value = m.group(1).decode("utf-8", "replace")
        if value in scope.shas or value in scope.keys or media_key(value) in scope.keys:
            return True
    return False


def custody_of(archive: Archive, ev: CaseEvidence) -> None:
    """The custody excerpt of *ev*'s clips as the archive holds it now: the
    segments with an entry about them, the entries kept (about them, the
    case, the station), and the checkpoints covering those segments. Called
    again to see what a seal brought. Only the custody folders of the
    clips' stations are listed; segments without an entry about a clip are
    passed over without parsing."""
    listing = sorted(k for s in ev.stations for k in archive.keys(f"custody/{s}/"))
    keyset = set(listing)
    scope = Scope.of(ev.selection, ev.clips)
    ev.segments, ev.checkpoints, ev.entries = [], [], []
    ev.checkpoint_docs = {}
    for station in ev.stations:
        prefix = f"custody/{station}/"
        ranges: list[tuple[int, int]] = []
        for seg in (x for x in listing if x.startswith(prefix) and x.endswith(".jsonl")):
            raw = read_all(archive, seg)
            if not _hits(raw, scope):
                continue
            _, kept = excerpt(raw, scope)
            hits = [CustodyEntry(seg, line, e) for line, e in kept if scope.about_clip(e)]
            if hits:
                ev.segments.append(seg)
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


def excerpt_of(archive: Archive, ev: CaseEvidence, segment: str) -> bytes:
    """A segment of *ev*'s excerpt as the bag carries it (other cases'
    entries redacted), read and redacted again when it is written: the
    excerpt is never held whole."""
    body, _ = excerpt(read_all(archive, segment), Scope.of(ev.selection, ev.clips))
    return body
