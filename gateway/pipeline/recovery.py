"""Start-up: a catalog that fell behind the custody log is caught up from it.

The catalog (SQLite) and the custody log (signed, fsynced lines) are written
in the same transaction, custody first: the custody log can be ahead of the
catalog only if the catalog lost commits (a damaged or truncated WAL, an
older copy restored over it). Then the custody log says what happened: clips
archived are restored as archived (never pulled, stamped or sent again), clips
stamped whose staged copy and manifest are still here go back to the queue,
and one ``catalog_behind`` alarm names the gap. Anything else the recorders
still hold is pulled again; its content then is a sighting, or, if it was
archived, "already archived" (never a false quarantine).

A clip the catalog still has quarantined for the station's own copy, which
the custody log says was pulled again (``pulled_again``), leaves quarantine
as it did then: archived if the custody log says so, else back to the queue
with the copy pulled again, when it is still in staging (else it stays
quarantined and the next dock pulls it again).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.catalog import Catalog, ClipState
from gateway.catalog.records import manifest_path_of
from gateway.pipeline.staging import Staging

log = logging.getLogger(__name__)


@dataclass
class Gap:
    catalog_seq: int
    custody_seq: int
    restored: int = 0
    confirmed: int = 0
    #: clips pulled again (out of a station-side quarantine) whose move the catalog lost
    pulled_again: int = 0
    unknown: list[str] = field(default_factory=list)


def _first_seq(segment: Path) -> int:
    """A segment's first entry, from its name (``custody-STATION-0000000001[.open].jsonl``)."""
    try:
        return int(segment.name.split(".")[0].rsplit("-", 1)[-1])
    except ValueError:
        return 0


def _entries_after(custody_dir: Path, seq: int) -> list[dict[str, Any]]:
    """Entries after *seq*: read from the segment that holds *seq* + 1 on,
    never the whole year's log (segments are named by their first entry)."""
    out = []
    segs = sorted(custody_dir.glob("custody-*.jsonl"))
    starts = [_first_seq(s) for s in segs]
    begin = max((i for i, first in enumerate(starts) if first <= seq + 1), default=0)
    for seg in segs[begin:]:
        for line in seg.read_bytes().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line: the custody log itself ignores it on open
            if int(entry.get("seq", 0)) > seq:
                out.append(entry)
    return out


def catch_up(catalog: Catalog, custody_dir: Path, custody_seq: int, staging: Staging) -> Gap | None:
    high = catalog.custody_high()
    if high is None or custody_seq <= high:
        return None  # up to date, or a catalog from before custody positions were recorded
    gap = Gap(high, custody_seq)
    pulled: dict[str, dict[str, Any]] = {}
    stamped: dict[str, dict[str, Any]] = {}
    archived: set[str] = set()
    again: dict[str, dict[str, Any]] = {}
    for entry in _entries_after(custody_dir, high):
        data, kind = entry.get("data") or {}, entry.get("event")
        sha = str(data.get("sha256", ""))
        if kind in ("pulled", "seen_again", "pulled_again"):
            pulled.setdefault(sha, data)
        if kind == "pulled_again":
            again[sha] = data
        elif kind == "stamped":
            stamped[sha] = data
        elif kind == "clip_archived":
            archived.add(sha)
    moved = {sha for sha in sorted(again)
             if _pulled_again(catalog, staging, sha, again[sha], stamped.get(sha), sha in archived)}
    gap.pulled_again = len(moved)
    for sha in sorted(set(stamped) | archived):
        if catalog.has_clip(sha):
            clip = catalog.clip(sha)
            if sha in moved or (clip is not None and clip.state == ClipState.QUARANTINED):
                continue  # done above, or still set aside: pulled again at the next dock
            if sha in archived:
                catalog.confirm_archived(sha)
                gap.confirmed += 1
            continue
        facts = pulled.get(sha)
        manifest = staging.root / manifest_path_of(sha)
        copy = staging.path_for(sha)
        if facts is None or not (sha in archived or (manifest.exists() and copy.exists())):
            gap.unknown.append(sha)  # pulled again from the recorder if it still holds it
            continue
        stamp = stamped.get(sha, {})
        if catalog.restore_clip(
                sha, str(facts.get("serial", "?")), str(facts.get("path", sha)).encode("utf-8", "surrogateescape"),
                int(facts.get("size", 0)), None, staging.relative(copy) if copy.exists() else None,
                stamp.get("key"), staging.relative(manifest) if manifest.exists() else None,
                stamp.get("manifest_sha256"), archived=sha in archived):
            gap.restored += 1
    catalog.emit("catalog_behind", catalog_seq=gap.catalog_seq, custody_seq=gap.custody_seq,
                 missing_entries=gap.custody_seq - gap.catalog_seq, restored=gap.restored,
                 confirmed=gap.confirmed, pulled_again=gap.pulled_again, not_restorable=len(gap.unknown))
    log.error("the catalog had recorded custody up to entry %d, the custody log holds %d: it lost commits "
              "(damaged or older catalog). Restored %d clips, confirmed %d as archived and %d as pulled again "
              "from the custody log; %d will be pulled again if their recorders still hold them", gap.catalog_seq,
              gap.custody_seq, gap.restored, gap.confirmed, gap.pulled_again, len(gap.unknown))
    return gap


def _pulled_again(catalog: Catalog, staging: Staging, sha: str, again: dict[str, Any],
                  restamp: dict[str, Any] | None, archived: bool) -> bool:
    """Redo a pull again the catalog lost (the clip is still quarantined in
    it): archived (through the moves the forwarder makes), or queued with
    the copy pulled again, as stamped when it went there then, else staged
    (a re-stamp whose record was lost too is stamped anew: never archived,
    nothing depends on it). Nothing if the copy is gone and it was not
    archived: the next dock pulls it again. True if the catalog moved it."""
    clip = catalog.clip(sha)
    copy = staging.path_for(sha)
    if clip is None or clip.state != ClipState.QUARANTINED or not (archived or copy.exists()):
        return False
    if archived:  # with the manifest stamped after the pull again, if there was one: the one archived
        manifest = (restamp or {}).get("manifest_sha256")
        if not catalog.restore_pulled_again(sha, staging.relative(copy), ClipState.STAMPED, manifest):
            return False
        catalog.confirm_archived(sha)
        return True
    to = ClipState.STAMPED if again.get("state") == ClipState.STAMPED and restamp is None else ClipState.STAGED
    return catalog.restore_pulled_again(sha, staging.relative(copy), to)
