"""Live state: what the station and each slot are doing right now (not
persistent: the catalog is).

Counters here are written by worker threads and read by the status writer;
plain int updates under the GIL are enough, nobody needs them exact."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SlotState:
    slot: int
    state: str = "idle"
    serial: str | None = None
    profile: str | None = None
    clips_total: int = 0
    clips_done: int = 0
    clips_known: int = 0
    clips_failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    skipped: int = 0
    current: str | None = None
    message: str | None = None
    clock_drift_s: float | None = None
    battery_pct: int | None = None
    since: float = field(default_factory=time.time)

    def reset(self, state: str = "idle") -> None:
        self.__init__(self.slot, state)  # type: ignore[misc]

    def add_bytes(self, n: int) -> None:
        self.bytes_done += n

    def snapshot(self) -> dict[str, Any]:
        d = asdict(self)
        elapsed = max(time.time() - self.since, 1e-3)
        d["rate_bps"] = int(self.bytes_done / elapsed) if self.state == "pulling" else 0
        left = self.bytes_total - self.bytes_done
        d["eta_s"] = round(left / d["rate_bps"], 1) if d["rate_bps"] and left > 0 else None
        return d


class StationState:
    def __init__(self, slots: int) -> None:
        self.slots = {n: SlotState(n) for n in range(1, slots + 1)}
        self.started_at = time.time()
        self.archive_up: bool | None = None
        #: why the archive refuses the station (credentials, permissions), while it does
        self.archive_refused: str | None = None
        self.last_error: str | None = None
        #: a bounded word for the last error (what MQTT's retained state shows)
        self.last_error_reason: str | None = None
        self.forwarding_paused = False
        #: slot -> dock id of the slots copying a recorder right now: the forwarder yields to them
        self.pulling: dict[int, int] = {}
        #: no upload may start now: the pulling slots come first (status says so)
        self.uploads_held = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "archive_up": self.archive_up,
            "archive_refused": self.archive_refused,
            "last_error": self.last_error,
            "last_error_reason": self.last_error_reason,
            "forwarding_paused": self.forwarding_paused,
            "uploads_held": self.uploads_held,
            "slots": [s.snapshot() for s in self.slots.values()],
        }
