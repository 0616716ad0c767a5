"""Whose custody log a folder holds: the station id and number of its newest
entry, read from the ends of the newest segments.

The daemon asks at start (a state folder of another station is not
continued under a new id without a word) and `status` asks on every call,
within 50 ms of the CLI's own start at a year's history: so this module
imports nothing of the evidence package's signing, and never reads a
segment whole or makes a Path of every name in a folder of thousands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: how much of a segment's end is read first (an entry is well under a kilobyte)
_TAIL = 1 << 16


def _newest_in_segment(segment: Path) -> tuple[str, int] | None:
    """(station, seq) of the newest whole entry of *segment*, read from its end (None: none)."""
    with open(segment, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        size = min(end, _TAIL)
        while True:
            f.seek(end - size)
            lines = [x for x in f.read(size).splitlines() if x.strip()]
            if size < end:
                lines = lines[1:]  # the first may be cut by where the read started
            for line in reversed(lines):
                try:
                    entry = json.loads(line)
                    return str(entry["station"]), int(entry["seq"])
                except (ValueError, KeyError, TypeError):
                    continue  # torn by a power cut: the one before it
            if size >= end:
                return None
            size = min(end, size * 4)


def newest_entry(directory: Path, checkpoint: str | None = None) -> tuple[str, int] | None:
    """(station id, seq) of the newest entry of the custody log in *directory*
    (None: no entry yet).

    With the newest *checkpoint* the catalog recorded
    (``checkpoint-STATION-SEQ.json``) the segment opened after it,
    ``custody-STATION-SEQ+1.open.jsonl``, is the log's newest if it is there
    (the writer seals a segment, renaming it, before it opens the next; once
    that one is sealed in turn the name is gone): one stat, no listing.
    Otherwise (no hint, a catalog behind its log, no seal yet, a segment
    without a whole entry) the names are listed, never made Paths, and the
    newest segments read from their ends."""
    if checkpoint and checkpoint.startswith("checkpoint-") and checkpoint.endswith(".json"):
        station, _, seq = checkpoint[len("checkpoint-"):-len(".json")].rpartition("-")
        if station and seq.isdigit():
            try:
                found = _newest_in_segment(directory / f"custody-{station}-{int(seq) + 1:010d}.open.jsonl")
            except FileNotFoundError:
                found = None
            if found is not None:
                return found
    with os.scandir(directory) as it:
        names = sorted((e.name for e in it if e.name.startswith("custody-") and e.name.endswith(".jsonl")),
                       reverse=True)
    for name in names:
        if (found := _newest_in_segment(directory / name)) is not None:
            return found
    return None
