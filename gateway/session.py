"""A dock session: one docked recorder, from identification to the last clip
pulled. One per slot; slots run side by side. Blocking driver and file work
runs in worker threads; an undock cancels the session, and the clip in
flight ends ``interrupted`` (never half-staged) within one buffer's time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from drivers.base import ClipRef, DockedDevice, DriverError, Recorder, Skipped, WrongPassword
from drivers.families import open_recorder
from drivers.profiles import Profile, Registry
from gateway import ingest
from gateway.catalog import Catalog, PendingItem
from gateway.config import Config
from gateway.errors import ClipInterrupted, DockgateError, StagingFull, UnsafePath
from gateway.events import Events
from gateway.staging import Staging
from gateway.state import SlotState

log = logging.getLogger(__name__)
T = TypeVar("T")

#: per-entry events for skipped volume entries; beyond that, one summary
MAX_SKIP_EVENTS = 50
DISK_WAIT_S = 1.0
RELEASE_POLL_S = 0.5


@dataclass
class Context:
    cfg: Config
    catalog: Catalog
    staging: Staging
    registry: Registry
    events: Events
    password: str | None
    on_staged: Callable[[], None]
    #: (slot, bytes needed free; 0 when no longer waiting): lets the purger make room
    on_disk_low: Callable[[int, int], None]


class DockSession:
    def __init__(self, ctx: Context, device: DockedDevice, slot_state: SlotState) -> None:
        self.ctx = ctx
        self.device = device
        self.st = slot_state
        self.cancel = threading.Event()
        self.buffers = ingest.make_buffers(ctx.cfg.ingest.buffer_size)
        self.dock_id: int | None = None
        self.recorder: Recorder | None = None
        self.serial = device.ids.serial or "?"

    @property
    def slot(self) -> int:
        return self.device.slot

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work; on cancellation tell it to stop and wait for it,
        so no thread outlives its session with a file open."""
        fut = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            self.cancel.set()
            with contextlib.suppress(BaseException):
                await fut
            raise

    async def run(self) -> None:
        ev, cat, st = self.ctx.events, self.ctx.catalog, self.st
        st.reset("identifying")
        profile = self.ctx.registry.match(self.device.ids)
        if profile is None:
            st.state, st.message = "foreign", f"unknown USB device {self.device.ids}; not read"
            ev.emit("foreign_device", self.slot, vid=f"{self.device.ids.vid:04x}",
                    pid=f"{self.device.ids.pid:04x}", product=self.device.ids.product)
            return
        st.profile = profile.name
        self.dock_id = cat.open_dock(self.device, profile.name)
        ev.emit("docked", self.slot, vid=f"{self.device.ids.vid:04x}", pid=f"{self.device.ids.pid:04x}",
                usb_serial=self.device.ids.serial, profile=profile.name, dock_id=self.dock_id)
        result = "error"
        try:
            result = await self._serve(profile)
        except asyncio.CancelledError:
            result = "undocked"
            raise
        except WrongPassword as e:
            st.state, st.message = "error", str(e)
            ev.emit("wrong_password", self.slot, device=str(self.device.ids), profile=profile.name)
        except DockgateError as e:
            st.state, st.message = "error", str(e)
            ev.emit("device_error", self.slot, device=str(self.device.ids), reason=e.reason,
                    error=str(e))
        finally:
            if self.recorder is not None:
                with contextlib.suppress(Exception):
                    self.recorder.close()
            with contextlib.suppress(Exception):
                cat.close_dock(self.dock_id, result)

    async def _serve(self, profile: Profile) -> str:
        ev, cat, st = self.ctx.events, self.ctx.catalog, self.st
        assert self.dock_id is not None
        self.recorder = rec = await self._thread(open_recorder, self.device, profile)
        needs_password = profile.password.source == "station"
        await self._thread(rec.unlock, self.ctx.password if needs_password else None)
        ident = await self._thread(rec.identify)
        self.serial = ident.serial
        st.serial = ident.serial

        station_before = time.time()
        recorder_clock = await self._thread(rec.read_clock)
        station_now = (station_before + time.time()) / 2
        drift = None if recorder_clock is None else round(recorder_clock.timestamp() - station_now, 3)
        was_set = await self._thread(rec.set_clock, datetime.now(UTC))
        st.clock_drift_s = drift
        cat.clock_dock(self.dock_id, None if recorder_clock is None else recorder_clock.timestamp(),
                       station_now, drift, was_set)
        ev.emit("clock", self.slot, serial=ident.serial, drift_s=drift, set=was_set)

        skipped: list[Skipped] = []
        refs = await self._thread(lambda: list(rec.list_clips(skipped.append)))
        for i, s in enumerate(skipped):
            if i < MAX_SKIP_EVENTS:
                ev.emit("skipped_entry", self.slot, serial=ident.serial, path=s.display, why=s.why)
        if len(skipped) > MAX_SKIP_EVENTS:
            ev.emit("skipped_entry", self.slot, serial=ident.serial,
                    more=len(skipped) - MAX_SKIP_EVENTS)
        st.skipped = len(skipped)
        if ident.officer is None:  # plain storage: the profile's file-name patterns know it
            officer = next((o for o in map(rec.profile.officer_from_name, (r.name for r in refs)) if o), None)
            ident = dataclasses.replace(ident, officer=officer)
        cat.identify_dock(self.dock_id, ident)
        ev.emit("identified", self.slot, serial=ident.serial, model=ident.model, officer=ident.officer,
                unit=ident.unit, battery_pct=ident.battery_pct, dock_id=self.dock_id)
        pending, known = cat.discover(self.dock_id, ident.serial, ident.officer, refs)
        # sidecars (GPS track, importance mark) first, so a clip's are staged before it is stamped
        suffixes = tuple(s.suffix.lower().encode() for s in rec.profile.sidecars)
        pending.sort(key=lambda p: not (suffixes and p.ref.relpath.lower().endswith(suffixes)))
        st.clips_total = len(pending)
        st.clips_known = known
        st.bytes_total = sum(p.ref.size for p in pending)
        st.state, st.since = "pulling", time.time()
        log.info("slot %d serial %s: %d clips to pull (%d bytes), %d already held, %d skipped",
                 self.slot, ident.serial, len(pending), st.bytes_total, known, len(skipped))
        for item in pending:
            await self._pull(rec, item)
        st.current = None
        if self.ctx.cfg.release.policy == "after-archive":
            await self._release(rec, refs)
        st.state = "done"
        failed = st.clips_failed
        st.message = (f"{st.clips_done} pulled, {known} already held"
                      + (f", {failed} interrupted" if failed else "")
                      + (f"; {st.message}" if st.message and st.message.startswith("released") else ""))
        ev.emit("dock_done", self.slot, serial=ident.serial, pulled=st.clips_done, known=known,
                interrupted=failed, skipped=len(skipped))
        return "done" if not failed else "incomplete"

    async def _release(self, rec: Recorder, refs: list[ClipRef]) -> None:
        """Free the recorder of exactly the clips the archive verified: wait
        until every clip pulled from it is archived or quarantined, then delete
        the archived ones (partial ones only if configured), each only if it is
        still the file that was listed."""
        cat, st, cfg = self.ctx.catalog, self.st, self.ctx.cfg
        while True:
            cands = cat.release_candidates(self.serial, refs)
            waiting = [c for c in cands if c["clip_state"] in ("staged", "stamped", "forwarding")]
            if not waiting:
                break
            st.state = "waiting"
            st.message = f"waiting for the archive to confirm {len(waiting)} clips before freeing the recorder"
            await asyncio.sleep(RELEASE_POLL_S)
        released = kept = 0
        for c in cands:
            if c["released_at"] is not None:
                continue
            if c["clip_state"] != "archived" or (c["partial"] and not cfg.release.partial):
                kept += 1
                continue
            ref: ClipRef = c["ref"]
            try:
                await self._thread(rec.delete_clip, ref)
            except (DockgateError, OSError) as e:
                kept += 1
                self.ctx.events.emit("release_failed", self.slot, serial=self.serial, path=ref.display, error=str(e))
                continue
            cat.mark_released(c["id"])
            released += 1
            self.ctx.events.emit("released", self.slot, serial=self.serial, path=ref.display, sha256=c["sha256"])
        st.message = f"released {released} archived clips, kept {kept}"
        log.info("slot %d serial %s: %s", self.slot, self.serial, st.message)

    async def _wait_for_space(self, size: int) -> None:
        alarmed = False
        while True:
            try:
                await asyncio.to_thread(self.ctx.staging.check_space, size)
                if alarmed:
                    self.ctx.on_disk_low(self.slot, 0)
                    self.ctx.events.emit("disk_ok", self.slot)
                    self.st.state = "pulling"
                return
            except StagingFull as e:
                if not alarmed:
                    self.ctx.events.emit("disk_low", self.slot, free=e.free, needed=e.needed,
                                         path=str(e.path))
                    alarmed = True
                self.ctx.on_disk_low(self.slot, e.needed)
                self.st.state, self.st.message = "waiting", str(e)
                await asyncio.sleep(DISK_WAIT_S)

    async def _pull(self, rec: Recorder, item: PendingItem) -> None:
        ctx, st, ref = self.ctx, self.st, item.ref
        st.current = ref.display
        attempt = 0
        while attempt < ctx.cfg.ingest.max_attempts:
            attempt += 1
            await self._wait_for_space(ref.size)
            ctx.catalog.mark_pulling(item.id)
            temp = ctx.staging.temp_path(item.id)
            before = st.bytes_done
            started = time.monotonic()
            try:
                pulled = await self._thread(ingest.pull, rec.open_clip, ref, temp, self.buffers,
                                            self.cancel, st.add_bytes)
            except asyncio.CancelledError:
                ctx.catalog.mark_interrupted(item.id, "undocked during copy")
                raise
            except StagingFull:
                # the disk filled under us (other slots, other programs): not the
                # clip's fault; wait for space, as before a pull, and try again
                st.bytes_done = before
                ctx.catalog.mark_interrupted(item.id, "staging full")
                attempt -= 1
                await self._wait_for_space(ref.size + ctx.cfg.ingest.reserve_bytes // 2 + (64 << 20))
                continue
            except (ClipInterrupted, UnsafePath, DriverError) as e:
                st.bytes_done = before
                ctx.catalog.mark_interrupted(item.id, str(e))
                permanent = isinstance(e, UnsafePath)
                if permanent or attempt == ctx.cfg.ingest.max_attempts:
                    st.clips_failed += 1
                    ctx.events.emit("clip_interrupted", self.slot, serial=self.serial,
                                    path=ref.display, error=str(e), attempts=attempt)
                    return
                log.info("slot %d serial %s: %s; retrying", self.slot, self.serial, e)
                continue
            self._commit(item, pulled, time.monotonic() - started)
            return

    def _commit(self, item: PendingItem, pulled: ingest.Pulled, duration_s: float) -> None:
        ctx = self.ctx
        if ctx.catalog.has_clip(pulled.sha256):
            pulled.temp.unlink()
            ctx.catalog.mark_pulled(item.id, pulled.sha256, pulled.size, None)
            ctx.events.emit("seen_again", self.slot, serial=self.serial, path=item.ref.display,
                            sha256=pulled.sha256)
        else:
            final = ctx.staging.commit(pulled.temp, pulled.sha256)
            ctx.catalog.mark_pulled(item.id, pulled.sha256, pulled.size, ctx.staging.relative(final))
            ctx.events.emit("pulled", self.slot, serial=self.serial, path=item.ref.display,
                            sha256=pulled.sha256, size=pulled.size, duration_s=round(duration_s, 3))
            ctx.on_staged()
        self.st.clips_done += 1
