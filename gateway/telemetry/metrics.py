"""Prometheus metrics: prefix dockgate_, base units, _total counters, bounded
labels only (slot, result, reason; never serial, officer or clip)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from gateway import __version__
from gateway.errors import CannotListen

log = logging.getLogger(__name__)

#: event type -> (stage, result): one counter per stage, so that a sum over
#: `result` is that stage's throughput (a clip is counted once per stage)
_STAGES = {"pulled": ("pull", "staged"), "seen_again": ("pull", "seen_again"),
           "clip_interrupted": ("pull", "interrupted"), "clip_archived": ("forward", "archived"),
           "quarantined": ("forward", "quarantined"), "released": ("release", "released"),
           "release_failed": ("release", "failed"), "purged": ("purge", "purged")}
#: event type -> error reason label
_ERRORS = {"wrong_password": "wrong_password", "foreign_device": "foreign_device", "device_error": "device",
           "unrecognised_device": "unrecognised_device", "storage_missing": "storage_missing",
           "quarantined": "quarantine", "clip_interrupted": "interrupted", "disk_low": "disk_low",
           "archive_down": "archive_down", "archive_refused": "archive_refused",
           "release_failed": "release_failed", "skipped_entry": "skipped_entry", "catalog_behind": "catalog_behind",
           "station_clock_unsynchronised": "clock_unsynchronised"}
#: what a slot can be doing (bounded: the per-slot state gauge has one series per slot and state)
SLOT_STATES = ("idle", "identifying", "switching", "pulling", "waiting", "done", "error", "foreign")
_SIZE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self, slots: int, station: str = "") -> None:
        r = self.registry = CollectorRegistry()
        self.build = Info("dockgate_build", "dockgate version and station id", registry=r)
        self.build.info({"version": __version__, "station": station})
        self.docked = Gauge("dockgate_recorders_docked", "Recorders docked now", registry=r)
        self.docks = Counter("dockgate_docks_total", "Recorders docked (one per dock)", registry=r)
        self.stage = {stage: Counter(f"dockgate_{stage}_clips_total", f"Clips through the {stage} stage, by result",
                                     ["result"], registry=r)
                      for stage in sorted({st for st, _ in _STAGES.values()})}
        self.partial = Counter("dockgate_partial_clips_total", "Clips archived as partial (cut short)", registry=r)
        self.bytes_pulled = Counter("dockgate_pulled_bytes_total", "Bytes pulled from recorders", registry=r)
        self.bytes_forwarded = Counter("dockgate_forwarded_bytes_total", "Bytes stored in the archive", registry=r)
        self.pull_seconds = Histogram("dockgate_pull_duration_seconds", "Time to pull one clip", registry=r,
                                      buckets=_SIZE_BUCKETS)
        self.forward_seconds = Histogram("dockgate_forward_duration_seconds", "Time to archive one clip",
                                         registry=r, buckets=_SIZE_BUCKETS)
        self.queue_clips = Gauge("dockgate_queue_clips", "Clips waiting to be archived", registry=r)
        self.queue_bytes = Gauge("dockgate_queue_bytes", "Bytes waiting to be archived", registry=r)
        self.queue_age = Gauge("dockgate_queue_oldest_age_seconds", "Age of the oldest clip not yet archived "
                               "(0: none waiting)", registry=r)
        self.last_archived = Gauge("dockgate_last_archived_timestamp_seconds",
                                   "When the newest clip was archived (Unix time)", registry=r)
        self.slot_state = Gauge("dockgate_slot_state", "1 for what each slot is doing now", ["slot", "state"],
                                registry=r)
        self.staging_free = Gauge("dockgate_staging_free_bytes", "Free space on staging", registry=r)
        self.disk = Gauge("dockgate_disk_used_bytes", "Bytes the station keeps of what grows with history "
                          "(catalog, custody: pipeline/housekeep.py)", ["what"], registry=r)
        self.custody_removed = Gauge("dockgate_custody_files_removed", "Custody files removed from the station "
                                     "since start (archived, past evidence.custody_keep_days)", registry=r)
        self.catalog_free = Gauge("dockgate_catalog_free_bytes", "Free pages inside the catalog file (given back "
                                  "a few at a time by the housekeeper's incremental vacuum)", registry=r)
        self.catalog_compacted = Gauge("dockgate_catalog_compacted_timestamp_seconds", "When the catalog file was "
                                       "last rewritten whole (Unix time; weekly, while no slot pulls)", registry=r)
        self.events_pruned = Gauge("dockgate_events_pruned", "Events the catalog's outbox forgot since start "
                                   "(published, custody entry archived, past evidence.events_keep_days)", registry=r)
        self.archive_up = Gauge("dockgate_archive_up", "1 if the last archive operation succeeded", registry=r)
        self.mqtt_connected = Gauge("dockgate_mqtt_connected", "1 while connected to the broker", registry=r)
        self.outbox = Gauge("dockgate_events_unpublished", "Events waiting for the broker", registry=r)
        self.drift = Gauge("dockgate_clock_drift_seconds", "Recorder clock minus station clock at docking",
                           ["slot"], registry=r)
        self.errors = Counter("dockgate_errors_total", "Problems by reason", ["reason"], registry=r)
        self.clock_alarm = Gauge("dockgate_station_clock_unsynchronised", "1 while the station's own clock is not "
                                 "synchronised (no recorder clock is set, drift is unverified)", registry=r)
        for stage, result in _STAGES.values():
            self.stage[stage].labels(result)
        for reason in sorted(set(_ERRORS.values())):
            self.errors.labels(reason)
        self.slots = slots

    def serve(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        try:
            start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        except OSError as e:
            raise CannotListen("metrics.listen", listen, e) from None
        log.info("metrics on http://%s/metrics", listen)

    def on_event(self, type_: str, slot: int | None, data: dict[str, Any]) -> None:
        if type_ in _STAGES:
            stage, result = _STAGES[type_]
            self.stage[stage].labels(result).inc()
        if type_ == "partial_clip":
            self.partial.inc()
        elif type_ == "docked":
            self.docks.inc()
        if type_ in _ERRORS:
            self.errors.labels(_ERRORS[type_]).inc()
        if type_ == "pulled":
            self.bytes_pulled.inc(data.get("size") or 0)
            if data.get("duration_s") is not None:
                self.pull_seconds.observe(data["duration_s"])
        elif type_ == "clip_archived":
            self.last_archived.set_to_current_time()
            self.bytes_forwarded.inc(data.get("size") or 0)
            if data.get("duration_s") is not None:
                self.forward_seconds.observe(data["duration_s"])
        elif type_ == "clock" and slot is not None and data.get("drift_s") is not None:
            self.drift.labels(str(slot)).set(data["drift_s"])
        elif type_ in ("station_clock_unsynchronised", "station_clock_synchronised"):
            self.clock_alarm.set(1 if type_ == "station_clock_unsynchronised" else 0)

    def update(self, snapshot: dict[str, Any], unpublished: int, mqtt_connected: bool | None,
               queue_oldest_s: float = 0.0) -> None:
        self.docked.set(sum(1 for s in snapshot["slots"] if s["state"] != "idle"))
        self.queue_age.set(queue_oldest_s)
        for slot in snapshot["slots"]:
            for state in SLOT_STATES:
                self.slot_state.labels(str(slot["slot"]), state).set(1 if slot["state"] == state else 0)
        self.queue_clips.set(snapshot["queue"]["clips"])
        self.queue_bytes.set(snapshot["queue"]["bytes"])
        self.staging_free.set(snapshot["staging_free_bytes"])
        disk = dict(snapshot.get("disk") or {})
        self.custody_removed.set(disk.pop("custody_removed", 0))
        self.catalog_free.set(disk.pop("catalog_free", 0))
        self.catalog_compacted.set(disk.pop("catalog_compacted", 0))
        self.events_pruned.set(disk.pop("events_pruned", 0))
        for what, n in disk.items():
            self.disk.labels(what).set(n)
        self.archive_up.set(0 if snapshot["archive_up"] is False else 1)
        self.mqtt_connected.set(1 if mqtt_connected else 0)
        self.outbox.set(unpublished)
        clock = snapshot.get("station_clock")
        if clock is not None:
            self.clock_alarm.set(1 if clock.get("alarm") else 0)
