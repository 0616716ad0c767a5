"""A dock session: one docked recorder, from identification to the last clip
pulled. One per slot; slots run side by side. Blocking driver and file work
runs in worker threads; an undock cancels the session, and the clip in
flight ends ``interrupted`` (never half-staged) within one buffer's time.

Why ~460 lines in one module: a dock is one conversation (probe, unlock,
identify, clock, storage switch, list, pull with retries) whose steps share
the session's cancellation and its thread; the pull's own work is in
``ingest.py``/``pullcommit.py``, each protocol in its driver, and whether the
station's own clock may be trusted in ``gateway/timesync.py``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from drivers.base import ClipRef, DockedDevice, NotRecognised, Recorder, Skipped, StorageSwitch, WrongPassword
from drivers.families import open_recorder
from drivers.profiles import Profile, Registry
from gateway import copyhash
from gateway.catalog import Catalog, Event, PendingItem, event
from gateway.config import Config
from gateway.errors import DockgateError, StagingFull
from gateway.pipeline import ingest
from gateway.pipeline.buffers import BufferBudget
from gateway.pipeline.live import SlotState
from gateway.pipeline.pullcommit import Done, SlotCommitter
from gateway.pipeline.release import release
from gateway.pipeline.staging import Staging
from gateway.timesync import StationClock

log = logging.getLogger(__name__)
T = TypeVar("T")

#: per-entry events for skipped volume entries; beyond that, one summary
MAX_SKIP_EVENTS = 50
#: a clip this big is committed on its own, its barrier overlapping the next clip's copy
BIG_CLIP = 16 << 20
#: clips up to this size are copied in runs, up to RUN_CLIPS clips and RUN_BYTES per thread hand-off
RUN_CLIP_MAX = 1 << 20
RUN_CLIPS = 64
RUN_BYTES = 8 << 20


def _runs(pending: list[PendingItem]) -> list[list[PendingItem]]:
    """The clips to pull, in their order: runs of small clips, each larger clip alone."""
    out: list[list[PendingItem]] = []
    run_bytes = 0
    for item in pending:
        size = item.ref.size
        if size > RUN_CLIP_MAX or not out or len(out[-1]) >= RUN_CLIPS or out[-1][0].ref.size > RUN_CLIP_MAX \
                or run_bytes + size > RUN_BYTES:
            out.append([item])
            run_bytes = size
        else:
            out[-1].append(item)
            run_bytes += size
    return out
DISK_WAIT_S = 1.0


@dataclass
class Context:
    cfg: Config
    catalog: Catalog
    staging: Staging
    registry: Registry
    password: str | None
    on_staged: Callable[[], None]
    #: (slot, bytes needed free; 0 when no longer waiting): lets the purger make room
    on_disk_low: Callable[[int, int], None]
    #: (slot, the switch): runs the switch, then waits for the storage device
    #: the recorder becomes on its slot; (what the switch said, the device, or
    #: None when it never came within the switch's timeout)
    switch_storage: Callable[[int, Callable[[], Awaitable[StorageSwitch | None]]],
                             Awaitable[tuple[StorageSwitch | None, DockedDevice | None]]]
    #: copy buffers of all slots share one budget
    buffers: BufferBudget
    #: slot -> dock id of the slots pulling right now (the forwarder yields to them)
    pulling: dict[int, int]
    #: a slot stopped pulling: uploads held back for the pulls may start now
    on_pull_end: Callable[[], None]
    #: the station's own clock and its alarm (the daemon's, which it polls); None: one of this context's own
    station_clock: StationClock | None = None

    def __post_init__(self) -> None:
        if self.station_clock is None:
            self.station_clock = StationClock.for_config(self.cfg)


def device_fields(device: DockedDevice) -> dict[str, str | None]:
    """What ``foreign_device`` and ``unrecognised_device`` say of a device: what
    profiles match on (VID:PID and the device's own strings, exactly), its
    interface classes and port, so an admin sees why no profile claimed it
    and ``dockgate profile new --slot`` can write one; the hardware
    database's names only where udev had them, to inform."""
    ids, hints = device.ids, device.hints
    out: dict[str, str | None] = {"vid": f"{ids.vid:04x}", "pid": f"{ids.pid:04x}",
                                  "manufacturer": ids.manufacturer, "product": ids.product, "serial": ids.serial,
                                  "interfaces": hints.get("interfaces"), "port": hints.get("port")}
    out.update({k: hints[k] for k in ("hwdb_vendor", "hwdb_model") if hints.get(k)})
    if ids.inquiry is not None:  # a disk: what an INQUIRY profile (DV16) matches on
        out.update(scsi_vendor=ids.scsi_vendor, scsi_model=ids.scsi_model, inquiry=ids.inquiry)
    return out


class DockSession:
    def __init__(self, ctx: Context, device: DockedDevice, slot_state: SlotState) -> None:
        self.ctx = ctx
        self.device = device
        self.st = slot_state
        self.cancel = threading.Event()
        #: allocated per clip as the budget says (``_size_buffers``)
        self.buffers: list[memoryview] = []
        self.committer: SlotCommitter | None = None
        self.dock_id: int | None = None
        self.recorder: Recorder | None = None
        self.serial = device.ids.serial or "?"
        #: the label of the storage volume the recorder became (paired by it where the family ties the two)
        self.volume_label: str | None = None
        #: what the dock's status says about the clock step (the station clock was not synchronised)
        self.clock_note: str | None = None

    @property
    def slot(self) -> int:
        return self.device.slot

    async def _copy(self, fn: Callable[[], T]) -> T:
        """A copy into staging in a thread; the room ``_wait_for_space``
        claimed for it is given back once it ends (the disk shows it then)."""
        try:
            return await self._thread(fn)
        finally:
            self.ctx.staging.release(self.slot)

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

    def _profile(self) -> Profile | None:
        """The device's profile; a recorder already switched to storage (no
        session waited for it: the daemon restarted, the dock rebooted) is
        served as the plain storage its profile's storage side describes."""
        reg, ids = self.ctx.registry, self.device.ids
        profile = reg.match(ids)
        if profile is None and self.device.volume is not None:
            storage_side = reg.match_storage(ids)
            if storage_side is not None:
                return storage_side.model_copy(update={"protocol": "ums"})
        return profile

    async def run(self) -> None:
        cat, st = self.ctx.catalog, self.st
        st.reset("identifying")
        profile = self._profile()
        if profile is None:
            st.state, st.message = "foreign", (f"no firmware profile claims {self.device.ids.describe()}; not read "
                                               "(docs/profiles.md: dockgate profile new)")
            cat.emit("foreign_device", self.slot, **device_fields(self.device))
            return
        st.profile = profile.name
        self.dock_id = cat.open_dock(self.device, profile.name, event(
            "docked", self.slot, vid=f"{self.device.ids.vid:04x}", pid=f"{self.device.ids.pid:04x}",
            usb_serial=self.device.ids.serial, profile=profile.name))
        result = "error"
        try:
            result = await self._serve(profile)
        except asyncio.CancelledError:
            result = "undocked"
            raise
        except WrongPassword as e:
            st.state, st.message = "error", str(e)
            cat.emit("wrong_password", self.slot, device=str(self.device.ids), profile=profile.name)
        except NotRecognised as e:
            st.state, st.message = "foreign", f"{e}; nothing was written to it"
            cat.emit("unrecognised_device", self.slot, device=str(self.device.ids), profile=profile.name,
                     error=str(e), **device_fields(self.device))
        except DockgateError as e:
            st.state, st.message = "error", str(e)
            cat.emit("device_error", self.slot, device=str(self.device.ids), reason=e.reason, error=str(e))
        finally:
            if self.recorder is not None:
                with contextlib.suppress(Exception):
                    self.recorder.close()
            with contextlib.suppress(Exception):
                cat.close_dock(self.dock_id, result)

    async def _serve(self, profile: Profile) -> str:
        cat, st = self.ctx.catalog, self.st
        assert self.dock_id is not None
        self.recorder = rec = await self._thread(open_recorder, self.device, profile)
        # the order every vendor tool uses: read-only probe, then login, identity,
        # clock, and the storage switch last (the command interface goes with it)
        await self._thread(rec.probe)
        needs_password = profile.password.source == "station"
        await self._thread(rec.unlock, self.ctx.password if needs_password else None)
        ident = await self._thread(rec.identify)
        self.serial = ident.serial
        st.serial = ident.serial
        st.battery_pct = ident.battery_pct

        await self._clock(rec, ident.serial)
        if not await self._switch_to_storage(rec, ident.serial):
            return "storage_missing"

        skipped: list[Skipped] = []
        refs = await self._thread(lambda: list(rec.list_clips(skipped.append)))
        for s in skipped[:MAX_SKIP_EVENTS]:
            cat.emit("skipped_entry", self.slot, serial=ident.serial, path=s.display, why=s.why)
        if len(skipped) > MAX_SKIP_EVENTS:
            cat.emit("skipped_entry", self.slot, serial=ident.serial, more=len(skipped) - MAX_SKIP_EVENTS)
        st.skipped = len(skipped)
        for ref in (r for r in refs if r.links > 1):
            # evidence on the recorder, so it is pulled; but the same file also
            # lives under another name, maybe outside the volume: say so
            cat.emit("hard_linked_clip", self.slot, serial=ident.serial, path=ref.display, links=ref.links)
        if ident.officer is None:  # no officer record: the profile's naming rule, where a source gives one
            officer = next((o for o in map(rec.profile.officer_from_name, (r.display for r in refs)) if o), None)
            ident = dataclasses.replace(ident, officer=officer)
        label = self.volume_label or self.device.hints.get("volume_label")
        cat.identify_dock(self.dock_id, ident, event(
            "identified", self.slot, serial=ident.serial, model=ident.model, officer=ident.officer,
            unit=ident.unit, battery_pct=ident.battery_pct, dock_id=self.dock_id, idcode=ident.idcode,
            volume_label=label), volume_label=label)
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
        self.committer = committer = SlotCommitter(cat, self.ctx.staging, self.slot, st, ident.serial,
                                                   self.ctx.on_staged)
        self.ctx.buffers.join(self.slot)
        self.ctx.pulling[self.slot] = self.dock_id
        try:
            for run in _runs(pending):
                if run[0].ref.size >= BIG_CLIP:
                    await committer.flush()  # what is pulled goes to disk while this one copies
                for done in await (self._pull_run(rec, run) if len(run) > 1 else self._pull(rec, run[0])):
                    committer.add(done)
                if committer.due() or run[0].ref.size >= BIG_CLIP:
                    await committer.flush()
            await committer.drain()
        except asyncio.CancelledError:
            # undocked or stopping: the clips pulled whole are still committed
            with contextlib.suppress(Exception):
                await asyncio.shield(committer.drain())
            raise
        finally:
            self.ctx.buffers.leave(self.slot)
            self.ctx.staging.release(self.slot)
            self.ctx.pulling.pop(self.slot, None)
            self.ctx.on_pull_end()
            self.buffers = []
        st.current = None
        if self.ctx.cfg.release.policy == "after-archive":
            await release(cat, self.ctx.cfg.release, st, self.serial, refs,
                          lambda ref: self._thread(rec.delete_clip, ref))
        st.state = "done"
        failed = st.clips_failed
        st.message = (f"{st.clips_done} pulled, {known} already held"
                      + (f", {failed} interrupted" if failed else "")
                      + (f"; {st.message}" if st.message and st.message.startswith("released") else "")
                      + (f"; {self.clock_note}" if self.clock_note else ""))
        cat.emit("dock_done", self.slot, serial=ident.serial, pulled=st.clips_done, known=known,
                 interrupted=failed, skipped=len(skipped))
        return "done" if not failed else "incomplete"

    async def _clock(self, rec: Recorder, serial: str) -> None:
        """Measure the recorder's drift and set its clock, if the station's own
        clock is synchronised (gateway/timesync.py). If it is not, the recorder
        keeps its clock and the measured drift is recorded, not applied: the
        catalog's ``clock_drift_s`` stays empty beside the two readings, which
        the manifest reports as an unverified drift."""
        st, clock = self.st, self.ctx.station_clock
        assert clock is not None and self.dock_id is not None
        sync = clock.check(self.ctx.catalog.emit)  # the one alarm, raised or cleared
        station_before = time.time()
        recorder_clock = await self._thread(rec.read_clock)
        station_now = (station_before + time.time()) / 2
        measured = None if recorder_clock is None else round(recorder_clock.timestamp() - station_now, 3)
        was_set = sync.synchronised and await self._thread(rec.set_clock, datetime.now(UTC))
        st.clock_drift_s = measured
        if not sync.synchronised:
            self.clock_note = "station clock not synchronised: recorder clock not set, drift not applied"
            st.message = self.clock_note
        self.ctx.catalog.clock_dock(
            self.dock_id, None if recorder_clock is None else recorder_clock.timestamp(), station_now,
            measured if sync.synchronised else None, was_set,
            event("clock", self.slot, serial=serial, drift_s=measured, set=was_set,
                  drift_verified=None if measured is None else sync.synchronised,
                  **({} if sync.synchronised else {"station_clock": sync.reason})))

    async def _switch_to_storage(self, rec: Recorder, serial: str) -> bool:
        """Enter storage mode, then wait for the storage device the recorder
        becomes on this slot: the same dock, not a new one. False (and an
        event) if it never comes."""
        st, cat = self.st, self.ctx.catalog
        started = time.monotonic()

        async def enter() -> StorageSwitch | None:
            st.state, st.message = "switching", "recorder switching to storage mode; leave it docked"
            return await self._thread(rec.enter_storage)

        # the daemon expects the re-enumeration before the command goes out: the
        # vendor device may leave the bus before enter_storage even returns
        switch, storage = await self.ctx.switch_storage(self.slot, enter)
        if switch is None:
            return True  # the volume was there from the start
        if storage is None:
            want = f" ({switch.storage_ids})" if switch.storage_ids else ""
            st.state = "error"
            st.message = (f"the recorder never came back as storage{want} within {switch.timeout_s:.0f}s; "
                          "undock it and dock it again")
            cat.emit("storage_missing", self.slot, serial=serial, expected=str(switch.storage_ids or "any"),
                     waited_s=round(time.monotonic() - started, 1))
            return False
        await self._thread(rec.attach_storage, storage)
        self.volume_label = storage.hints.get("volume_label")
        st.state, st.message = "identifying", None
        cat.emit("storage_switched", self.slot, serial=serial, dock_id=self.dock_id,
                 vid=f"{storage.ids.vid:04x}", pid=f"{storage.ids.pid:04x}",
                 after_s=round(time.monotonic() - started, 2))
        return True

    async def _wait_for_space(self, size: int) -> None:
        alarmed = False
        #: while it waits the slot copies nothing: it must not hold back the
        #: uploads whose archiving (then purging) is what makes the room. Two
        #: slots waiting counted as two pulling, and held every upload until
        #: the queue was ``forward.catch_up_s`` old: half an hour of officers
        #: waiting at a station whose staging filled.
        dock: int | None = None
        while True:
            try:
                self.ctx.staging.check_space(size, self.slot)  # one statfs: cheaper than a thread hand-off
                if alarmed:
                    self.ctx.on_disk_low(self.slot, 0)
                    self.ctx.catalog.emit("disk_ok", self.slot)
                    self.st.state = "pulling"
                if dock is not None:
                    self.ctx.pulling[self.slot] = dock
                return
            except StagingFull as e:
                if self.committer is not None:
                    # what this slot pulled and has not committed holds space that
                    # only archiving (then purging) can free: commit it first
                    await self.committer.drain()
                if dock is None and (dock := self.ctx.pulling.pop(self.slot, None)) is not None:
                    self.ctx.on_pull_end()  # the uploads it held may start now
                if not alarmed:
                    self.ctx.catalog.emit("disk_low", self.slot, free=e.free, needed=e.needed, path=str(e.path))
                    alarmed = True
                self.ctx.on_disk_low(self.slot, e.needed)
                self.st.state, self.st.message = "waiting", str(e)
                await asyncio.sleep(DISK_WAIT_S)

    async def _pull_run(self, rec: Recorder, run: list[PendingItem]) -> list[Done]:
        """Copy a run of small clips in one thread hand-off (one catalog
        commit to begin them all); a clip that fails goes on alone through
        ``_pull``'s retries. On an undock the clips copied whole are
        returned to the committer with the exception, as ``Interrupted``."""
        ctx, st = self.ctx, self.st
        await self._wait_for_space(sum(i.ref.size for i in run))
        ctx.catalog.begin_pull_many([i.id for i in run])
        self._size_buffers()
        st.current = run[0].ref.display
        outcomes: list[Done | DockgateError] = []

        def work() -> None:
            for item in run:
                if self.cancel.is_set():
                    return
                started = time.monotonic()
                try:
                    pulled = ingest.pull(rec.open_clip, item.ref, ctx.staging.temp_path(item.id), self.buffers,
                                         self.cancel, st.add_bytes, sync=False)
                except DockgateError as e:  # drivers and ingest raise only typed errors
                    outcomes.append(e)
                else:
                    outcomes.append(Done(item, pulled, time.monotonic() - started))

        try:
            await self._copy(work)
        except asyncio.CancelledError:
            # the clip being copied is interrupted (and said so), the rest of the run was never started
            said = False
            for i, item in enumerate(run):
                o = outcomes[i] if i < len(outcomes) else None
                if isinstance(o, Done):
                    if self.committer is not None:
                        self.committer.add(o)
                    continue
                why = "undocked during copy"
                ctx.catalog.interrupt(item.id, why, *(() if said else (self._interrupted(item.ref, why, 1),)))
                said = True
            raise
        out: list[Done] = []
        for item, o in zip(run, outcomes, strict=True):
            if isinstance(o, Done):
                out.append(o)
                continue
            tried = 0 if isinstance(o, StagingFull) else 1
            if o.permanent or tried >= ctx.cfg.ingest.max_attempts:
                st.clips_failed += 1
                ctx.catalog.interrupt(item.id, str(o), self._interrupted(item.ref, str(o), 1))
                continue
            ctx.catalog.interrupt(item.id, str(o))
            log.info("slot %d serial %s: %s; retrying", self.slot, self.serial, o)
            out.extend(await self._pull(rec, item, tried=tried))
        return out

    async def _pull(self, rec: Recorder, item: PendingItem, tried: int = 0) -> list[Done]:
        """Copy one clip into staging's tmp/ (not yet durable: the slot's
        committer makes it so with its batch); nothing if it could not be.
        *tried*: attempts already made (by ``_pull_run``)."""
        ctx, st, ref = self.ctx, self.st, item.ref
        st.current = ref.display
        attempt = tried
        while attempt < ctx.cfg.ingest.max_attempts:
            attempt += 1
            await self._wait_for_space(ref.size)
            ctx.catalog.begin_pull(item.id)
            temp = ctx.staging.temp_path(item.id)
            self._size_buffers()
            before = st.bytes_done
            started = time.monotonic()
            # the only slot pulling: the forwarder uploads this clip next, so
            # its pages stay cached for it (a read of the disk less). While
            # other slots pull, uploads wait, and the pages are better reused
            # (fresh page-cache memory is costly on VMs: 25 slots at link
            # speed kept 143 % of link time that way, 121 % dropping them)
            keep = len(ctx.pulling) <= 1
            # a slow link's bytes are hashed in the copy thread (copyhash.HASH_INLINE_BELOW);
            # until the slot's rate is known, the clip's own first bytes decide
            rate = self._rate()
            inline = None if rate is None else rate < copyhash.HASH_INLINE_BELOW
            try:
                pulled = await self._copy(functools.partial(
                    ingest.pull, rec.open_clip, ref, temp, self.buffers, self.cancel, st.add_bytes, sync=False,
                    keep=keep, inline=inline))
            except asyncio.CancelledError:
                read = st.bytes_done - before
                why = f"undocked during copy, {read} of {ref.size} bytes read"
                ctx.catalog.interrupt(item.id, why, self._interrupted(ref, why, attempt, read))
                raise
            except StagingFull:
                # the disk filled under us (other slots, other programs): not the
                # clip's fault; wait for space, as before a pull, and try again
                st.bytes_done = before
                ctx.catalog.interrupt(item.id, "staging full")
                attempt -= 1
                await self._wait_for_space(ref.size + ctx.cfg.ingest.reserve_bytes // 2 + (64 << 20))
                continue
            except DockgateError as e:  # drivers and ingest raise only typed errors
                st.bytes_done = before
                if e.permanent or attempt == ctx.cfg.ingest.max_attempts:
                    st.clips_failed += 1
                    ctx.catalog.interrupt(item.id, str(e), self._interrupted(ref, str(e), attempt))
                    return []
                ctx.catalog.interrupt(item.id, str(e))
                log.info("slot %d serial %s: %s; retrying", self.slot, self.serial, e)
                continue
            return [Done(item, pulled, time.monotonic() - started)]
        return []

    def _rate(self) -> float | None:
        """Bytes/s this slot has pulled so far (None until 4 MiB are in)."""
        st = self.st
        elapsed = time.time() - st.since
        return st.bytes_done / elapsed if st.bytes_done >= (4 << 20) and elapsed > 0 else None

    def _size_buffers(self) -> None:
        """Buffers as the shared budget says for this slot's measured rate."""
        size = self.ctx.buffers.size_for(self._rate())
        if not self.buffers or len(self.buffers[0]) != size:
            self.buffers = copyhash.make_buffers(size)

    def _interrupted(self, ref: ClipRef, why: str, attempts: int, read: int | None = None) -> Event:
        return event("clip_interrupted", self.slot, serial=self.serial, path=ref.display, error=why, attempts=attempts,
                     bytes_read=read, size=ref.size)
