"""Release: free a docked recorder of exactly the clips the archive verified.

With ``release.policy = "after-archive"`` the dock session waits, after its
last pull, until every clip it pulled is archived or quarantined, then
deletes the archived ones from the recorder (partial ones only with
``release.partial``), each only if it is still the very file that was listed
(the driver checks). Quarantined, unarchived and unknown files stay. A clip
that cannot be deleted is an alarm, not a failure of the dock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.base import ClipRef
from gateway.catalog import Catalog, ClipState, event
from gateway.config import ReleaseConfig
from gateway.errors import DockgateError
from gateway.pipeline.live import SlotState

log = logging.getLogger(__name__)
POLL_S = 0.5


async def release(catalog: Catalog, cfg: ReleaseConfig, live: SlotState, serial: str, refs: list[ClipRef],
                  delete: Callable[[ClipRef], Awaitable[Any]]) -> tuple[int, int]:
    """Free the recorder; returns (released, kept). *delete* removes one clip
    from the recorder (in a worker thread, cancellable with the session)."""
    while True:
        held = catalog.holdings(serial, refs)
        waiting = [h for h in held if h.clip_state in (ClipState.STAGED, ClipState.STAMPED, ClipState.FORWARDING)]
        if not waiting:
            break
        live.state = "waiting"
        live.message = f"waiting for the archive to confirm {len(waiting)} clips before freeing the recorder"
        await asyncio.sleep(POLL_S)
    released = kept = 0
    for h in held:
        if h.released_at is not None:
            continue
        if h.clip_state != ClipState.ARCHIVED or (h.partial and not cfg.partial):
            kept += 1
            continue
        try:
            await delete(h.ref)
        except DockgateError as e:
            kept += 1
            catalog.emit("release_failed", live.slot, serial=serial, path=h.ref.display, error=str(e))
            continue
        catalog.released(h.id, event("released", live.slot, serial=serial, path=h.ref.display, sha256=h.sha256))
        released += 1
    live.message = f"released {released} archived clips, kept {kept}"
    log.info("slot %d serial %s: %s", live.slot, serial, live.message)
    return released, kept
