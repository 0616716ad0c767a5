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

* the evidence graph (gateway/evidence/graph.py), both ways: every object
  the custody record indexes is there with the hash it names, and nothing
  is there that it does not index (but the newest segment with its
  checkpoint, and tokens, which are checked themselves); a clip's
  amendments chain;
* every RFC 3161 token: its imprint is its checkpoint's hash, its time lies
  between that checkpoint's and the next one's, and with ``tsa_ca`` it
  chains to the TSA's CA;
* one case (``case``): every clip the custody record files under it, at its
  newest entry, is there with every amendment.

The archive is listed once, each object read once. Nothing is written.

* incremental (``since``, ``--since-witnessed``): only the custody folders
  and each new clip's own objects are listed; the chain goes on from the
  witnessed checkpoint's head; what custody indexes after it is checked
  (docs/verify.md says what it does not look at). With a verified-hash
  cache (gateway/evidence/hashcache.py), media whose archive identity is
  unchanged are not read; the comparison with the manifest is made anyway.

Why one module of this length: every check shares one listing, one read of
each object and one report, and a third party reads the whole verifier in one
place (the rule of what must be there is gateway/evidence/graph.py).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive import Archive
from gateway.evidence.canonical import canonical
from gateway.evidence.checkpoint import TSR_SUFFIX, Checkpoint, is_checkpoint
from gateway.evidence.custody import GENESIS, entry_hash, signed_part
from gateway.evidence.graph import StationGraph, amendment_chain, media_key
from gateway.evidence.hashcache import HashCache
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX, is_evidence_metadata
from gateway.evidence.signing import key_id, verify

#: clocks: a station's and a TSA's may differ this much
TOKEN_SKEW = timedelta(minutes=5)
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
    tokens: int = 0
    #: witnessed checkpoints signed by a key that signs another station's record (ignored: forged)
    foreign_witnessed: list[str] = field(default_factory=list)
    #: with a case: how many clips the custody record files under it
    case_clips: int | None = None
    failures: list[Failure] = field(default_factory=list)
    #: objects read whole (manifests, signatures, custody), media read and hashed, media hashes taken from the
    #: verified-hash cache (identity unchanged) or from a bag's checked manifest: what a run cost
    objects_read: int = 0
    media_hashed: int = 0
    media_cached: int = 0
    media_known: int = 0
    #: incremental (``since``): the witnessed checkpoint the run starts after (station, seq)
    since: tuple[str, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        return (f"{self.clips} clips ({self.partial} partial), {self.amendments} amendments, "
                f"{self.custody_entries} custody entries in {self.segments} segments, "
                f"{self.checkpoints} checkpoints"
                + (f", {self.tokens} timestamp tokens" if self.tokens else "")
                + (f", {self.witnessed} witnessed checkpoints" if self.witnessed else "")
                + (f" ({len(self.foreign_witnessed)} more ignored: signed by another station's key)"
                   if self.foreign_witnessed else "")
                + (f"; the custody record files {self.case_clips} clips under the case"
                   if self.case_clips is not None else "")
                + (f"; only what is new after witnessed checkpoint {self.since[1]} of {self.since[0]}"
                   if self.since is not None else "")
                + (f"; {self.media_cached} media hashes from the cache (identity unchanged)"
                   if self.media_cached else "")
                + (f"; {self.media_known} media hashes from the bag's manifest (its fixity checked)"
                   if self.media_known else ""))


@dataclass
class StationRecord:
    """What one station's custody log in the archive says."""

    last_seq: int = 0
    #: the keys that sign its entries: a checkpoint of this station signed by another key is not its
    key_ids: set[str] = field(default_factory=set)
    #: seq -> sha256 of the clip a ``stamped`` entry is for
    stamped: dict[int, str] = field(default_factory=dict)
    #: (seq, archive key) of every ``clip_archived`` entry
    archived: list[tuple[int, str]] = field(default_factory=list)
    #: seq -> entry hash, for the seqs a checkpoint names
    heads: dict[int, str] = field(default_factory=dict)
    graph: StationGraph = field(default_factory=lambda: StationGraph(""))
    #: the archive keys of its segments, oldest first
    segments: list[str] = field(default_factory=list)


def _read(archive: Archive, key: str) -> bytes:
    with archive.read(key) as f:
        data: bytes = f.read()
    return data


def _seq_of(name: str) -> int:
    """The number in custody-<station>-<n>.jsonl or checkpoint-<station>-<n>.json[.sig|.tsr]."""
    m = re.search(r"-(\d{10})\.json", name)
    return int(m.group(1)) if m else -1


class Verifier:
    def __init__(self, archive: Archive, keys: list[Ed25519PublicKey], witnessed: Sequence[Checkpoint] = (),
                 progress: Callable[[int, int], None] | None = None, *, excerpt: bool = False,
                 sm2_keys: dict[str, bytes] | None = None, case: str | None = None,
                 clip: str | None = None, case_keys: set[str] = frozenset(),  # type: ignore[assignment]
                 tsa_ca: str | None = None, digests: Callable[[str], tuple[str, int] | None] | None = None,
                 cache: HashCache | None = None, since: Checkpoint | None = None) -> None:
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
        #: a witness store may hold many stations: only checkpoints signed by the keys given count
        self.witnessed = [cp for cp in witnessed if self._ours(cp)]
        self._witness_none = bool(witnessed) and not self.witnessed
        self.report = Report()
        self.keyset: set[str] = set()
        #: one case, or one clip (SHA-256 or archive key), with its custody; *case_keys*: media keys the
        #: archive's own documents put in the case (so a clip custody files elsewhere is still judged)
        self.case, self.clip, self.case_keys = case, clip, set(case_keys)
        #: the clips judged (None: all)
        self.scope: set[str] | None = None
        self.tsa_ca = tsa_ca
        #: SHA-256 of every object read, so each is read once
        self.sha: dict[str, str] = {}
        #: media (SHA-256, size) known without reading: a bag's manifest once its fixity held
        self.digests = digests
        #: the verified-hash cache (gateway/evidence/hashcache.py): media whose identity is unchanged
        self.cache = cache
        #: incremental: only what custody indexes after this witnessed checkpoint, and the chain from it
        self.since = since
        #: station -> (seq, head) the custody chain starts after (incremental)
        self._start: dict[str, tuple[int, str]] = {}
        #: media keys of clips stamped before the start that have new entries (new amendments)
        self._old_media: set[str] = set()
        if since is not None:
            if since not in self.witnessed:
                self.witnessed.append(since)
            try:
                doc = json.loads(since.body)
                self._start[str(doc["station"])] = (int(doc["seq"]), str(doc["head"]))
                self.report.since = (str(doc["station"]), int(doc["seq"]))
            except (ValueError, KeyError, TypeError):
                pass  # judged (and failed) as a malformed witnessed checkpoint; nothing is skipped

    def _ours(self, cp: Checkpoint) -> bool:
        try:
            return str(json.loads(cp.body).get("key_id")) in self.keys
        except (ValueError, AttributeError):
            return True  # judged (and failed) as malformed, not silently dropped

    def read(self, key: str) -> bytes:
        self.report.objects_read += 1
        data = _read(self.archive, key)
        self.sha[key] = hashlib.sha256(data).hexdigest()
        return data

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
            body = self.read(key)
        if sig is None:
            if key + SIG_SUFFIX not in self.keyset:
                self.fail(f"{kind}-signature", key, "signature file missing")
                return None
            sig = self.read(key + SIG_SUFFIX)
        if not sig:
            self.fail(f"{kind}-signature", key, "signature file missing or empty")
            return None
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
        # incremental: the custody folders are listed, and later each new clip's own objects; not the archive
        keys = sorted(self.archive.keys("custody/" if self.since is not None else ""))
        self.keyset = set(keys)
        if self.since is not None:
            keys = self._after_start(keys)
        # checkpoints first: they say which entry hashes the custody pass must keep
        archived_cps = [(k, doc) for k in keys if k.startswith("custody/") and is_checkpoint(k)
                        if (doc := self._signed(k, "checkpoint")) is not None]
        witnessed = [(f"witness {cp.name}", doc) for cp in self.witnessed
                     if (doc := self._signed(f"witness {cp.name}", "witness", cp.body, cp.signature)) is not None]
        want: dict[str, set[int]] = defaultdict(set)
        for _, doc in archived_cps + witnessed:
            want[str(doc.get("station"))].add(int(doc.get("seq", 0)))
        records = self.check_custody([k for k in keys if k.startswith("custody/") and k.endswith(".jsonl")], want)
        if self.case is not None or self.clip is not None:
            keys = self._in_scope(keys, records)
        if self.since is not None:  # presence is judged against the whole listing, checks run on what is new
            keys = self._new_scope(keys, records)
            keyset = self.keyset
        else:
            keyset = self.keyset = set(keys)
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
        amendments: dict[str, list[tuple[int, str, str, dict[str, Any]]]] = defaultdict(list)
        for k in keys:
            m = _AMEND.match(k)
            if m:
                doc = self.check_amendment(k, m.group("media"), manifests)
                if doc is not None:
                    amendments[m.group("media")].append((int(m.group("n")), k, self.sha[k], doc))
        for chain in amendments.values():
            for key, why in amendment_chain([(k, sha, doc) for _, k, sha, doc in sorted(chain)]):
                self.fail("amendment-chain", key, why)
        for station, rec in sorted(records.items()):
            scoped = None if self.scope is None else {c.key for c in rec.graph.clips.values()
                                                      if c.sha256 in self.scope}
            for seq, key in ([] if self.excerpt else rec.archived):
                if scoped is not None and key not in scoped:
                    continue
                for part in (key, key + MANIFEST_SUFFIX, key + MANIFEST_SUFFIX + SIG_SUFFIX):
                    if part not in keyset:
                        self.fail("clip-missing", part, f"custody entry {seq} of station {station} records the "
                                                        "clip as archived; the archive does not hold it")
        for where, doc in archived_cps:
            crec = records.get(where.split("/")[1])
            if str(doc.get("station")) != where.split("/")[1] or (crec and str(doc.get("key_id")) not in crec.key_ids):
                self.fail("checkpoint-station", where, f"names station {doc.get('station')!r}, signed by key "
                                                       f"{str(doc.get('key_id'))[:16]}…, which does not sign this "
                                                       "station's record")
                continue
            self.check_checkpoint("checkpoint", where, doc, records)
            self.report.checkpoints += 1
        signs = {k: st for st, rec in records.items() for k in rec.key_ids}
        for where, doc in witnessed:
            station, kid = str(doc.get("station")), str(doc.get("key_id"))
            wrec = records.get(station)
            if (wrec is not None and kid not in wrec.key_ids) or (wrec is None and signs.get(kid, station) != station):
                # one station's key signing "another's" checkpoint: a forgery the witness should not have kept;
                # it says nothing about the station it names
                self.report.foreign_witnessed.append(where)
                continue
            self.check_checkpoint("witness", where, doc, records)
            self.report.witnessed += 1
        if self.witnessed and not self.excerpt:
            self._witness_in_archive()
        if self._witness_none:
            self.fail("witness-none", "witness", "the witness holds no checkpoint signed by the keys given")
        self.check_tokens(keys, archived_cps)  # before the graph: each token is read once
        self.check_graph(records, keys)
        return self.report

    def _in_scope(self, keys: list[str], records: dict[str, StationRecord]) -> list[str]:
        """One case or clip: its clips as custody files them, and those the
        archive's own documents put there; every custody object stays."""
        scope: set[str] = set()
        for rec in records.values():
            for c in rec.graph.clips.values():
                if (self.case is not None and c.case == self.case and c.stamped_seq) or (
                        self.clip is not None and self.clip in (c.sha256, c.key)):
                    scope.add(c.sha256)
        if self.case is not None:
            self.report.case_clips = len(scope)
        media = {c.key for rec in records.values() for c in rec.graph.clips.values() if c.sha256 in scope}
        if self.case is not None:  # what the archive's (or the bag's) own documents put in the case
            for rec in records.values():
                for c in rec.graph.clips.values():
                    if c.key in self.case_keys and c.sha256 not in scope and c.stamped_seq:
                        self.fail("case-filing", c.key, f"custody files this clip under {c.case or 'no case'}, "
                                                        f"not {self.case}")
        media |= self.case_keys
        if self.clip is not None and self.clip in self.keyset:
            media.add(self.clip)
        self.scope = scope
        if self.excerpt:  # a case file holds the case and nothing else: everything in it is judged
            return keys
        return [k for k in keys if k.startswith("custody/") or media_key(k) in media]

    def _after_start(self, keys: list[str]) -> list[str]:
        """Incremental: the custody objects of a started station from its
        start on (segments opening after the witnessed checkpoint,
        checkpoints from it), everything else as listed."""
        out = []
        for k in keys:
            parts = k.split("/")
            start = self._start.get(parts[1]) if len(parts) == 3 and parts[0] == "custody" else None
            if start is not None:
                n = _seq_of(k)
                if k.endswith(".jsonl") and n <= start[0]:
                    continue  # a segment the witnessed checkpoint covers
                if is_checkpoint(k.removesuffix(SIG_SUFFIX).removesuffix(TSR_SUFFIX)) and n < start[0]:
                    continue
            out.append(k)
        return out

    def _new_scope(self, keys: list[str], records: dict[str, StationRecord]) -> list[str]:
        """Incremental: the clips custody files after the start (stamped,
        archived, amended), with every object of theirs (each clip's own
        prefix listed); custody as above."""
        scope: set[str] = set()
        media: set[str] = set()
        for rec in records.values():
            for sha, c in rec.graph.clips.items():
                scope.add(sha)
                key = c.key or next((media_key(n.key) for n in c.amendments), None)
                if key is None:
                    continue  # amended, the amendment not archived yet: nothing new in the archive
                media.add(key)
                if not c.stamped_seq:
                    self._old_media.add(key)
        self.scope = scope
        own = [k for m in sorted(media) for k in self.archive.keys(m) if k == m or k.startswith(m + ".")]
        self.keyset.update(own)
        return sorted([k for k in keys if k.startswith("custody/")] + own)

    def _before_start(self, station: str, seq: object) -> bool:
        start = self._start.get(station)
        return start is not None and isinstance(seq, int) and seq <= start[0]

    def _witness_in_archive(self) -> None:
        """What a witness kept, the archive must hold, byte for byte (deleting
        archived checkpoints, or replacing one, is caught)."""
        for cp in self.witnessed:
            if f"witness {cp.name}" in self.report.foreign_witnessed:
                continue
            try:
                station = str(cp.doc.get("station"))
            except (ValueError, AttributeError):  # malformed: failed already as witness-format
                continue
            key = f"custody/{station}/{cp.name}"
            if key not in self.keyset:
                self.fail("witness-checkpoint-missing", key, "a witness holds this checkpoint; the archive does not")
            elif self._sha(key) != hashlib.sha256(cp.body).hexdigest():
                self.fail("witness-checkpoint-replaced", key, "the archive's copy differs from the witness's")
            if cp.token is None:
                continue
            if key + TSR_SUFFIX not in self.keyset:
                self.fail("witness-token-missing", key + TSR_SUFFIX, "a witness holds this token; the archive does not")
            elif self._sha(key + TSR_SUFFIX) != hashlib.sha256(cp.token).hexdigest():
                self.fail("witness-token-replaced", key + TSR_SUFFIX, "the archive's token differs from the witness's")

    def _sha(self, key: str) -> str:
        if key not in self.sha:
            self.read(key)
        return self.sha[key]

    def check_graph(self, records: dict[str, StationRecord], keys: list[str]) -> None:
        """The archive against the custody record's index, both ways."""
        known: dict[str, Any] = {}
        unbound: dict[str, tuple[str, int, str | None]] = {}
        for station, rec in sorted(records.items()):
            g = rec.graph
            scope = self.scope
            if scope is None and self.excerpt:  # a case file: the clips it holds
                scope = {sha for sha, c in g.clips.items() if c.key in self.keyset}
            custody = list(g.custody.values())
            if self.excerpt:  # an excerpt holds some checkpoints: each with what custody indexes of it
                custody = [n for n in custody if n.kind in ("checkpoint-signature", "token") and
                           n.key.removesuffix(SIG_SUFFIX).removesuffix(TSR_SUFFIX) in self.keyset]
            required = g.required(scope) + custody
            for node in required:
                if node.key not in self.keyset:
                    self.fail("index-missing", node.key, f"custody entry {node.seq} of station {station} indexes "
                                                         f"this {node.kind}; the archive does not hold it")
            for key, node in g.known().items():
                if self.excerpt and node.kind == "custody-segment":
                    continue  # an excerpt's segments show other cases' entries as hashes: the chain checks them
                if key in self.keyset and node.sha256 and node.kind != "media" and self._sha(key) != node.sha256:
                    self.fail("index-replaced", key, f"not the {node.kind} custody entry {node.seq} of station "
                                                     f"{station} indexes (replaced, or an older version)")
            known.update(g.known())
            unbound.update(g.amendment_hashes())
        bound = {n.sha256: k for k, n in known.items() if n.kind == "amendment" and n.sha256}
        newest_segment = {st: rec.segments[-1] for st, rec in records.items() if rec.segments}
        for k in keys:
            if k.endswith(SIG_SUFFIX) and k.removesuffix(SIG_SUFFIX).removesuffix(".sm2") not in self.keyset:
                self.fail("index-extra", k, "a signature without the document it signs")
                continue
            if k in known or k.endswith(TSR_SUFFIX):  # tokens are checked for what they are (check_tokens)
                continue
            if media_key(k) in self._old_media:
                continue  # an object of a clip indexed before the start (incremental): not new
            if k.startswith("custody/"):
                if self.excerpt:
                    continue
                station = k.split("/")[1]
                srec = records.get(station)
                last = newest_segment.get(station)
                if srec is not None and last is not None and (k == last or (
                        is_checkpoint(k.removesuffix(SIG_SUFFIX)) and _seq_of(k) == srec.last_seq)):
                    continue  # the newest segment and its checkpoint: the next segment will index them
                self.fail("index-extra", k, "a custody object no custody entry indexes (added, or renamed)")
                continue
            m = _AMEND.match(k.removesuffix(SIG_SUFFIX))
            if m is not None:
                body_key = k.removesuffix(SIG_SUFFIX)
                sha = self.sha.get(body_key) if body_key in self.keyset else None
                if sha in bound:
                    self.fail("index-extra", k, f"a copy of the amendment custody indexes as {bound[sha]} "
                                                "(renamed, or replayed under another number)")
                elif sha not in unbound:
                    self.fail("index-extra", k, "an amendment no custody entry names (added)")
                elif k.endswith(SIG_SUFFIX) and unbound[sha][2] and self._sha(k) != unbound[sha][2]:
                    self.fail("index-replaced", k, "not the signature custody names for this amendment")
                continue
            if media_key(k) + MANIFEST_SUFFIX in self.keyset and any(
                    f.obj == media_key(k) + MANIFEST_SUFFIX and f.check == "custody-missing"
                    for f in self.report.failures):
                continue  # said already: the manifest's clip has no custody
            self.fail("index-extra", k, "an object no custody entry indexes (added, or renamed)")

    def check_tokens(self, keys: list[str], checkpoints: list[tuple[str, dict[str, Any]]]) -> None:
        """Each RFC 3161 token by itself (imprint, CA), then its time: not
        before its checkpoint was made, and not after the next checkpoint's
        token (tokens are asked for in order, so a checkpoint rewritten and
        stamped later shows)."""
        from gateway.evidence.timestamp import read_token

        made = {k: str(doc.get("made_at") or "") for k, doc in checkpoints}
        times: dict[str, datetime] = {}
        for k in keys:
            if not k.endswith(TSR_SUFFIX):
                continue
            cp = k.removesuffix(TSR_SUFFIX)
            if cp not in self.keyset:
                self.fail("token-checkpoint", k, "a token without its checkpoint")
                continue
            when, problem = read_token(self.read(k), _read(self.archive, cp), self.tsa_ca)
            if when is None:
                self.fail("token", k, problem or "unreadable")
                continue
            times[cp] = when
            try:
                own = datetime.fromisoformat(made[cp].replace("Z", "+00:00"))
            except (KeyError, ValueError):
                continue  # the checkpoint itself failed, and says so
            if when < own - TOKEN_SKEW:
                self.fail("token-time", k, f"stamped {when:%Y-%m-%dT%H:%M:%SZ}, before its checkpoint was made "
                                           f"({made[cp]})")
            self.report.tokens += 1
        by_station: dict[str, list[str]] = defaultdict(list)
        for cp in sorted(times, key=_seq_of):
            by_station[cp.split("/")[1]].append(cp)
        for cps in by_station.values():
            for a, b in itertools.pairwise(cps):
                if times[a] > times[b] + TOKEN_SKEW:
                    self.fail("token-time", a + TSR_SUFFIX, f"stamped {times[a]:%Y-%m-%dT%H:%M:%SZ}, after the next "
                                                            f"checkpoint's token ({times[b]:%Y-%m-%dT%H:%M:%SZ}): "
                                                            "this checkpoint was stamped again later")

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
        if self._before_start(station, seq):
            pass  # stamped under the witnessed checkpoint this run starts after: checked by the run that covered it
        elif rec is None or not isinstance(seq, int) or rec.stamped.get(seq) != (doc.get("clip") or {}).get("sha256"):
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
        """(SHA-256, size) of a media object: known (a checked bag), from the
        cache while its identity is unchanged, else read and hashed (and
        cached when its identity held while it was read). Only the reading
        is saved: the caller compares with the manifest either way."""
        if self.digests is not None and (known := self.digests(media)) is not None:
            self.report.media_known += 1
            return known
        identity = self.archive.identity(media) if self.cache is not None else None
        if self.cache is not None and (hit := self.cache.get(media, identity)) is not None:
            self.report.media_cached += 1
            return hit[0], hit[1]
        h = hashlib.sha256()
        size = 0
        with self.archive.read(media) as f:
            while chunk := f.read(4 << 20):
                h.update(chunk)  # releases the GIL: threads hash on every core
                size += len(chunk)
        self.report.media_hashed += 1
        if self.cache is not None and identity is not None and self.archive.identity(media) == identity:
            self.cache.put(media, identity, h.hexdigest(), size)
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
        elif not sm2_verify(point, body, self.read(sig_key)):
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

    def check_amendment(self, key: str, media: str, manifests: dict[str, bytes]) -> dict[str, Any] | None:
        doc = self._signed(key, "amendment")
        if doc is None:
            return None
        manifest = manifests.get(media)
        if manifest is None:
            self.fail("amendment-reference", key, "amends a clip whose manifest is missing or invalid")
            return None
        amends = doc.get("amends") or {}
        if amends.get("manifest_sha256") != hashlib.sha256(manifest).hexdigest():
            self.fail("amendment-reference", key, "references a manifest other than the one archived")
            return None
        if amends.get("sha256") != json.loads(manifest).get("clip", {}).get("sha256"):
            self.fail("amendment-reference", key, "references another clip")
            return None
        self.report.amendments += 1
        return doc

    def check_custody(self, segment_keys: list[str], want_heads: dict[str, set[int]]) -> dict[str, StationRecord]:
        by_station: dict[str, list[str]] = defaultdict(list)
        for k in segment_keys:
            by_station[k.split("/")[1]].append(k)
        for station in self._start:
            by_station.setdefault(station, [])
        records: dict[str, StationRecord] = {}
        for station, segs in by_station.items():
            rec = records[station] = StationRecord(graph=StationGraph(station), segments=sorted(segs))
            if station in self._start and self.since is not None:  # incremental: the chain goes on from its head
                rec.last_seq, head = self._start[station]
                rec.heads[rec.last_seq] = head
                rec.key_ids.add(str(json.loads(self.since.body).get("key_id")))
            self._check_station(station, segs, rec, want_heads.get(station, set()))
        return records

    def _check_station(self, station: str, segs: list[str], rec: StationRecord, want: set[int]) -> None:
        expected_seq, prev = 1, GENESIS
        if station in self._start:
            expected_seq, prev = self._start[station][0] + 1, self._start[station][1]
        for seg in sorted(segs):
            self.report.segments += 1
            for n, line in enumerate(self.read(seg).splitlines(), start=1):
                obj = f"{seg} line {n}"
                try:
                    entry = json.loads(line)
                    if self.excerpt and isinstance(entry, dict) and "redacted" in entry:
                        # another case's entry in a case file: its hash keeps the chain, nothing else shows
                        seq = int(entry["seq"])
                        if n == 1 and seq != expected_seq:
                            expected_seq, prev = seq, str(entry.get("prev"))
                        if seq != expected_seq or entry.get("prev") != prev:
                            self.fail("custody-chain", obj, "a redacted entry out of sequence or chain")
                        prev, expected_seq = str(entry["redacted"]), expected_seq + 1
                        self.report.custody_entries += 1
                        rec.last_seq = seq
                        if seq in want:
                            rec.heads[seq] = prev
                        continue
                    sig = base64.b64decode(entry["sig"], validate=True)
                    seq = int(entry["seq"])
                except (ValueError, KeyError, TypeError, AttributeError) as e:
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
                rec.key_ids.add(str(entry.get("key_id")))
                rec.graph.add(entry)
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
