"""The custody log: append-only JSON Lines, hash-chained and signed.

Each entry carries ``seq`` (1, 2, ... across segments), ``prev`` (SHA-256 of
the previous entry's line, without its newline; 64 zeros for the first) and
``sig`` (Ed25519 over the canonical JSON of the entry without ``sig``). So
removing, reordering or altering any entry breaks the chain or a signature.

Lines are durable before anything that depends on them: ``append`` fsyncs
each line unless the caller batches (the catalog appends a transaction's
entries unsynced and calls ``sync`` once before its commit, so the entries
are on disk before the state they report is). Segments rotate after ``rotate_entries``
entries or ``rotate_s`` seconds and are then *sealed* (renamed from
``.open.jsonl`` to ``.jsonl``) and forwarded to the archive like clips. A
line torn by a power cut is cut off at start-up (it was never acknowledged).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.durable import fsync_dir
from gateway.evidence.canonical import canonical
from gateway.evidence.signing import Signer

GENESIS = "0" * 64


def entry_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def last_station(directory: Path) -> tuple[str, int] | None:
    """Whose custody log *directory* holds: the station id and sequence
    number of its newest entry (None: no entry yet). A reinstall finds the old
    catalog and log here; the daemon does not continue them under another id
    without a word."""
    for seg in sorted(directory.glob("custody-*.jsonl"), reverse=True):
        lines = [x for x in seg.read_bytes().splitlines() if x.strip()]
        for line in reversed(lines):
            try:
                entry = json.loads(line)
                return str(entry["station"]), int(entry["seq"])
            except (ValueError, KeyError, TypeError):
                continue  # torn by a power cut: the one before it
    return None


def signed_part(entry: dict[str, Any]) -> bytes:
    return canonical({k: v for k, v in entry.items() if k != "sig"})


class CustodyLog:
    def __init__(self, directory: Path, signer: Signer, station: str, *, rotate_entries: int = 1000,
                 rotate_s: float = 900.0) -> None:
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
        #: segments sealed and not yet queued for the archive: (path, its last seq, that entry's hash)
        self.sealed_pending: list[tuple[Path, int, str]] = []
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

    def _open_segment(self) -> None:
        path = self.dir / f"custody-{self.station}-{self.seq + 1:010d}.open.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fsync_dir(self.dir)
        self._open_path = path
        self._open_entries = 0
        self._opened_at = time.time()

    def seal(self) -> Path | None:
        """Close the open segment; it becomes forwardable."""
        if self._fd is None or self._open_path is None:
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
        self.sealed_pending.append((sealed, self.seq, self.prev))
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
        if sync:
            self.sync()
        self.seq += 1
        self.prev = entry_hash(line)
        self._open_entries += 1
        if self._open_entries >= self.rotate_entries:
            self.seal()
        return entry

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None
