"""The evidence graph: what a station's custody log says the archive holds.

Every object the station signs is named, by archive key and SHA-256, in a
custody entry (gateway/evidence/custody.py):

* ``stamped`` names the clip's media, manifest, Ed25519 signature and SM2
  signature (the hashes are known when the manifest is signed);
* ``clip_archived`` says the archive must now hold them;
* ``amended`` names an amendment and its signature by hash and the case it
  files the clip under; ``amendment_archived`` binds them to their archive
  key (the amendment's number);
* ``segment_opened``, the first entry of every segment but the first, names
  the segment before, its checkpoint with the signature, and the RFC 3161
  tokens received since.

One rule, here, turns those entries into what an archive (or an excerpt of
it) must hold; `dockgate verify`, `verify --case`, `verify --bag` and the
case export's self-check all ask it. Missing, renamed, replaced (an older
version) and added objects all show as a difference between the index and
the listing; amendments of one clip also chain (each names the hash of the
one before), so dropping or reordering one shows even where the custody
record is only an excerpt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MANIFEST = ".manifest.json"
SIG = ".sig"
SM2_SIG = ".sm2.sig"
_OF_MEDIA = re.compile(r"(\.manifest\.json|\.amendment-\d+\.json)(\.sm2)?(\.sig)?$")


def media_key(key: str) -> str:
    """The media object an archive key belongs to (itself for media)."""
    return _OF_MEDIA.sub("", key)


@dataclass(frozen=True)
class Node:
    """One indexed object."""

    key: str
    #: None where an entry written before the index named no hash (presence only)
    sha256: str | None
    #: the custody entry that indexes it
    seq: int
    kind: str
    clip: str | None = None


@dataclass
class ClipFacts:
    """What custody says about one clip."""

    sha256: str
    key: str | None = None
    stamped_seq: int = 0
    archived_seq: int = 0
    #: the case the newest entry files it under (stamped, then each amendment)
    case: str | None = None
    #: its objects by kind, from the ``stamped`` entry
    objects: dict[str, Node] = field(default_factory=dict)
    #: amendment hashes named by ``amended`` entries, in order: (seq, amendment, signature)
    amended: list[tuple[int, str, str | None]] = field(default_factory=list)
    #: amendments bound to an archive key by ``amendment_archived``
    amendments: list[Node] = field(default_factory=list)


@dataclass
class StationGraph:
    station: str
    clips: dict[str, ClipFacts] = field(default_factory=dict)
    #: segments, checkpoints, their signatures and tokens, by archive key
    custody: dict[str, Node] = field(default_factory=dict)
    last_seq: int = 0

    def clip(self, sha256: str) -> ClipFacts:
        return self.clips.setdefault(sha256, ClipFacts(sha256))

    def add(self, entry: dict[str, Any]) -> None:
        """Fold one (verified) custody entry into the graph."""
        seq, event, data = int(entry["seq"]), entry.get("event"), entry.get("data") or {}
        self.last_seq = max(self.last_seq, seq)
        if not isinstance(data, dict):
            return
        sha = data.get("sha256")
        if event == "stamped" and isinstance(sha, str):
            c = self.clip(sha)
            c.key, c.stamped_seq, c.case = str(data.get("key")), seq, data.get("case_number")
            for kind, suffix, h in (("media", "", sha), ("manifest", MANIFEST, data.get("manifest_sha256")),
                                    ("signature", MANIFEST + SIG, data.get("signature_sha256")),
                                    ("sm2-signature", MANIFEST + SM2_SIG, data.get("sm2_signature_sha256"))):
                if kind in ("media", "manifest", "signature") or h:
                    c.objects[kind] = Node(c.key + suffix, h, seq, kind, sha)
        elif event == "clip_archived" and isinstance(sha, str):
            c = self.clip(sha)
            c.archived_seq = seq
            if c.key is None:
                c.key = str(data.get("key"))
        elif event == "amended" and isinstance(sha, str):
            c = self.clip(sha)
            c.case = data.get("case_number")
            c.amended.append((seq, str(data.get("amendment_sha256")), data.get("signature_sha256")))
        elif event == "amendment_archived" and isinstance(sha, str):
            key = str(data.get("key"))
            c = self.clip(sha)
            c.amendments.append(Node(key, data.get("amendment_sha256"), seq, "amendment", sha))
            sig = data.get("signature_sha256")
            if sig is None:  # written before the index: the ``amended`` entry has it
                sig = next((s for _, a, s in c.amended if a == data.get("amendment_sha256")), None)
            c.amendments.append(Node(key + SIG, sig, seq, "amendment-signature", sha))
        elif event == "segment_opened":
            folder = f"custody/{self.station}/"
            seg = data.get("segment") or {}
            if seg.get("name"):
                self._custody(Node(folder + str(seg["name"]), seg.get("sha256"), seq, "custody-segment"))
            cp = data.get("checkpoint") or {}
            if cp.get("name"):
                self._custody(Node(folder + str(cp["name"]), cp.get("sha256"), seq, "checkpoint"))
                self._custody(Node(folder + str(cp["name"]) + SIG, cp.get("signature_sha256"), seq,
                                   "checkpoint-signature"))
            for t in data.get("tokens") or []:
                if isinstance(t, dict) and t.get("name"):
                    self._custody(Node(folder + str(t["name"]), t.get("sha256"), seq, "token"))

    def _custody(self, node: Node) -> None:
        self.custody.setdefault(node.key, node)

    # -- what must be there -------------------------------------------------------------
    def in_case(self, case: str) -> set[str]:
        """Clips the custody record, at its newest entry about each, files under *case*."""
        return {sha for sha, c in self.clips.items() if c.case == case and c.stamped_seq}

    def required(self, clips: set[str] | None = None) -> list[Node]:
        """Objects the archive must hold: every archived clip's (or only
        *clips*'), with every archived amendment, and the custody objects."""
        out: list[Node] = []
        for sha, c in self.clips.items():
            if (clips is not None and sha not in clips) or not c.archived_seq:
                continue
            out.extend(c.objects.values())
            out.extend(c.amendments)
        return out

    def known(self) -> dict[str, Node]:
        """Every object this station's record names, by key (amendments not
        yet bound to a key are in ``amendment_hashes``)."""
        nodes = dict(self.custody)
        for c in self.clips.values():
            for n in list(c.objects.values()) + c.amendments:
                nodes[n.key] = n
        return nodes

    def amendment_hashes(self) -> dict[str, tuple[str, int, str | None]]:
        """amendment SHA-256 -> (clip, seq of its ``amended`` entry, signature SHA-256)."""
        return {a: (c.sha256, seq, s) for c in self.clips.values() for seq, a, s in c.amended}


def amendment_chain(docs: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """Breaks in one clip's amendment chain: *docs* are (key, body SHA-256,
    document) in archive order (by number); returns (key, why) for each
    amendment whose ``previous_sha256`` does not name the one before it.
    Amendments written before the chain (no such field) are not judged."""
    out: list[tuple[str, str]] = []
    before: str | None = None
    for key, sha, doc in docs:
        if "previous_sha256" in doc and doc["previous_sha256"] != before:
            out.append((key, "the amendment before it is not the one it names (one dropped, reordered or renamed)"
                        if doc["previous_sha256"] else "it is the clip's first amendment, yet others come before it"))
        before = sha
    return out
