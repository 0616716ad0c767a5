"""Where recorded events go besides the catalog's outbox: the custody log
(inside the recording transaction: an event announced is an event on the
record), then logs and listeners (metrics, MQTT, the status writer) once it
is committed. Telemetry delivers every event from the outbox, even after an
outage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.catalog import Event
from gateway.evidence.custody import CustodyLog

log = logging.getLogger("dockgate.events")

WARNING_EVENTS = {"foreign_device", "wrong_password", "quarantined", "clip_interrupted",
                  "disk_low", "archive_down", "archive_refused", "device_error", "skipped_entry", "partial_clip",
                  "release_failed", "implausible_time", "unrecognised_device", "storage_missing", "catalog_behind",
                  "archive_swept", "hard_linked_clip"}
#: what the custody log records: every hand a clip passes through
CUSTODY_EVENTS = {"docked", "identified", "clock", "pulled", "seen_again", "clip_interrupted", "stamped",
                  "partial_clip", "assigned", "amended", "forwarded", "verified", "clip_archived",
                  "amendment_archived", "quarantined", "released", "purged", "undocked", "wrong_password",
                  "foreign_device", "implausible_time", "disk_low", "storage_switched", "unrecognised_device",
                  "catalog_behind", "archive_swept", "hard_linked_clip"}
#: a clip quarantined because the station lost or spoiled its own copy, staged again from a recorder that
#: still held it (issue 27): which clip, from which recorder file, and why it was pulled again
CUSTODY_EVENTS |= {"pulled_again"}
#: gateway/web: every look at evidence is on record (who, what, when, from where: a clip page, a play, a
#: download, an export, a search with its query and result count, the statistics, a dispatch proposal),
#: and marking on the station screen; a refused login or PIN, and a lock-out, are warnings
CUSTODY_EVENTS |= {"viewed", "played", "downloaded", "exported", "marked", "searched", "statistics_viewed"}
WARNING_EVENTS |= {"login_failed", "login_locked"}
#: a poison pill set aside (gateway/values.py): an assignment that breaks the doors' rules is not applied,
#: and the record says so (a clip that cannot be stamped is ``quarantined``, already both)
CUSTODY_EVENTS |= {"assignment_set_aside"}
WARNING_EVENTS |= {"assignment_set_aside"}
#: the station's own clock (gateway/timesync.py): while it is not synchronised no recorder clock is set and
#: drift is unverified; the record says when that began and ended
CUSTODY_EVENTS |= {"station_clock_unsynchronised", "station_clock_synchronised"}
WARNING_EVENTS |= {"station_clock_unsynchronised"}
#: retention follows the evidence graph (gateway/evidence/retention.py): a legal hold set on or released from a
#: case; Object Lock extensions the archive did not take (kept and tried again) and, once all are applied, again
CUSTODY_EVENTS |= {"legal_hold_set", "legal_hold_released", "retention_pending", "retention_applied"}
WARNING_EVENTS |= {"retention_pending"}

Listener = Callable[[str, int | None, dict[str, Any]], None]


class Journal:
    def __init__(self, custody: CustodyLog | None = None) -> None:
        self.custody = custody
        self.listeners: list[Listener] = []

    def on_record(self, ev: Event) -> int | None:
        if self.custody is not None and ev.type in CUSTODY_EVENTS:
            return int(self.custody.append(ev.type, sync=False, slot=ev.slot, **ev.data)["seq"])
        return None

    def sync(self) -> None:
        if self.custody is not None:
            self.custody.sync()

    def announce(self, ev: Event) -> None:
        where = f"slot {ev.slot}: " if ev.slot is not None else ""
        detail = " ".join(f"{k}={v}" for k, v in ev.data.items() if v is not None)
        fields = {"event": ev.type, "slot": ev.slot, "serial": ev.data.get("serial"), "clip": ev.data.get("sha256")}
        log.log(logging.WARNING if ev.type in WARNING_EVENTS else logging.INFO, "%s%s %s", where, ev.type, detail,
                extra={"journal": fields})
        for cb in self.listeners:
            cb(ev.type, ev.slot, ev.data)
