"""The custody log: append-only JSON Lines, hash-chained and signed.

Each entry carries ``seq`` (1, 2, ... across segments), ``prev`` (SHA-256 of
the previous entry's line, without its newline; 64 zeros for the first) and
``sig`` (Ed25519 over the canonical JSON of the entry without ``sig``). So
removing, reordering or altering any entry breaks the chain or a signature.

Lines are durable before anything that depends on them: ``append`` fsyncs
each line unless the caller batches (the catalog appends a transaction's
entries unsynced and calls ``sync`` once before its commit, so the entries
are on disk before the state they report is). Segments rotate after ``rotate_entries``
entries or ``rotate_s`` seconds (checked between batches, never inside one:
the stamper signs a batch's manifests with the sequence numbers their
entries will get) and are then *sealed* (renamed from
``.open.jsonl`` to ``.jsonl``) and forwarded to the archive like clips. A
line torn by a power cut is cut off at start-up (it was never acknowledged).

The log is also the index of everything the station signs (the evidence
graph, gateway/evidence/graph.py): entries about clips name their archive
objects and hashes, and every segment after the first opens with a
``segment_opened`` entry naming the segment before it (its SHA-256), that
segment's signed checkpoint (body and signature) and the RFC 3161 tokens
received since. Sealing writes the checkpoint and opens the next segment at
once, so the sequence number a manifest is signed with stays the one its
entry gets; a segment holding only its opening entry is not sealed again (an
idle station does not rotate for ever).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.durable import fsync_dir
from gateway.evidence.canonical import canonical
from gateway.evidence.checkpoint import SIG_SUFFIX, TSR_SUFFIX, Checkpoint, make_checkpoint, write_checkpoint

if TYPE_CHECKING:  # an annotation only: `status` reads whose log this is without cryptography
    from gateway.evidence.signing import Signer

GENESIS = "0" * 64
#: the first entry of every segment but the first: the index of the one before (gateway/evidence/graph.py)
OPENED = "segment_opened"
#: tokens already named by an opening entry, one file name per line (a crash may name one twice: harmless)
_TOKENS_INDEXED = ".tokens-indexed"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def redact_line(line: bytes) -> bytes:
    """An entry reduced to what keeps the chain checkable (a case file's
    excerpt shows other cases' entries this way): its seq, station, prev and
    the hash of the whole line, which the next entry's prev names."""
    entry = json.loads(line)
    return canonical({"prev": entry.get("prev"), "redacted": entry_hash(line), "seq": entry.get("seq"),
                      "station": entry.get("station")})


def entry_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def read_entries(directory: Path, seqs: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The entries numbered *seqs* that the custody segments still on the
    station hold (segments are named by their first entry, one entry a
    line), by number; an entry whose segment has left the station (archived:
    ``evidence.custody_keep_days``) is not in the answer."""
    firsts: list[tuple[int, Path]] = []
    for seg in directory.glob("custody-*.jsonl"):
        with contextlib.suppress(ValueError):
            firsts.append((int(seg.name.rsplit("-", 1)[-1].split(".")[0]), seg))
    firsts.sort()
    starts = [f for f, _ in firsts]
    wanted: dict[Path, list[tuple[int, int]]] = {}
    for seq in seqs:
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0:
            wanted.setdefault(firsts[i][1], []).append((seq, seq - firsts[i][0]))
    out: dict[int, dict[str, Any]] = {}
    for seg, want in wanted.items():
        try:
            lines = seg.read_bytes().splitlines()
        except OSError:
            continue
        for seq, at in want:
            with contextlib.suppress(IndexError, ValueError):
                entry = json.loads(lines[at])
                if entry.get("seq") == seq:
                    out[seq] = entry
    return out


def signed_part(entry: dict[str, Any]) -> bytes:
    return canonical({k: v for k, v in entry.items() if k != "sig"})


class CustodyLog:
    def __init__(self, directory: Path, signer: Signer, station: str, *, rotate_entries: int = 1000,
                 rotate_s: float = 900.0, counts: Callable[[], dict[str, int]] | None = None) -> None:
        self.dir = directory
        self.signer = signer
        self.station = station
        self.rotate_entries = rotate_entries
        self.rotate_s = rotate_s
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seq = 0
        self.prev = GENESIS
        self._fd: int | None = None
        self._open_path: Path | None = None
        self._open_entries = 0
        self._opened_at = 0.0
        #: lines written since the last fsync
        self._dirty = False
        #: what a checkpoint counts besides entries (the catalog's archived clips)
        self.counts = counts
        #: segments sealed and not yet queued for the archive, each with its signed checkpoint
        self.sealed_pending: list[tuple[Path, Checkpoint]] = []
        #: the newest checkpoint signed
        self.latest_checkpoint: Checkpoint | None = None
        self._recover()

    # -- files --------------------------------------------------------------
    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("custody-*.jsonl"))

    def sealed(self) -> list[Path]:
        return [p for p in self._segments() if not p.name.endswith(".open.jsonl")]

    def _recover(self) -> None:
        segs = self._segments()
        if not segs:
            return
        last = segs[-1]
        data = last.read_bytes()
        if data and not data.endswith(b"\n"):
            # torn by a power cut: the entry was never acknowledged
            data = data[: data.rfind(b"\n") + 1]
            with open(last, "r+b") as f:
                f.truncate(len(data))
                os.fsync(f.fileno())
        lines = data.splitlines()
        if not lines and len(segs) > 1:
            lines = segs[-2].read_bytes().splitlines()
        if lines:
            entry = json.loads(lines[-1])
            self.seq = int(entry["seq"])
            self.prev = entry_hash(lines[-1])
        if last.name.endswith(".open.jsonl"):
            self._open_path = last
            self._open_entries = len(data.splitlines())
            self._opened_at = last.stat().st_mtime
            self._fd = os.open(last, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        else:  # a crash between sealing and opening the next: finish the seal
            self._checkpoint_for(last)
            self._open_segment()
        found = sorted(self.dir.glob("checkpoint-*.json"))
        if found:
            from gateway.evidence.checkpoint import read_checkpoint

            self.latest_checkpoint = read_checkpoint(found[-1])

    def _open_segment(self) -> None:
        path = self.dir / f"custody-{self.station}-{self.seq + 1:010d}.open.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fsync_dir(self.dir)
        self._open_path = path
        self._open_entries = 0
        self._opened_at = time.time()
        before = self.sealed()
        if before:
            self._write(OPENED, self._index_of(before[-1]))
            self.sync()

    def _index_of(self, segment: Path) -> dict[str, Any]:
        """What a ``segment_opened`` entry names: the segment before, its
        checkpoint and the tokens not named yet."""
        seq = int(segment.name.rsplit("-", 1)[-1].split(".")[0])
        body = segment.read_bytes()  # once: its hash and its length
        last = seq + len(body.splitlines()) - 1
        from gateway.evidence.checkpoint import checkpoint_name

        cp = self.dir / checkpoint_name(self.station, last)
        data: dict[str, Any] = {"segment": {"name": segment.name, "sha256": hashlib.sha256(body).hexdigest(),
                                            "first": seq, "last": last}}
        if cp.exists():
            data["checkpoint"] = {"name": cp.name, "sha256": file_sha256(cp),
                                  "signature_sha256": file_sha256(cp.with_name(cp.name + SIG_SUFFIX))}
        named = self._tokens_named()
        tokens = [{"name": t.name, "sha256": file_sha256(t)}
                  for t in sorted(self.dir.glob("checkpoint-*.json" + TSR_SUFFIX)) if t.name not in named]
        if tokens:
            data["tokens"] = tokens
            with open(self.dir / _TOKENS_INDEXED, "a") as f:
                f.write("".join(t["name"] + "\n" for t in tokens))
        return data

    def _tokens_named(self) -> set[str]:
        try:
            return set((self.dir / _TOKENS_INDEXED).read_text().split())
        except FileNotFoundError:
            return set()

    def _checkpoint_for(self, segment: Path) -> Checkpoint:
        """The signed checkpoint over a sealed *segment*, written once."""
        from gateway.evidence.checkpoint import checkpoint_name, read_checkpoint

        lines = segment.read_bytes().splitlines()
        seq = int(json.loads(lines[-1])["seq"])
        path = self.dir / checkpoint_name(self.station, seq)
        if path.exists() and path.with_name(path.name + SIG_SUFFIX).exists():
            return read_checkpoint(path)
        counts = {"entries": seq}
        if self.counts is not None:
            with contextlib.suppress(Exception):  # the counts are informative; the checkpoint is what matters
                counts |= self.counts()
        cp = make_checkpoint(self.signer, self.station, seq, entry_hash(lines[-1]), segment.name, counts)
        write_checkpoint(self.dir, cp)
        self.latest_checkpoint = cp
        return cp

    def seal(self) -> Path | None:
        """Close the open segment and sign its checkpoint; both become
        forwardable, and the next segment opens with their index."""
        if self._fd is None or self._open_path is None:
            return None
        if self._open_entries <= 1 and self.sealed():  # only its opening entry: nothing happened since
            return None
        self.sync()
        os.close(self._fd)
        self._fd = None
        sealed = self._open_path.with_name(self._open_path.name.replace(".open.jsonl", ".jsonl"))
        if self._open_entries == 0:
            self._open_path.unlink()
            fsync_dir(self.dir)
            self._open_path = None
            return None
        os.replace(self._open_path, sealed)
        os.chmod(sealed, 0o444)
        fsync_dir(self.dir)
        self._open_path = None
        self.sealed_pending.append((sealed, self._checkpoint_for(sealed)))
        self._open_segment()
        return sealed

    def maybe_rotate(self) -> Path | None:
        if self._fd is not None and (self._open_entries >= self.rotate_entries
                                     or time.time() - self._opened_at >= self.rotate_s):
            return self.seal()
        return None

    # -- entries ------------------------------------------------------------
    def sync(self) -> None:
        """Make every line appended so far durable (one fsync for a batch)."""
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
        self._dirty = False

    def append(self, event: str, *, sync: bool = True, **data: Any) -> dict[str, Any]:
        """Sign and append one entry; with ``sync=False`` it is durable only
        after the next ``sync`` (or a seal)."""
        if self._fd is None:
            self._open_segment()
        entry = self._write(event, data)
        if sync:
            self.sync()
        return entry

    def _write(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        assert self._fd is not None
        entry: dict[str, Any] = {
            "seq": self.seq + 1,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "station": self.station,
            "event": event,
            "data": {k: v for k, v in data.items() if v is not None},
            "prev": self.prev,
            "key_id": self.signer.key_id,
        }
        entry["sig"] = base64.b64encode(self.signer.sign(signed_part(entry))).decode()
        line = canonical(entry)
        os.write(self._fd, line + b"\n")
        self._dirty = True
        self.seq += 1
        self.prev = entry_hash(line)
        self._open_entries += 1
        return entry

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None
