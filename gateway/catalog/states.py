"""The clip state machine: every state, and every move a state may make.

Two levels, as in the tables:

* an **item** is what a recorder holds (one file, by serial, path, size and
  mtime). ``discovered -> pulling -> pulled | sighting``; a pull that cannot
  finish (unplugged, vanished, changed, unreadable, daemon killed) ends
  ``interrupted``, and the next dock pulls it again.
* a **clip** is content, one per SHA-256. ``staged -> stamped -> forwarding
  -> archived``. ``forwarding`` goes back to ``stamped`` when the archive is
  down or refuses the station (the queue keeps it), and to ``quarantined``
  when the clip itself is at fault (its staged bytes changed, the archive
  holds different bytes under its key): kept, alarmed, never released.

``archived`` and ``quarantined`` are final, with one exception, the pull
again (issue 27): a clip quarantined because the *station's own copy* failed
(``REPULL_REASONS``: its staged media or its signed manifest lost, changed or
unreadable on the station's disk) is not the evidence's fault, and the
recorders still hold it (release frees only archived clips). When its
content is pulled again, the clip leaves quarantine for ``staged`` (stamped
anew) or, its signed manifest intact, ``stamped`` (``AGAIN_CLIP_MOVES``), and
the recorder's item it comes from may be pulled once more although it was
``pulled`` or a ``sighting`` (``AGAIN_ITEM_MOVES``). These moves are made
only by the calls that pull again (``again=True``) and only while the clip is
quarantined for such a reason; a quarantine for the archive's sake (it holds
other bytes under the key, a key it cannot hold, a copy that never reads
back right), or from before reasons were recorded, stays final.

Any other move is a bug, and the catalog refuses it with
``TransitionRefused`` instead of writing it.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.errors import DockgateError


class ItemState(StrEnum):
    DISCOVERED = "discovered"
    PULLING = "pulling"
    INTERRUPTED = "interrupted"
    PULLED = "pulled"
    SIGHTING = "sighting"


class ClipState(StrEnum):
    STAGED = "staged"
    STAMPED = "stamped"
    FORWARDING = "forwarding"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"


I, C = ItemState, ClipState  # noqa: E741 - the tables below read as the diagram

#: from -> the states it may move to; ``None`` is "no row yet"
ITEM_MOVES: dict[ItemState | None, frozenset[ItemState]] = {
    None: frozenset({I.DISCOVERED}),
    I.DISCOVERED: frozenset({I.PULLING}),
    I.INTERRUPTED: frozenset({I.PULLING}),
    I.PULLING: frozenset({I.PULLED, I.SIGHTING, I.INTERRUPTED}),
    I.PULLED: frozenset(),
    I.SIGHTING: frozenset(),
}
CLIP_MOVES: dict[ClipState | None, frozenset[ClipState]] = {
    None: frozenset({C.STAGED}),
    C.STAGED: frozenset({C.STAMPED, C.QUARANTINED}),
    C.STAMPED: frozenset({C.FORWARDING, C.QUARANTINED}),
    C.FORWARDING: frozenset({C.ARCHIVED, C.STAMPED, C.QUARANTINED}),
    C.ARCHIVED: frozenset(),
    C.QUARANTINED: frozenset(),
}

#: quarantine reasons that are the station's own copy at fault: a copy pulled again from a recorder cures them.
#: ``source_fault``: the staged media (``archive.SourceFault``); ``manifest_fault``: the signed manifest
REPULL_REASONS = frozenset({"source_fault", "manifest_fault"})
#: the moves only a pull again makes, and only for a clip quarantined for one of REPULL_REASONS: back to
#: ``staged`` (to be stamped again), or to ``stamped`` when its signed manifest on the station is intact
AGAIN_CLIP_MOVES: dict[ClipState, frozenset[ClipState]] = {C.QUARANTINED: frozenset({C.STAGED, C.STAMPED})}
#: a recorder's item whose content is such a clip is pulled again, whether it was pulled or a sighting
AGAIN_ITEM_MOVES: dict[ItemState, frozenset[ItemState]] = {I.PULLED: frozenset({I.PULLING}),
                                                           I.SIGHTING: frozenset({I.PULLING})}

#: what people and scripts see, in pipeline order (items before they have
#: content, then clips); ``status --json`` counts every one of them
STATES = ("discovered", "pulling", "interrupted", "staged", "stamped", "forwarding", "archived",
          "quarantined")
#: item states that mean "still to pull"
TO_PULL = (I.DISCOVERED, I.INTERRUPTED, I.PULLING)
#: clip states that mean "not yet in the archive"
QUEUED = (C.STAGED, C.STAMPED, C.FORWARDING)


class TransitionRefused(DockgateError):
    """A state change the state machine does not allow (a bug, or two
    workers racing for one row); nothing was written."""

    reason = "transition_refused"

    def __init__(self, kind: str, key: str | int, current: str | None, wanted: str) -> None:
        self.kind = kind
        self.key = key
        self.current = current
        self.wanted = wanted
        where = "no such row" if current is None else f"it is {current}"
        super().__init__(f"{kind} {key}: cannot move to {wanted}: {where}")


def can_pull_again(clip_state: str | None, reason: str | None) -> bool:
    """Is a clip in *clip_state*, quarantined for *reason*, one a pull again cures?"""
    return clip_state == C.QUARANTINED and reason in REPULL_REASONS


def check_item(key: int, current: str | None, wanted: ItemState, *, again: bool = False) -> None:
    """*again*: the call pulls again, and the item's content is a clip a pull again cures."""
    now = None if current is None else ItemState(current)
    allowed = ITEM_MOVES[now] | (AGAIN_ITEM_MOVES.get(now, frozenset()) if again and now else frozenset())
    if wanted not in allowed:
        raise TransitionRefused("item", key, current, wanted)


def check_clip(key: str, current: str | None, wanted: ClipState, *, again: bool = False) -> None:
    """*again*: the call pulls again, and the clip is quarantined for a reason a pull again cures."""
    now = None if current is None else ClipState(current)
    allowed = CLIP_MOVES[now] | (AGAIN_CLIP_MOVES.get(now, frozenset()) if again and now else frozenset())
    if wanted not in allowed:
        raise TransitionRefused("clip", key[:16], current, wanted)
