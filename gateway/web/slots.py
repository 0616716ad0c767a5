"""What the station screen says about each slot, in plain words.

The live state (``gateway.pipeline.live``) says what a slot's session is doing; the
catalog's events say why it stopped and who the recorder belongs to. The
tracker listens to the events (a journal listener: no polling) and keeps,
per slot, the current dock and the reason for a failure; ``cards`` turns
both into what an officer at the dock needs: may I take it, and if not,
what do I do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.catalog import DockRow
from gateway.pipeline.live import StationState

#: slot states in which the recorder must stay docked
BUSY = ("identifying", "switching", "pulling", "waiting")
#: events that say why a slot failed -> the instruction shown for it
REASONS = {"wrong_password": "wrong_password", "foreign_device": "foreign", "unrecognised_device": "foreign",
           "storage_missing": "storage_missing", "disk_low": "disk_full", "device_error": "error"}


@dataclass
class DockInfo:
    dock_id: int | None = None
    officer: str | None = None
    unit: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DockLookup(Protocol):
    """Where the cards read a dock's row (the pages' read-only reports)."""

    def dock(self, dock_id: int) -> DockRow | None: ...


class SlotTracker:
    """Per slot: the dock now in it and why it failed, from the catalog's
    events; wakes the pages' streams when anything happens."""

    def __init__(self) -> None:
        self.docks: dict[int, DockInfo] = {}
        self.changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake streams on *loop* (called on it): a fresh wake-up event of that
        loop, since a restarted web server runs on a new one."""
        self._loop = loop
        self.changed = asyncio.Event()

    def on_event(self, type_: str, slot: int | None, data: dict[str, Any]) -> None:
        if slot is not None:
            if type_ == "docked":
                self.docks[slot] = DockInfo(dock_id=data.get("dock_id"))
            elif type_ == "undocked":
                self.docks.pop(slot, None)
            elif type_ == "identified":
                info = self.docks.setdefault(slot, DockInfo(dock_id=data.get("dock_id")))
                info.officer, info.unit = data.get("officer"), data.get("unit")
            elif type_ == "foreign_device":
                self.docks[slot] = DockInfo(reason="foreign")
            elif type_ in REASONS:
                self.docks.setdefault(slot, DockInfo()).reason = REASONS[type_]
            elif type_ == "disk_ok" and slot in self.docks:
                self.docks[slot].reason = None
        self.wake()

    def wake(self) -> None:
        """Tell every open stream something changed. A listener may be
        called from a worker thread: the loop does the waking."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        # a fresh event per change: each stream waits on the one it saw before rendering, so none is missed
        old, self.changed = self.changed, asyncio.Event()
        old.set()


def _eta(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    s = int(seconds + 0.5)
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"0:{s:02d}"


def cards(state: StationState, tracker: SlotTracker, catalog: DockLookup, t: Callable[..., str],
          dock_clips: Callable[[int], list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """One card per slot: what the officer sees. *dock_clips* (a dock's
    clips) gives a finished card its count of clips and of important ones:
    the clips themselves show only after the officer's PIN. A card that
    asks for something has its ``instruction`` and, for a crowded screen,
    the same in a few words (``short``)."""
    out = []
    names: dict[int, str | None] = {}
    for slot in state.slots.values():
        snap = slot.snapshot()
        info = tracker.docks.get(slot.slot, DockInfo())
        card: dict[str, Any] = {"slot": slot.slot, "state": snap["state"], "serial": snap["serial"],
                                "battery": snap["battery_pct"], "officer": None, "officer_name": None,
                                "unit": None, "kind": "idle", "word": t("empty"), "detail": None,
                                "instruction": None, "progress": None, "eta": None, "clips": None,
                                "short": None, "dock_id": info.dock_id, "drift": snap["clock_drift_s"], "held": 0,
                                "important": 0}
        if snap["state"] != "idle" and info.dock_id is not None:
            card["officer"], card["unit"] = info.officer, info.unit
            if info.officer is not None:
                if info.dock_id not in names:
                    row = catalog.dock(info.dock_id)
                    names[info.dock_id] = row.officer_name if row else None
                card["officer_name"] = names[info.dock_id]
        st = snap["state"]
        if st == "pulling":
            card["kind"], card["word"] = "working", t("state.working")
            card["detail"] = t("keep.hint")
            total = snap["bytes_total"]
            card["progress"] = round(100.0 * snap["bytes_done"] / total, 1) if total else 100.0
            card["eta"] = _eta(snap["eta_s"])
            card["clips"] = f"{snap['clips_done']} / {snap['clips_total']}"
        elif st in ("identifying", "switching"):
            card["kind"], card["word"] = "keep", t("state.keep")
            card["detail"] = t(st)
        elif st == "waiting":
            card["kind"], card["word"] = "keep", t("state.keep")
            card["instruction"], card["short"] = t("why.disk_full"), t("short.disk_full")
        elif st == "done":
            card["kind"], card["word"] = "done", t("state.done")
            card["detail"] = t("done.summary", done=snap["clips_done"], known=snap["clips_known"])
            if snap["clips_failed"]:
                card["instruction"] = t("done.failed", n=snap["clips_failed"])
                card["short"] = t("short.failed", n=snap["clips_failed"])
            card["progress"] = 100.0
            if dock_clips is not None and info.dock_id is not None:
                held = [c for c in dock_clips(info.dock_id) if c["sha256"]]
                card["held"] = len(held)
                card["important"] = sum(1 for c in held if c["important"])
        elif st in ("error", "foreign"):
            card["kind"], card["word"] = "error", t("state.error")
            reason = info.reason or ("foreign" if st == "foreign" else "error")
            card["reason"] = reason
            card["instruction"], card["short"] = t(f"why.{reason}"), t(f"short.{reason}")
            # the driver's own message (English, for the administrator) stays in the events and the log:
            # the officer reads what to do, in the screen's language
        out.append(card)
    return out


def station_banner(state: StationState, t: Callable[..., str]) -> str | None:
    if state.archive_refused:
        return t("archive.refused")
    if state.archive_up is False:
        return t("archive.down")
    return None


def busy(state: StationState) -> bool:
    return any(s.state in BUSY for s in state.slots.values())


def now() -> float:
    return time.time()
