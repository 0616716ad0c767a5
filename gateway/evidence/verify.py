"""`dockgate verify`: check an archive without trusting the station.

Given the archive and the station public key(s):

* every manifest's signature and key id, every media object against its
  manifest (SHA-256 and size), every amendment's signature and the manifest
  hash it references; media without a manifest fails;
* every custody segment: signatures, one sequence from 1 without gaps, the
  hash chain;
* completeness, both ways: every clip the custody log records as archived
  is in the archive with its manifest and signature; every manifest's
  ``custody_seq`` is a ``stamped`` entry for that very clip (removing custody
  for a clip still present is caught);
* every checkpoint in the archive, and every checkpoint a witness kept
  (``--witness DIR``, ``--checkpoint FILE``): signed by the station, and the
  archive's custody log reaches its ``seq`` with its ``head`` (cutting off
  the tail, or restoring an older copy, is caught against a witness).

The archive is listed once. Nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive import Archive
from gateway.evidence.canonical import canonical
from gateway.evidence.checkpoint import Checkpoint, is_checkpoint
from gateway.evidence.custody import GENESIS, entry_hash, signed_part
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX, is_evidence_metadata
from gateway.evidence.signing import key_id, verify

_AMEND = re.compile(r"^(?P<media>.+)\.amendment-(?P<n>\d+)\.json$")


@dataclass(frozen=True)
class Failure:
    check: str
    obj: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.obj}: {self.detail}"


@dataclass
class Report:
    clips: int = 0
    partial: int = 0
    amendments: int = 0
    custody_entries: int = 0
    segments: int = 0
    checkpoints: int = 0
    witnessed: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        return (f"{self.clips} clips ({self.partial} partial), {self.amendments} amendments, "
                f"{self.custody_entries} custody entries in {self.segments} segments, "
                f"{self.checkpoints} checkpoints"
                + (f", {self.witnessed} witnessed checkpoints" if self.witnessed else ""))


@dataclass
class StationRecord:
    """What one station's custody log in the archive says."""

    last_seq: int = 0
    #: seq -> sha256 of the clip a ``stamped`` entry is for
    stamped: dict[int, str] = field(default_factory=dict)
    #: (seq, archive key) of every ``clip_archived`` entry
    archived: list[tuple[int, str]] = field(default_factory=list)
    #: seq -> entry hash, for the seqs a checkpoint names
    heads: dict[int, str] = field(default_factory=dict)


def _read(archive: Archive, key: str) -> bytes:
    with archive.read(key) as f:
        data: bytes = f.read()
    return data


class Verifier:
    def __init__(self, archive: Archive, keys: list[Ed25519PublicKey], witnessed: Sequence[Checkpoint] = (),
                 progress: Callable[[int, int], None] | None = None, *, excerpt: bool = False,
                 sm2_keys: dict[str, bytes] | None = None) -> None:
        self.archive = archive
        #: an excerpt (a case file's bag, gateway/casefile): custody segments need not start at 1 nor follow
        #: each other, and clips the custody log records as archived elsewhere are not expected here
        self.excerpt = excerpt
        #: 国密 (evidence/gm.py): SM2 key id -> public point; when given, every manifest's
        #: .sm2.sig is checked; manifests with clip.sm3 have their media's SM3 checked always
        self.sm2_keys = dict(sm2_keys or {})
        #: (media hashed so far, of how many): for long runs
        self.progress = progress
        self.keys = {key_id(k): k for k in keys}
        self.witnessed = list(witnessed)
        self.report = Report()
        self.keyset: set[str] = set()

    def fail(self, check: str, obj: str, detail: str) -> None:
        self.report.failures.append(Failure(check, obj, detail))

    def _signed(self, key: str, kind: str, body: bytes | None = None, sig: bytes | None = None
                ) -> dict[str, Any] | None:
        got = self._signed_body(key, kind, body, sig)
        return None if got is None else got[0]

    def _signed_body(self, key: str, kind: str, body: bytes | None = None, sig: bytes | None = None
                     ) -> tuple[dict[str, Any], bytes] | None:
        """The signed document at *key* (or *body*/*sig* given), checked, and its bytes."""
        if body is None:
            body = _read(self.archive, key)
        if sig is None:
            if key + SIG_SUFFIX not in self.keyset:
                self.fail(f"{kind}-signature", key, "signature file missing")
                return None
            sig = _read(self.archive, key + SIG_SUFFIX)
        try:
            doc = json.loads(body)
        except ValueError as e:
            self.fail(f"{kind}-format", key, f"not JSON: {e}")
            return None
        if not isinstance(doc, dict):
            self.fail(f"{kind}-format", key, "not a JSON object")
            return None
        pub = self.keys.get(str(doc.get("key_id")))
        if pub is None:
            self.fail(f"{kind}-key-id", key, f"signed by unknown key {doc.get('key_id')}")
            return None
        if not verify(pub, body, sig):
            self.fail(f"{kind}-signature", key, "signature does not verify")
            return None
        if canonical(doc) != body:
            self.fail(f"{kind}-format", key, "not canonical JSON")
            return None
        return doc, body

    def run(self) -> Report:
        keys = sorted(self.archive.keys())
        self.keyset = keyset = set(keys)
        # checkpoints first: they say which entry hashes the custody pass must keep
        archived_cps = [(k, doc) for k in keys if k.startswith("custody/") and is_checkpoint(k)
                        if (doc := self._signed(k, "checkpoint")) is not None]
        witnessed = [(f"witness {cp.name}", doc) for cp in self.witnessed
                     if (doc := self._signed(f"witness {cp.name}", "witness", cp.body, cp.signature)) is not None]
        want: dict[str, set[int]] = defaultdict(set)
        for _, doc in archived_cps + witnessed:
            want[str(doc.get("station"))].add(int(doc.get("seq", 0)))
        records = self.check_custody([k for k in keys if k.startswith("custody/") and k.endswith(".jsonl")], want)
        manifests: dict[str, bytes] = {}
        media: list[tuple[str, dict[str, Any]]] = []
        for k in keys:
            if k.endswith(MANIFEST_SUFFIX):
                job = self.check_manifest(k, keyset, manifests, records)
                if job is not None:
                    media.append(job)
        self.check_media(media)
        self.check_sm3(media)
        for k in keys:
            if not is_evidence_metadata(k) and k + MANIFEST_SUFFIX not in keyset:
                self.fail("media-unstamped", k, "media without a signed manifest")
        for k in keys:
            m = _AMEND.match(k)
            if m:
                self.check_amendment(k, m.group("media"), manifests)
        for station, rec in sorted(records.items()):
            for seq, key in ([] if self.excerpt else rec.archived):
                for part in (key, key + MANIFEST_SUFFIX, key + MANIFEST_SUFFIX + SIG_SUFFIX):
                    if part not in keyset:
                        self.fail("clip-missing", part, f"custody entry {seq} of station {station} records the "
                                                        "clip as archived; the archive does not hold it")
        for where, doc in archived_cps:
            self.check_checkpoint("checkpoint", where, doc, records)
            self.report.checkpoints += 1
        for where, doc in witnessed:
            self.check_checkpoint("witness", where, doc, records)
            self.report.witnessed += 1
        return self.report

    def check_checkpoint(self, kind: str, where: str, doc: dict[str, Any], records: dict[str, StationRecord]) -> None:
        station, seq, head = str(doc.get("station")), int(doc.get("seq", 0)), doc.get("head")
        rec = records.get(station)
        if rec is None or rec.last_seq < seq:
            have = 0 if rec is None else rec.last_seq
            self.fail(f"{kind}-tail", where, f"station {station}'s custody log in the archive ends at entry {have}; "
                                              f"the checkpoint covers entries up to {seq} (cut off or rolled back)")
        elif rec.heads.get(seq) != head:
            self.fail(f"{kind}-head", where, f"entry {seq} of station {station} is not the one the checkpoint "
                                              "signed (the record was rewritten)")

    def check_manifest(self, key: str, keyset: set[str], manifests: dict[str, bytes],
                       records: dict[str, StationRecord]) -> tuple[str, dict[str, Any]] | None:
        """Signature, custody link and key of one manifest; returns the media
        to hash (media key, the manifest's clip facts)."""
        media = key[: -len(MANIFEST_SUFFIX)]
        got = self._signed_body(key, "manifest")
        if got is None:
            return None
        doc, body = got
        station = str((doc.get("station") or {}).get("id"))
        seq = doc.get("custody_seq")
        rec = records.get(station)
        if rec is None or not isinstance(seq, int) or rec.stamped.get(seq) != (doc.get("clip") or {}).get("sha256"):
            self.fail("custody-missing", key, f"the custody log of station {station} has no stamping entry {seq} "
                                              "for this clip (custody segments deleted or cut off)")
        manifests[media] = body
        if self.sm2_keys:
            self._check_sm2(key, doc, body)
        clip = doc.get("clip") or {}
        if clip.get("archive_key") != media:
            self.fail("manifest-key", key, f"manifest is for {clip.get('archive_key')!r}")
            return None
        if media not in keyset:
            self.fail("media-missing", media, "manifest without its media")
            return None
        return media, clip

    def _hash(self, media: str) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        with self.archive.read(media) as f:
            while chunk := f.read(4 << 20):
                h.update(chunk)  # releases the GIL: threads hash on every core
                size += len(chunk)
        return h.hexdigest(), size

    def check_media(self, jobs: list[tuple[str, dict[str, Any]]]) -> None:
        """Every media object against its manifest, hashed side by side."""
        total = len(jobs)
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            for n, ((media, clip), (digest, size)) in enumerate(
                    zip(jobs, pool.map(self._hash, (m for m, _ in jobs)), strict=True), start=1):
                if self.progress is not None:
                    self.progress(n, total)
                if digest != clip.get("sha256"):
                    self.fail("media-hash", media, f"sha256 {digest}, manifest says {clip.get('sha256')}")
                elif size != clip.get("size"):
                    self.fail("media-size", media, f"{size} bytes, manifest says {clip.get('size')}")
                else:
                    self.report.clips += 1
                    self.report.partial += bool(clip.get("partial"))

    def _check_sm2(self, key: str, doc: dict[str, Any], body: bytes) -> None:
        from gateway.evidence.gm import SM2_SIG_SUFFIX, sm2_verify

        sig_key = key + SM2_SIG_SUFFIX
        if sig_key not in self.keyset:
            self.fail("manifest-sm2-signature", key, "SM2 signature file missing")
            return
        point = self.sm2_keys.get(str(doc.get("sm2_key_id")))
        if point is None:
            self.fail("manifest-sm2-key-id", key, f"signed by unknown SM2 key {doc.get('sm2_key_id')}")
        elif not sm2_verify(point, body, _read(self.archive, sig_key)):
            self.fail("manifest-sm2-signature", key, "SM2 signature does not verify")

    def check_sm3(self, jobs: list[tuple[str, dict[str, Any]]]) -> None:
        """Media whose manifest names an SM3 digest: that digest too."""
        for media, clip in jobs:
            if not clip.get("sm3"):
                continue
            h = hashlib.new("sm3")
            with self.archive.read(media) as f:
                while chunk := f.read(4 << 20):
                    h.update(chunk)
            if h.hexdigest() != clip["sm3"]:
                self.fail("media-sm3", media, f"sm3 {h.hexdigest()}, manifest says {clip['sm3']}")

    def check_amendment(self, key: str, media: str, manifests: dict[str, bytes]) -> None:
        doc = self._signed(key, "amendment")
        if doc is None:
            return
        manifest = manifests.get(media)
        if manifest is None:
            self.fail("amendment-reference", key, "amends a clip whose manifest is missing or invalid")
            return
        amends = doc.get("amends") or {}
        if amends.get("manifest_sha256") != hashlib.sha256(manifest).hexdigest():
            self.fail("amendment-reference", key, "references a manifest other than the one archived")
            return
        if amends.get("sha256") != json.loads(manifest).get("clip", {}).get("sha256"):
            self.fail("amendment-reference", key, "references another clip")
            return
        self.report.amendments += 1

    def check_custody(self, segment_keys: list[str], want_heads: dict[str, set[int]]) -> dict[str, StationRecord]:
        by_station: dict[str, list[str]] = defaultdict(list)
        for k in segment_keys:
            by_station[k.split("/")[1]].append(k)
        records: dict[str, StationRecord] = {}
        for station, segs in by_station.items():
            rec = records[station] = StationRecord()
            self._check_station(station, segs, rec, want_heads.get(station, set()))
        return records

    def _check_station(self, station: str, segs: list[str], rec: StationRecord, want: set[int]) -> None:
        expected_seq, prev = 1, GENESIS
        for seg in sorted(segs):
            self.report.segments += 1
            for n, line in enumerate(_read(self.archive, seg).splitlines(), start=1):
                obj = f"{seg} line {n}"
                try:
                    entry = json.loads(line)
                    sig = base64.b64decode(entry["sig"], validate=True)
                    seq = int(entry["seq"])
                except (ValueError, KeyError, TypeError) as e:
                    self.fail("custody-format", obj, f"unreadable entry: {e}")
                    return
                pub = self.keys.get(str(entry.get("key_id")))
                if pub is None:
                    self.fail("custody-key-id", obj, f"signed by unknown key {entry.get('key_id')}")
                    return
                if not verify(pub, signed_part(entry), sig):
                    self.fail("custody-signature", obj, "signature does not verify")
                    return
                if entry.get("station") != station:
                    self.fail("custody-station", obj, f"entry of station {entry.get('station')!r}")
                    return
                if self.excerpt and n == 1 and seq != expected_seq:
                    # an excerpt holds whole segments, not every one: each starts where it says
                    expected_seq, prev = seq, str(entry.get("prev"))
                if seq != expected_seq:
                    self.fail("custody-sequence", obj, f"seq {seq}, expected {expected_seq} "
                                                       f"(entries missing or reordered)")
                elif entry.get("prev") != prev:
                    self.fail("custody-chain", obj, "prev does not match the hash of the entry before")
                prev = entry_hash(line)
                expected_seq += 1
                self.report.custody_entries += 1
                rec.last_seq = seq
                data = entry.get("data") or {}
                if entry.get("event") == "stamped":
                    rec.stamped[seq] = str(data.get("sha256"))
                elif entry.get("event") == "clip_archived":
                    rec.archived.append((seq, str(data.get("key"))))
                if seq in want:
                    rec.heads[seq] = prev


def verify_archive(archive: Archive, keys: list[Ed25519PublicKey], witnessed: Sequence[Checkpoint] = (),
                   progress: Callable[[int, int], None] | None = None) -> Report:
    return Verifier(archive, keys, witnessed, progress).run()
