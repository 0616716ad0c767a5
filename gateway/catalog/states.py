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

``archived`` and ``quarantined`` are final. Any other move is a bug, and the
catalog refuses it with ``TransitionRefused`` instead of writing it.
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


def check_item(key: int, current: str | None, wanted: ItemState) -> None:
    now = None if current is None else ItemState(current)
    if wanted not in ITEM_MOVES[now]:
        raise TransitionRefused("item", key, current, wanted)


def check_clip(key: str, current: str | None, wanted: ClipState) -> None:
    now = None if current is None else ClipState(current)
    if wanted not in CLIP_MOVES[now]:
        raise TransitionRefused("clip", key[:16], current, wanted)
