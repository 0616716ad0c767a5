"""Events people and systems act on: logged, and kept in the catalog's outbox
so that telemetry can deliver every one of them, even after an outage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.catalog import Catalog
from gateway.custody import CustodyLog

log = logging.getLogger("dockgate.events")

WARNING_EVENTS = {"foreign_device", "wrong_password", "quarantined", "clip_interrupted",
                  "disk_low", "archive_down", "device_error", "skipped_entry", "partial_clip", "release_failed",
                  "implausible_time"}
#: what the custody log records: every hand a clip passes through
CUSTODY_EVENTS = {"docked", "identified", "clock", "pulled", "seen_again", "clip_interrupted", "stamped",
                  "partial_clip", "assigned", "amended", "forwarded", "verified", "clip_archived",
                  "amendment_archived", "quarantined", "released", "purged", "undocked", "wrong_password",
                  "foreign_device", "implausible_time", "disk_low"}


class Events:
    def __init__(self, catalog: Catalog, custody: CustodyLog | None = None) -> None:
        self.catalog = catalog
        self.custody = custody
        self.listeners: list[Callable[[str, int | None, dict[str, Any]], None]] = []

    def emit(self, type_: str, slot: int | None = None, **data: Any) -> str:
        if self.custody is not None and type_ in CUSTODY_EVENTS:
            # custody first: an event announced is an event on the record
            self.custody.append(type_, slot=slot, **data)
        eid = self.catalog.add_event(type_, slot, data)
        where = f"slot {slot}: " if slot is not None else ""
        detail = " ".join(f"{k}={v}" for k, v in data.items() if v is not None)
        level = logging.WARNING if type_ in WARNING_EVENTS else logging.INFO
        log.log(level, "%s%s %s", where, type_, detail)
        for cb in self.listeners:
            cb(type_, slot, data)
        return eid
