"""What the catalog hands out: typed records with named fields, built from
rows by column name (never by position), and the event a transition writes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # annotations only: reading the catalog needs no driver code
    from drivers.base import ClipRef

R = TypeVar("R")

#: a clip's staged copy and signed manifest where staging puts them (``pipeline/staging.py``,
#: ``pipeline/stamp.py``): derived from its hash, so the row stores ``DERIVED`` ('') instead (issue 30,
#: 162 B a clip); NULL still means "none" (no staged copy, not stamped yet)
DERIVED = ""
#: staging's folders of clips (by content) and of their signed manifests: the one place their layout is named
MEDIA_DIR = "media"
MANIFESTS_DIR = "manifests"
_MANIFEST_NAME = ".manifest.json"  # gateway.evidence.manifest.MANIFEST_SUFFIX (a layer above the catalog)


#: a SHA-256 as the catalog stores it (issue 30): its 32 bytes, not 64 characters of hex, in every row and
#: index that holds one (clips, items, amendments, clip locks; 160 B a clip at a year). Callers see the hex:
#: the catalog binds ``stored_hash(h)`` and reads ``hash_sql(col)``, built from SQLite's own functions, so the
#: read-only connections of ``status`` and the web need none of ours (bookworm's SQLite 3.40 has no unhex())
HASH_BYTES = 32
#: the columns that hold one (what ``Store._move`` converts in the values it sets)
HASH_COLUMNS = frozenset({"sha256", "manifest_sha256"})


def stored_hash(h: str | None) -> bytes | str | None:
    """What a row stores for the hex SHA-256 *h*: its bytes. Anything else stays as it is (and so matches no
    stored hash: a lookup by a malformed one finds nothing, as before)."""
    if isinstance(h, str) and len(h) == 2 * HASH_BYTES:
        try:
            return bytes.fromhex(h)
        except ValueError:
            return h
    return h


def hash_text(stored: bytes | str | None) -> str | None:
    """A stored hash as callers see it (lower-case hex)."""
    return stored.hex() if isinstance(stored, bytes) else stored


def hash_sql(col: str) -> str:
    """SQL: hash column *col* as callers see it (lower-case hex; NULL stays NULL)."""
    return f"(CASE typeof({col}) WHEN 'blob' THEN lower(hex({col})) ELSE {col} END)"


#: a custody entry's number as ``clip_trail`` packs it: big-endian, fixed width (a trillion entries)
SEQ_BYTES = 5


def packed_seqs(seqs: Iterable[int]) -> bytes:
    """Custody entry numbers as ``clip_trail`` stores them (appended to as entries are written)."""
    return b"".join(int(s).to_bytes(SEQ_BYTES, "big") for s in seqs)


def unpacked_seqs(packed: bytes | None) -> list[int]:
    """The entry numbers of a ``clip_trail`` row, in order."""
    raw = bytes(packed or b"")
    return sorted(int.from_bytes(raw[i:i + SEQ_BYTES], "big") for i in range(0, len(raw) - SEQ_BYTES + 1, SEQ_BYTES))


class PackedSeqs:
    """SQL aggregate ``packed_seqs(seq)``: a clip's entries packed, in order (the migration's)."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def step(self, seq: int) -> None:
        self.seqs.append(int(seq))

    def finalize(self) -> bytes:
        return packed_seqs(sorted(self.seqs))


def staged_path_of(sha256: str) -> str:
    return f"{MEDIA_DIR}/{sha256[:2]}/{sha256}"


def manifest_path_of(sha256: str) -> str:
    return f"{MANIFESTS_DIR}/{sha256}{_MANIFEST_NAME}"


def stored_staged(sha256: str, path: str | None) -> str | None:
    """What the row stores for the staged copy *path*: ``DERIVED`` when staging's own name for it."""
    return DERIVED if path is not None and path == staged_path_of(sha256) else path


def stored_manifest(sha256: str, path: str | None) -> str | None:
    return DERIVED if path is not None and path == manifest_path_of(sha256) else path


def staged_sql(c: str = "c") -> str:
    """SQL: clip row *c*'s staged path as callers see it (``DERIVED`` expanded)."""
    h = hash_sql(f"{c}.sha256")
    return (f"(CASE {c}.staged_path WHEN '{DERIVED}' THEN '{MEDIA_DIR}/' || substr({h}, 1, 2) || '/' "
            f"|| {h} ELSE {c}.staged_path END)")


def manifest_sql(c: str = "c") -> str:
    """SQL: clip row *c*'s manifest path as callers see it."""
    return (f"(CASE {c}.manifest_path WHEN '{DERIVED}' THEN '{MANIFESTS_DIR}/' || {hash_sql(f'{c}.sha256')} || "
            f"'{_MANIFEST_NAME}' ELSE {c}.manifest_path END)")


def from_row(cls: type[R], row: sqlite3.Row) -> R:
    """A record from the columns of *row* that the record names."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: hash_text(row[k]) if k in HASH_COLUMNS else row[k]
                  for k in row.keys() if k in names})  # noqa: SIM118 - a Row iterates values


@dataclass(frozen=True)
class Event:
    """Something people and systems act on. Recorded in the catalog's outbox
    (and, for custody types, the custody log) in the same transaction as the
    state change it reports."""

    type: str
    slot: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


def event(type_: str, slot: int | None = None, **data: Any) -> Event:
    return Event(type_, slot, data)


def event_id(stored: bytes | str) -> str:
    """An event's id as callers see it (a UUID's text) from the row's: its 16 bytes (issue 30), or text
    (an id that is no UUID's canonical text stays as written)."""
    if isinstance(stored, bytes) and len(stored) == 16:
        h = stored.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return str(stored)


def stored_event_id(eid: str) -> bytes | str:
    """What the row stores for event id *eid*: a UUID's canonical text as its 16 bytes, else the text."""
    try:
        raw = bytes.fromhex(eid.replace("-", ""))
    except ValueError:
        return eid
    return raw if len(raw) == 16 and event_id(raw) == eid else eid


@dataclass(frozen=True)
class EventRow:
    seq: int
    id: str
    ts: float
    type: str
    slot: int | None
    data: dict[str, Any]

    @classmethod
    def of(cls, row: sqlite3.Row) -> EventRow:
        return cls(row["seq"], event_id(row["id"]), row["ts"], row["type"], row["slot"], json.loads(row["data"]))

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "ts": self.ts, "type": self.type, "slot": self.slot,
                "data": self.data}


@dataclass(frozen=True)
class PendingItem:
    id: int
    ref: ClipRef


@dataclass(frozen=True)
class DockRow:
    id: int
    slot: int
    docked_at: float
    vid: int | None = None
    pid: int | None = None
    usb_serial: str | None = None
    detect_source: str | None = None
    profile: str | None = None
    serial: str | None = None
    model: str | None = None
    officer: str | None = None
    officer_name: str | None = None
    unit: str | None = None
    recorder_clock: float | None = None
    station_clock: float | None = None
    clock_drift_s: float | None = None
    clock_set: int | None = None
    undocked_at: float | None = None
    result: str | None = None
    #: GA/T 947 IDCode (manufacturer and model code), where the family has one
    idcode: str | None = None
    #: label of the storage volume read at this dock, where the volume has one
    volume_label: str | None = None


@dataclass(frozen=True)
class ClipRow:
    sha256: str
    size: int
    state: str
    staged_path: str | None
    archive_key: str | None
    attempts: int
    item_id: int
    serial: str
    officer: str | None
    path: bytes
    mtime_ns: int
    dock_id: int | None
    manifest_path: str | None
    manifest_sha256: str | None
    partial: int
    capture_utc: float | None
    assignment_id: int | None

    @property
    def display(self) -> str:
        return self.path.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Assignment:
    id: int
    officer: str
    from_ts: float
    to_ts: float
    case_number: str | None
    proof: str | None
    category: str | None
    important: int | None
    created_at: float


@dataclass(frozen=True)
class DueAmendment:
    id: int
    sha256: str
    path: str
    archive_key: str


@dataclass(frozen=True)
class Holding:
    """One listed clip of a recorder as the catalog knows it: what release
    decides on."""

    id: int
    ref: ClipRef
    item_state: str
    released_at: float | None
    sha256: str | None
    clip_state: str | None
    partial: int | None


@dataclass(frozen=True)
class Purgeable:
    sha256: str
    staged_path: str
    size: int
