"""Events people and systems act on: logged, and kept in the catalog's outbox
so that telemetry can deliver every one of them, even after an outage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.catalog import Catalog

log = logging.getLogger("dockgate.events")

WARNING_EVENTS = {"foreign_device", "wrong_password", "quarantined", "clip_interrupted",
                  "disk_low", "archive_down", "device_error", "skipped_entry", "partial_clip"}


class Events:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.listeners: list[Callable[[str, int | None, dict[str, Any]], None]] = []

    def emit(self, type_: str, slot: int | None = None, **data: Any) -> str:
        eid = self.catalog.add_event(type_, slot, data)
        where = f"slot {slot}: " if slot is not None else ""
        detail = " ".join(f"{k}={v}" for k, v in data.items() if v is not None)
        level = logging.WARNING if type_ in WARNING_EVENTS else logging.INFO
        log.log(level, "%s%s %s", where, type_, detail)
        for cb in self.listeners:
            cb(type_, slot, data)
        return eid
